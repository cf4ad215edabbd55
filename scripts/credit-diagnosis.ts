/**
 * Do the advantages point the right way? (issue 14: GiGPO's shortfall against GRPO from the strong
 * start.) Every step of a household RL store is replayed in its task's world and labelled *good*
 * when its command keeps the exploring expert's path as short as it was (the expert, acting from
 * the state after the command, reaches the goal in one step fewer than from the state before) and
 * *bad* otherwise (a malformed reply, a command that is not admissible, or one that makes the
 * remaining path longer). Then, per store and per advantage component (the final advantage; for
 * GiGPO also its episode and step parts), on all steps and on the steps of won and lost
 * trajectories apart:
 *
 * - AUC: the probability that a good step's advantage is above a bad step's (ties count half);
 * - the share of good steps with a positive advantage and of bad steps with a negative one;
 * - the mean advantage of good and bad steps.
 *
 *   npx tsx scripts/credit-diagnosis.ts <store.db>...
 *
 * A credit assignment that points the right way ranks good steps above bad ones (AUC near 1); the
 * episode-level term alone ranks them only through the outcome of their trajectory.
 */
import Database from 'better-sqlite3';
import { parseHouseholdResponse } from '../src/agents/prompts/household.ts';
import { expertStepsToGoal } from '../src/envs/household/expert.ts';
import { HouseholdGenerator, type HouseholdTask } from '../src/envs/household/generator.ts';
import { HouseholdState } from '../src/envs/household/world.ts';
import type { Split } from '../src/envs/types.ts';

const stores = process.argv.slice(2);
if (stores.length === 0) throw new Error('usage: npx tsx scripts/credit-diagnosis.ts <store.db>...');

interface Labelled {
  good: boolean;
  won: boolean;
  /** The group, the true state and the command (or 'malformed'): what one decision is. */
  decision: string;
  /** The group and the true state. */
  state: string;
  /** GiGPO's step group in the group (the anchor's), when recorded. */
  stepGroup?: string;
  /** Advantage components: 'final' always, plus the estimator's parts where it records them. */
  values: Record<string, number>;
}

interface StepRow {
  trajectory: number;
  grp: number;
  won: number;
  split: string;
  seed: number;
  response: string;
  value: number;
  details: string | null;
}

function labelStore(path: string): { estimator: string; steps: Labelled[] } {
  const db = new Database(path, { readonly: true });
  const runs = db.prepare('SELECT config FROM runs').all() as { config: string }[];
  if (runs.length !== 1) throw new Error(`${path}: ${runs.length} runs; expected one RL run per store`);
  const config = JSON.parse(runs[0]!.config) as { env?: string; envOptions?: object };
  if (config.env !== 'household') throw new Error(`${path}: env "${config.env}"; expected household`);
  const generator = new HouseholdGenerator(config.envOptions ?? {});
  const estimators = db.prepare('SELECT DISTINCT estimator FROM advantages').all() as { estimator: string }[];
  if (estimators.length !== 1)
    throw new Error(`${path}: advantages of ${estimators.length} estimators; expected one`);
  const estimator = estimators[0]!.estimator;
  const rows = db
    .prepare(
      `SELECT t.id AS trajectory, t.group_id AS grp, t.won, g.split, g.seed, s.response_text AS response, a.value, a.details
       FROM steps s JOIN trajectories t ON t.id = s.trajectory_id JOIN groups g ON g.id = t.group_id
       JOIN advantages a ON a.step_id = s.id
       ORDER BY t.id, s.step_index`,
    )
    .all() as StepRow[];
  db.close();
  const steps: Labelled[] = [];
  // Per trajectory: the world before the step and the expert's steps from it (a step's "after" is
  // the next step's "before", so each is computed once).
  let world: HouseholdState | undefined;
  let remaining = 0;
  let current = -1;
  for (const r of rows) {
    if (r.trajectory !== current) {
      current = r.trajectory;
      const task = generator.generate(r.split as Split, r.seed) as HouseholdTask;
      world = new HouseholdState(task.payload);
      remaining = expertStepsToGoal(world.clone());
    }
    const decision = parseHouseholdResponse(r.response);
    const state = `${r.grp}|${JSON.stringify(world!.view())}`;
    const key = `${state}|${decision.valid ? decision.action : 'malformed'}`;
    let good = false;
    if (decision.valid && world!.execute(decision.action).admissible) {
      // The expert acts on what it is given: a copy of the world after the command.
      const left = expertStepsToGoal(world!.clone());
      good = 1 + left <= remaining;
      remaining = left;
    }
    const values: Record<string, number> = { final: r.value };
    const parts = r.details ? (JSON.parse(r.details) as Record<string, unknown>) : {};
    for (const k of ['episode', 'step'] as const)
      if (typeof parts[k] === 'number') values[k] = parts[k] as number;
    const stepGroup = typeof parts.stepGroup === 'number' ? `${r.grp}|${parts.stepGroup}` : undefined;
    steps.push({ good, won: r.won === 1, decision: key, state, values, ...(stepGroup ? { stepGroup } : {}) });
  }
  return { estimator, steps };
}

