/**
 * Why does a household SFT policy miss the exploring expert's action? Replays the expert on
 * held-out tasks, asks the policy (greedy) at each of the expert's states with the household
 * default's prompt, and sorts every miss: malformed reply, inadmissible command, which verb the
 * expert chose and which the policy chose, and for a wrong "go to" whether the policy's receptacle
 * was another place the search visits (a search-order slip) or not; then whether the policy's
 * command, followed by the expert, reaches the goal in as few steps as the expert (an equally good
 * action) and whether an identical prompt elsewhere got another expert action (the prompt cannot
 * tell).
 *
 *   npx tsx scripts/household-errors.ts --checkpoint runs/household-sft/sft [--split valid-unseen]
 *     [--tasks 100] [--first 1200000] [--show 2]
 */
import { parseArgs } from 'node:util';
import {
  type HouseholdTurn,
  householdMessages,
  parseHouseholdResponse,
} from '../src/agents/prompts/household.ts';
import { OBJECTS } from '../src/envs/household/catalog.ts';
import { expertStepsToGoal, exploringAction } from '../src/envs/household/expert.ts';
import { HouseholdGenerator, renderHouseholdTask } from '../src/envs/household/generator.ts';
import { HouseholdState } from '../src/envs/household/world.ts';
import { SPLITS, type Split } from '../src/envs/types.ts';
import { Policy } from '../src/policy/policy.ts';
import { HOUSEHOLD_DEFAULT } from '../src/training/presets.ts';
import { wilson } from '../src/training/stats.ts';

const { values: a } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    split: { type: 'string', default: 'valid-unseen' },
    tasks: { type: 'string', default: '100' },
    first: { type: 'string', default: '1200000' },
    show: { type: 'string', default: '2' },
  },
});
if (!a.checkpoint) throw new Error('household-errors: --checkpoint <dir> is required (a saved SFT policy)');
if (!SPLITS.includes(a.split as Split))
  throw new Error(`household-errors: --split "${a.split}" is not one of ${SPLITS.join(', ')}`);
const split = a.split as Split;
const { history, maxTokens } = HOUSEHOLD_DEFAULT.loop;
const generator = new HouseholdGenerator(HOUSEHOLD_DEFAULT.envOptions);

interface Decision {
  task: string;
  type: string;
  step: number;
  prompt: string;
  tokens: number[];
  want: string;
  admissible: readonly string[];
  /** The world at this state, to replay an alternative command from. */
  world: () => HouseholdState;
  searchedNames: Set<string>;
  visited: Set<string>;
  location: string | undefined;
  /** Whether the agent holds something (a "go to" then carries it, else it searches). */
  holding: boolean;
}

const policy = await Policy.load(a.checkpoint);
const decisions: Decision[] = [];
for (let k = 0; k < Number(a.tasks); k++) {
  const task = generator.generate(split, Number(a.first) + k);
  const state = new HouseholdState(task.payload);
  const { object, target } = task.payload.goal;
  const searchedNames = new Set(
    task.payload.receptacles
      .filter((r) => OBJECTS[object]!.places.includes(r.kind) && r.kind !== target)
      .map((r) => r.name),
  );
  let observation = renderHouseholdTask(task);
  const past: HouseholdTurn[] = [];
  const done: string[] = [];
  const visited = new Set<string>();
  for (let step = 0; !state.goalHolds() && step < 60; step++) {
    const admissible = state.admissible();
    const messages = householdMessages({
      format: 'windowed',
      history,
      task: task.payload.goalText,
      past,
      observation,
      admissible,
    });
    const want = exploringAction(state.view());
    const replay = [...done];
    decisions.push({
      task: task.id,
      type: task.kind,
      step,
      prompt: messages[0]!.content as string,
      tokens: policy.encodePrompt(messages),
      want,
      admissible,
      world: () => {
        const s = new HouseholdState(task.payload);
        for (const c of replay) s.execute(c);
        return s;
      },
      searchedNames,
      visited: new Set(visited),
      location: state.view().location,
      holding: state.view().holding !== undefined,
    });
    const out = state.execute(want);
    past.push({ observation, action: want, admissible });
    done.push(want);
    if (want.startsWith('go to ')) visited.add(want.slice(6));
    observation = out.feedback;
  }
}

// Identical prompts with different expert actions: the prompt alone cannot tell them apart.
const byPrompt = new Map<string, Set<string>>();
for (const d of decisions) {
  const s = byPrompt.get(d.prompt) ?? new Set();
  s.add(d.want);
  byPrompt.set(d.prompt, s);
}