/** P(a > b) for a drawn from `pos` and b from `neg`, ties half (rank-sum form). */
function auc(pos: readonly number[], neg: readonly number[]): number {
  if (pos.length === 0 || neg.length === 0) return Number.NaN;
  const all = [...pos.map((v) => ({ v, p: 1 })), ...neg.map((v) => ({ v, p: 0 }))].sort((a, b) => a.v - b.v);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.v === all[i]!.v) j++;
    const mid = (i + j + 1) / 2; // 1-based mean rank of the tie block
    for (let k = i; k < j; k++) if (all[k]!.p) rankSum += mid;
    i = j;
  }
  return (rankSum - (pos.length * (pos.length + 1)) / 2) / (pos.length * neg.length);
}

/**
 * What the gradient sees of a decision: the samples of one command in one true state of one group
 * share their action tokens, so their advantages add up (same-command samples with opposite
 * advantages cancel). The share of that net mass, |sum|, that points the right way: up on good
 * decisions, down on bad ones.
 */
function rightWay(steps: readonly Labelled[], component: string): { good: number; bad: number; all: number } {
  const net = new Map<string, { sum: number; good: boolean }>();
  for (const s of steps) {
    const n = net.get(s.decision) ?? { sum: 0, good: s.good };
    n.sum += s.values[component]!;
    net.set(s.decision, n);
  }
  const mass = { good: [0, 0], bad: [0, 0] };
  for (const { sum, good } of net.values()) {
    const m = good ? mass.good : mass.bad;
    m[1] += Math.abs(sum);
    if ((good && sum > 0) || (!good && sum < 0)) m[0] += Math.abs(sum);
  }
  const share = ([right, total]: number[]) => right! / Math.max(total!, 1e-12);
  return {
    good: share(mass.good),
    bad: share(mass.bad),
    all: (mass.good[0]! + mass.bad[0]!) / Math.max(mass.good[1]! + mass.bad[1]!, 1e-12),
  };
}

/** A store's name in the tables: its file name, or its folder's for the benches' `<run>/rl.db`. */
const storeName = (path: string) => {
  const parts = path.replace(/\.db$/, '').split('/');
  return parts.at(-1) === 'rl' && parts.length > 1 ? parts.at(-2)! : parts.at(-1)!;
};

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
const f = (x: number, d = 3) => (Number.isNaN(x) ? '-' : x.toFixed(d));

const labelled = stores.map((path) => ({ path, name: storeName(path), ...labelStore(path) }));

/** A markdown table after its title. */
function table(title: string, columns: readonly string[], rows: readonly (string | number)[][]): void {
  console.log(`\n${title}\n`);
  console.log(`| ${columns.join(' | ')} |`);
  console.log(`|${columns.map(() => '---|').join('')}`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

const componentsOf = (steps: readonly Labelled[]) => Object.keys(steps[0]?.values ?? { final: 0 });
const outcomes = [
  ['all', () => true],
  ['won', (s: Labelled) => s.won],
  ['lost', (s: Labelled) => !s.won],
] as const;

table(
  'Per step:',
  [
    'store',
    'estimator',
    'steps',
    'component',
    'trajectories',
    'good share',
    'AUC',
    'good A > 0',
    'bad A < 0',
    'mean A good',
    'mean A bad',
  ],
  labelled.flatMap(({ name, estimator, steps }) =>
    componentsOf(steps).flatMap((component) =>
      outcomes.map(([which, keep]) => {
        const kept = steps.filter(keep);
        const good = kept.filter((s) => s.good).map((s) => s.values[component]!);
        const bad = kept.filter((s) => !s.good).map((s) => s.values[component]!);
        const share = (xs: readonly number[], n: number) => f(xs.length / Math.max(n, 1));
        return [
          name,
          estimator,
          kept.length,
          component,
          which,
          share(good, kept.length),
          f(auc(good, bad)),
          share(
            good.filter((v) => v > 0),
            good.length,
          ),
          share(
            bad.filter((v) => v < 0),
            bad.length,
          ),
          f(mean(good)),
          f(mean(bad)),
        ];
      }),
    ),
  ),
);

table(
  'Per decision (the net advantage of one command in one true state of one group):',
  ['store', 'estimator', 'component', 'decisions', 'right-way mass', 'on good decisions', 'on bad decisions'],
  labelled.flatMap(({ name, estimator, steps }) => {
    const decisions = new Set(steps.map((s) => s.decision)).size;
    return componentsOf(steps).map((component) => {
      const r = rightWay(steps, component);
      return [name, estimator, component, decisions, f(r.all), f(r.good), f(r.bad)];
    });
  }),
);

/** GiGPO's step groups against the true states: how many of a shared step group's steps stand in another state. */
const gigpo = labelled.filter((l) => l.steps.some((s) => s.stepGroup !== undefined));
if (gigpo.length > 0) {
  table(
    "Step groups (GiGPO's anchors) against true states:",
    [
      'store',
      'steps in shared step groups',
      'of them in a group with more than one true state',
      'true states per such group',
    ],
    gigpo.map(({ name, steps }) => {
      const groups = new Map<string, Labelled[]>();
      for (const s of steps)
        if (s.stepGroup) groups.set(s.stepGroup, [...(groups.get(s.stepGroup) ?? []), s]);
      const shared = [...groups.values()].filter((g) => g.length > 1);
      const mixed = shared.filter((g) => new Set(g.map((s) => s.state)).size > 1);
      const inShared = shared.reduce((n, g) => n + g.length, 0);
      const inMixed = mixed.reduce((n, g) => n + g.length, 0);
      const states = mean(mixed.map((g) => new Set(g.map((s) => s.state)).size));
      return [name, `${inShared} of ${steps.length}`, f(inMixed / Math.max(inShared, 1)), f(states, 1)];
    }),
  );
}