const counts = new Map<string, number>();
const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
const verb = (c: string) => (c.startsWith('go to') ? 'go' : c.split(' ')[0]!);
// The expert's "go to" split by what it is for: searching empty-handed or carrying the object.
const expertVerb = (d: Decision) =>
  verb(d.want) === 'go' ? (d.holding ? 'go (carrying)' : 'go (searching)') : verb(d.want);
const costs = new Map<string, number>();
let ambiguous = 0;
let correct = 0;
const shown: string[] = [];
const perKind = new Map<string, number>();
// The first `--show` misses of each kind, with their prompts.
const example = (kind: string, d: Decision, action: string) => {
  const seen = perKind.get(kind) ?? 0;
  perKind.set(kind, seen + 1);
  if (seen < Number(a.show))
    shown.push(
      `--- [${kind}] ${d.task} (${d.type}) step ${d.step}: expert "${d.want}", policy "${action}"\n${d.prompt}`,
    );
};
const byVerb = new Map<string, { n: number; ok: number }>();
for (let i = 0; i < decisions.length; i += 64) {
  const part = decisions.slice(i, i + 64);
  const out = await policy.generate(
    part.map((d) => d.tokens),
    { temperature: 0, maxNewTokens: maxTokens },
  );
  part.forEach((d, j) => {
    const v = byVerb.get(expertVerb(d)) ?? { n: 0, ok: 0 };
    v.n++;
    byVerb.set(expertVerb(d), v);
    const got = parseHouseholdResponse(out[j]!.text ?? '');
    if (got.valid && got.action === d.want) {
      correct++;
      v.ok++;
      return;
    }
    if ((byPrompt.get(d.prompt)?.size ?? 1) > 1) ambiguous++;
    if (!got.valid) {
      bump(`malformed (${got.reason})`);
      return;
    }
    if (!d.admissible.includes(got.action)) {
      // A wrong instance number ("bread 1" for the "bread 2" in view) is a copying slip; a name
      // that is nowhere in the admissible list is a made-up receptacle or object.
      const shape = (c: string) => c.replace(/\d+/g, '#');
      const how =
        got.action === `go to ${d.location}`
          ? 'goes where it stands'
          : shape(got.action) === shape(d.want)
            ? 'the expert command with a wrong instance number'
            : d.admissible.some((c) => shape(c) === shape(got.action))
              ? 'an admissible command with a wrong instance number'
              : 'names something not here';
      const kind = `inadmissible (${how}): expert ${expertVerb(d)}, policy ${verb(got.action)}`;
      bump(kind);
      example(kind, d, got.action);
      return;
    }
    let kind = `expert ${expertVerb(d)} -> policy ${verb(got.action)}`;
    if (verb(d.want) === 'go' && verb(got.action) === 'go') {
      const to = got.action.slice(6);
      kind += d.searchedNames.has(to)
        ? d.visited.has(to)
          ? ' (a searched place, already visited)'
          : ' (a searched place, not yet visited)'
        : ' (not a searched place)';
    }
    bump(kind);
    const base = expertStepsToGoal(d.world());
    const alt = d.world();
    alt.execute(got.action);
    const other = 1 + expertStepsToGoal(alt);
    const cost =
      other < base ? 'shorter than' : other === base ? 'as short as (equally good)' : 'longer than';
    costs.set(cost, (costs.get(cost) ?? 0) + 1);
    example(kind, d, got.action);
  });
}
const n = decisions.length;
const ci = wilson(correct, n);
console.log(
  `${split}: ${n} expert decisions on ${a.tasks} tasks, policy greedy = expert on ${correct} (${((100 * correct) / n).toFixed(1)}% [${(100 * ci[0]).toFixed(1)}, ${(100 * ci[1]).toFixed(1)}])`,
);
console.log('accuracy by expert verb:');
for (const [v, c] of [...byVerb].sort((x, y) => y[1].n - x[1].n))
  console.log(`  ${v}: ${c.ok}/${c.n} (${((100 * c.ok) / c.n).toFixed(1)}%)`);
console.log(`misses (${n - correct}):`);
for (const [k, c] of [...counts].sort((x, y) => y[1] - x[1])) console.log(`  ${c}\t${k}`);
console.log(
  `admissible misses, then the expert to the goal, against the expert's own steps: ${[...costs].map(([k, c]) => `${c} ${k}`).join(', ')}`,
);
console.log(
  `misses whose prompt also occurs with another expert action (the prompt cannot tell): ${ambiguous}`,
);
console.log(shown.join('\n'));
await policy.dispose();
