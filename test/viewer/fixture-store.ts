/**
 * A trajectory store built from real components, for the viewer's tests and bench.
 *
 * TEMPORARY: the trainer (issue 7) has not landed, so there is no "short real training run" to
 * produce a store yet. When it lands, this file is replaced by such a run. Until then:
 *
 * - household trajectories are played in the real HouseholdEnv with real prompts
 *   (`householdPrompt`); some rollouts follow the household expert, others take seeded random
 *   admissible actions (and now and then a malformed reply), so groups have mixed outcomes;
 * - search QA trajectories are played in the real SearchEnv through the real `web_search` tool,
 *   expert or random queries, with the tool calls recorded as the audit records them;
 * - token ids come from the real tokenizer, behaviour log-probs from a tiny untrained Policy's
 *   `score()`; IGPO's valueBefore is the same policy's mean log-prob of the gold answer;
 * - advantages come from the real estimators (GRPO, GiGPO, HGPO on household; IGPO and Flow-GRPO
 *   on search), with their per-row details as `rowDetails` gives them;
 * - metrics are computed from the rollouts: success_rate (and per task type), mean_return,
 *   invalid_rate, mean_length, entropy (the sampled-token estimate -mean log-prob), kl (k3 of the
 *   behaviour policy against a second untrained "reference" policy) and tokens_per_s (response
 *   tokens scored per second of this fixture's wall clock). The share of expert rollouts grows
 *   with the iteration, so the curves move the way a learning run's would; that share is the
 *   one scripted thing here.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import { renderMessages } from '../../src/agents/prompts/render.ts';
import { searchPrompt } from '../../src/agents/prompts/search.ts';
import { type StepRow as CreditRow, estimators, rowDetails } from '../../src/credit/index.ts';
import { uniform } from '../../src/envs/rng.ts';
import {
  EncyclopediaQA,
  HouseholdEnv,
  HouseholdExpert,
  HouseholdGenerator,
  Policy,
  SearchEnv,
  SearchExpert,
  Tokenizer,
  wordF1,
} from '../../src/index.ts';
import { openStore, type StepInput, type TrajectoryStore } from '../../src/store/index.ts';
import type {
  AdvantageRecord,
  GroupInput,
  Json,
  ToolCallRecord,
  TrajectoryInput,
} from '../../src/store/types.ts';
import { webSearchTool } from '../../src/tools/web-search.ts';

export interface FixtureOptions {
  /** Iterations per run. */
  iterations?: number;
  /** Tasks (groups) per iteration. */
  groups?: number;
  /** Rollouts per group (G). */
  groupSize?: number;
  /** Runs to write: household (GiGPO, HGPO, GRPO) and/or search (IGPO, Flow-GRPO). */
  runs?: Array<'household' | 'search'>;
  /** Household turn limit. */
  maxSteps?: number;
  /** Leave the household run 'running' (the live-update test writes more iterations into it). */
  keepRunning?: boolean;
}

export const HOUSEHOLD_RUN = 'household-gigpo';
export const SEARCH_RUN = 'search-igpo';

/** Seeded uniform numbers (mulberry32, the envs' generator), so runs reproduce. */
const rng = uniform;

/** The tokenizer and the two untrained policies, shared by every store this process builds. */
export interface FixtureModels {
  tokenizer: Tokenizer;
  policy: Policy;
  reference: Policy;
}

let models: FixtureModels | undefined;
export function fixtureModels(): FixtureModels {
  if (models) return models;
  const texts: string[] = [];
  const gen = new HouseholdGenerator();
  const env = new HouseholdEnv();
  for (let seed = 0; seed < 8; seed++) {
    const task = gen.generate('train', seed);
    texts.push(env.resetSync(seed, task), env.admissibleActions().join(' '));
  }
  texts.push('<think> I should </think> <action> </action> <search> </search> <answer> </answer>');
  const tokenizer = Tokenizer.train(texts, { vocabSize: 512 });
  models = {
    tokenizer,
    policy: Policy.create({ model: 'tiny', tokenizer, seed: 1 }),
    reference: Policy.create({ model: 'tiny', tokenizer, seed: 2 }),
  };
  return models;
}

export async function disposeFixtureModels(): Promise<void> {
  if (!models) return;
  await Promise.all([models.policy.dispose(), models.reference.dispose()]);
  models = undefined;
}

/** A step before scoring: texts and what the env made of the reply. */
interface PlayedStep extends Omit<StepInput, 'promptTokens' | 'responseTokens' | 'responseLogprobs'> {
  anchor: string;
}

interface PlayedTrajectory {
  trajectoryId: string;
  outcome: string;
  won: boolean;
  steps: PlayedStep[];
}

// The tiny preset's context is 512 tokens, and scoring cost grows with the length: log-probs are
// of the reply after the prompt's last 128 tokens (the stored promptTokens are the whole prompt).
const PROMPT_WINDOW = 128;
const MAX_RESPONSE = 120;

/** A step ready to write: tokens and log-probs scored; `attachAdvantages` fills the advantages. */
type ScoredStep = StepInput & { extras: Record<string, Json>; advantages: AdvantageRecord[] };
type ScoredGroup = Omit<GroupInput, 'trajectories'> & {
  trajectories: Array<Omit<TrajectoryInput, 'steps'> & { steps: ScoredStep[] }>;
};

/** A group as played: the task and its G rollouts. */
interface PlayedGroup {
  groupId: string;
  task: { id: string; kind: string; seed: number; split: string };
  trajectories: PlayedTrajectory[];
  /** Search: the gold answer (IGPO's values score it). */
  answer?: string;
}

/** The played groups as store groups, their steps taken in order from `scored`. */
function scoredGroups(played: PlayedGroup[], scored: ScoredStep[]): ScoredGroup[] {
  let k = 0;
  return played.map((g) => ({
    groupId: g.groupId,
    taskId: g.task.id,
    taskType: g.task.kind,
    seed: g.task.seed,
    split: g.task.split,
    trajectories: g.trajectories.map((t) => ({
      trajectoryId: t.trajectoryId,
      outcome: t.outcome,
      won: t.won,
      steps: t.steps.map(() => scored[k++]!),
    })),
  }));
}

/** Tokens and behaviour log-probs of every step; returns the KL (k3) and entropy sums for metrics. */
async function score(
  m: FixtureModels,
  steps: PlayedStep[],
): Promise<{ inputs: ScoredStep[]; kl: number; entropy: number; tokens: number }> {
  const pairs = steps.map((s) => {
    const prompt = m.tokenizer.encode(s.promptText);
    const response = [...m.tokenizer.encode(s.responseText).slice(0, MAX_RESPONSE - 1), m.tokenizer.endId];
    return { prompt, response, window: prompt.slice(-PROMPT_WINDOW) };
  });
  const batch = pairs.map((p) => ({ prompt: p.window, continuation: p.response }));
  const [behaviour, reference] = await Promise.all([
    m.policy.scoreBatch(batch),
    m.reference.scoreBatch(batch),
  ]);
  let kl = 0;
  let entropy = 0;
  let tokens = 0;
  const inputs = steps.map((s, i) => {
    const lp = behaviour[i]!;
    lp.forEach((v, t) => {
      const d = reference[i]![t]! - v;
      kl += Math.min(10, Math.max(-10, Math.exp(d) - d - 1));
      entropy -= v;
    });
    tokens += lp.length;
    return {
      ...s,
      extras: { ...s.extras },
      promptTokens: pairs[i]!.prompt,
      responseTokens: pairs[i]!.response,
      responseLogprobs: lp,
      advantages: [],
    };
  });
  return { inputs, kl, entropy, tokens };
}

/** One household rollout: expert actions, or seeded random admissible ones with some malformed replies. */
function playHousehold(
  env: HouseholdEnv,
  task: ReturnType<HouseholdGenerator['generate']>,
  expert: boolean,
  random: () => number,
  maxSteps: number,
  trajectoryId: string,
): PlayedTrajectory {
  let observation = env.resetSync(task.seed, task);
  const plan = expert ? new HouseholdExpert().demonstrate(task).actions : [];
  const history: { observation: string; action: string }[] = [];
  const steps: PlayedStep[] = [];
  let won = false;
  let outcome = 'turn_limit';
  for (let t = 0; t < maxSteps; t++) {
    const admissible = env.admissibleActions();
    const anchor = observation;
    const prompt = householdPrompt({
      task: task.payload.goalText,
      stepCount: t,
      history: history.slice(-2),
      observation,
      admissible,
    });
    const malformed = !expert && random() < 0.15;
    const action = expert ? plan[t]! : admissible[Math.floor(random() * admissible.length)]!;
    const responseText = malformed
      ? `I will ${action}`
      : `<think>I should ${action}.</think><action>${action}</action>`;
    const r = malformed
      ? { observation: 'Nothing happens.', reward: 0, done: false, info: { won: false } }
      : env.stepSync(action);
    steps.push({
      stepIndex: t,
      role: 'agent',
      anchor,
      promptText: renderMessages(prompt),
      responseText,
      envReward: r.reward,
      valid: !malformed,
      done: r.done || t === maxSteps - 1 || (expert && t === plan.length - 1),
      extras: { observation: r.observation, ...(malformed ? {} : { action }) },
    });
    history.push({ observation, action: malformed ? 'Invalid action.' : action });
    observation = r.observation;
    if (r.info.won) {
      won = true;
      outcome = 'won';
    }
    if (r.done || won || (expert && t === plan.length - 1)) break;
  }
  return { trajectoryId, outcome, won, steps };
}

/** One search rollout through the real web_search tool: expert hops, or a random entity then a guess. */
async function playSearch(
  env: SearchEnv,
  search: ReturnType<typeof webSearchTool>,
  task: ReturnType<EncyclopediaQA['generate']>,
  expert: boolean,
  random: () => number,
  trajectoryId: string,
): Promise<PlayedTrajectory> {
  let observation = await env.reset(task.seed, task);
  const messages = searchPrompt(task.payload.question, env.config.maxTurns);
  const words = task.payload.question.split(/\s+/).filter((w) => w.length > 3);
  const actions = expert
    ? new SearchExpert().demonstrate(task).actions
    : [
        `<search>${words[Math.floor(random() * words.length)] ?? 'history'}</search>`,
        random() < 0.5 ? `<answer>${words[0] ?? 'unknown'}</answer>` : 'I think the answer is unclear',
      ];
  const steps: PlayedStep[] = [];
  let won = false;
  let outcome = 'turn_limit';
  for (let t = 0; t < actions.length; t++) {
    const anchor = observation;
    const action = actions[t]!;
    const toolCalls: ToolCallRecord[] = [];
    const query = /^<search>(.*)<\/search>$/.exec(action)?.[1];
    if (query !== undefined) {
      // The env's own search goes through the same tool; this call is the audit record of it.
      const startedAt = Date.now();
      const t0 = performance.now();
      const out = await search.execute({ query });
      toolCalls.push({
        tool: 'web_search',
        arguments: JSON.stringify({ query }),
        startedAt,
        durationMs: performance.now() - t0,
        ok: out.ok,
        truncated: out.truncated ?? false,
        outputChars: (out.output ?? '').length,
      });
    }
    const r = await env.step(action);
    const answered = /^<answer>/.test(action);
    const last = r.done || t === actions.length - 1;
    const extras: Record<string, Json> = { observation: r.observation, answered };
    if (answered) extras.outcomeReward = wordF1(action.slice(8, -9), task.payload.answers);
    steps.push({
      stepIndex: t,
      role: 'agent',
      anchor,
      promptText: renderMessages(messages),
      responseText: action,
      envReward: r.reward,
      valid: r.info.valid,
      done: last,
      extras,
      toolCalls,
    });
    messages.push({ role: 'assistant', content: action }, { role: 'user', content: r.observation });
    observation = r.observation;
    if (r.info.won) {
      won = true;
      outcome = 'won';
    } else if (answered) outcome = 'answered';
    if (r.done) break;
  }
  // Flow-GRPO reads the trajectory's final outcome on its rows.
  for (const s of steps) s.extras = { ...s.extras, finalOutcome: won ? 1 : 0 };
  return { trajectoryId, outcome, won, steps };
}

/** IGPO's v_t: mean log-prob of the gold answer after each turn's context and an answer tag. */
async function valuesBefore(m: FixtureModels, steps: StepInput[], answer: string): Promise<number[]> {
  const gold = m.tokenizer.encode(answer);
  const lps = await m.policy.scoreBatch(
    steps.map((s) => ({
      prompt: [...s.promptTokens, ...m.tokenizer.encode(' <answer>')].slice(-PROMPT_WINDOW),
      continuation: gold,
    })),
  );
  return lps.map((lp) => lp.reduce((a, b) => a + b, 0) / lp.length);
}

type Estimated = { name: string; options?: Record<string, unknown> };

/** Runs each estimator over the iteration's rows and attaches value and details to the steps. */
function attachAdvantages(groups: ScoredGroup[], list: Estimated[]): void {
  const rows: CreditRow[] = [];
  const targets: ScoredStep[] = [];
  for (const g of groups) {
    for (const t of g.trajectories) {
      for (const s of t.steps) {
        const e = s.extras;
        const row: CreditRow = {
          groupId: g.groupId,
          trajectoryId: t.trajectoryId,
          stepIndex: s.stepIndex,
          anchor: s.anchor as string,
          envReward: s.envReward,
          valid: s.valid,
          role: s.role,
        };
        if (typeof e.valueBefore === 'number') row.valueBefore = e.valueBefore;
        if (typeof e.answered === 'boolean') row.answered = e.answered;
        if (typeof e.outcomeReward === 'number') row.outcomeReward = e.outcomeReward;
        rows.push(row);
        targets.push(s);
      }
    }
  }
  for (const { name, options } of list) {
    const est = estimators[name as keyof typeof estimators];
    // Flow-GRPO's outcome is the final correctness, carried on every row.
    const input =
      name === 'flow-grpo'
        ? rows.map((r, i) => ({ ...r, outcomeReward: targets[i]!.extras.finalOutcome as number }))
        : rows;
    const result = est.run(input, options);
    targets.forEach((s, i) => {
      const details = rowDetails(result.details, i) as Record<string, Json>;
      if (name === 'hgpo') details.alpha = (options?.alpha as number | undefined) ?? 1;
      s.advantages.push({ estimator: name, value: result.advantages[i]!, details });
    });
  }
}

function iterationMetrics(
  groups: GroupInput[],
  scored: { kl: number; entropy: number; tokens: number },
  seconds: number,
): Record<string, number> {
  const trajectories = groups.flatMap((g) => g.trajectories.map((t) => ({ ...t, kind: g.taskType })));
  const steps = trajectories.flatMap((t) => t.steps);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const out: Record<string, number> = {
    success_rate: mean(trajectories.map((t) => (t.won ? 1 : 0))),
    mean_return: mean(trajectories.map((t) => t.steps.reduce((a, s) => a + s.envReward, 0))),
    invalid_rate: mean(steps.map((s) => (s.valid ? 0 : 1))),
    mean_length: mean(trajectories.map((t) => t.steps.length)),
    kl: scored.kl / Math.max(1, scored.tokens),
    entropy: scored.entropy / Math.max(1, scored.tokens),
    tokens_per_s: scored.tokens / Math.max(1e-3, seconds),
  };
  // held-out groups are this fixture's evaluation (the trainer writes eval/* metrics the same way)
  for (const split of new Set(groups.map((g) => g.split))) {
    if (split === 'train') continue;
    const held = groups.filter((g) => g.split === split).flatMap((g) => g.trajectories);
    out[`eval/${split}/success_rate`] = mean(held.map((t) => (t.won ? 1 : 0)));
  }
  for (const kind of new Set(trajectories.map((t) => t.kind ?? 'task'))) {
    out[`success_rate/${kind}`] = mean(
      trajectories.filter((t) => t.kind === kind).map((t) => (t.won ? 1 : 0)),
    );
  }
  return out;
}

/** Writes household iteration `it` of the household run. */
export async function writeHouseholdIteration(
  store: TrajectoryStore,
  it: number,
  options: FixtureOptions = {},
): Promise<void> {
  const m = fixtureModels();
  const nGroups = options.groups ?? 2;
  const G = options.groupSize ?? 4;
  const maxSteps = options.maxSteps ?? 8;
  const totalIterations = options.iterations ?? 3;
  const gen = new HouseholdGenerator();
  const env = new HouseholdEnv();
  const random = rng(1000 + it);
  const t0 = performance.now();
  const played: PlayedGroup[] = [];
  for (let g = 0; g < nGroups; g++) {
    // a few tasks repeat across iterations, as a trainer's task sampler would
    const seed = (it * nGroups + g) % 7;
    const task = gen.generate('train', seed);
    const expertShare = 0.25 + (0.5 * it) / Math.max(1, totalIterations - 1);
    const trajectories: PlayedTrajectory[] = [];
    for (let r = 0; r < G; r++) {
      const expert = r === 0 ? true : r === G - 1 ? false : random() < expertShare;
      trajectories.push(playHousehold(env, task, expert, random, maxSteps, `t${r}`));
    }
    played.push({ groupId: `g${g}`, task, trajectories });
  }
  const scored = await score(
    m,
    played.flatMap((g) => g.trajectories.flatMap((t) => t.steps)),
  );
  const groups = scoredGroups(played, scored.inputs);
  attachAdvantages(groups, [{ name: 'gigpo' }, { name: 'hgpo', options: { alpha: 1 } }, { name: 'grpo' }]);
  const metrics = iterationMetrics(groups, scored, (performance.now() - t0) / 1000);
  store.writeIteration(HOUSEHOLD_RUN, { iteration: it, groups, metrics });
}

async function writeSearchIteration(
  store: TrajectoryStore,
  it: number,
  options: FixtureOptions,
  source: EncyclopediaQA,
  search: ReturnType<typeof webSearchTool>,
): Promise<void> {
  const m = fixtureModels();
  const nGroups = options.groups ?? 2;
  const G = options.groupSize ?? 4;
  const random = rng(2000 + it);
  const t0 = performance.now();
  const played: PlayedGroup[] = [];
  for (let g = 0; g < nGroups; g++) {
    const split = g === nGroups - 1 ? 'valid-seen' : 'train';
    const task = source.generate(split, it * nGroups + g);
    const env = new SearchEnv({ maxTurns: 4 }, { source, search });
    const trajectories: PlayedTrajectory[] = [];
    for (let r = 0; r < G; r++)
      trajectories.push(await playSearch(env, search, task, r % 2 === 0, random, `t${r}`));
    played.push({ groupId: `q${g}`, task, trajectories, answer: task.payload.answers[0]! });
  }
  const scored = await score(
    m,
    played.flatMap((g) => g.trajectories.flatMap((t) => t.steps)),
  );
  const groups = scoredGroups(played, scored.inputs);
  for (const [gi, g] of groups.entries()) {
    const answer = played[gi]!.answer!;
    for (const t of g.trajectories) {
      const values = await valuesBefore(m, t.steps, answer);
      t.steps.forEach((s, i) => {
        s.extras.valueBefore = values[i]!;
      });
    }
  }
  attachAdvantages(groups, [{ name: 'igpo' }, { name: 'flow-grpo' }]);
  const metrics = iterationMetrics(groups, scored, (performance.now() - t0) / 1000);
  store.writeIteration(SEARCH_RUN, { iteration: it, groups, metrics });
}

/**
 * The tokenizer beside the store, recorded as the run's checkpoint 0 (a tokenizer-only one: there
 * are no trained weights), which is where `stepwise view` looks for token texts.
 */
function saveTokenizer(store: TrajectoryStore, dbPath: string, runId: string): void {
  const dir = join(dirname(dbPath), 'fixture-checkpoint');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(fixtureModels().tokenizer.toJSON()));
  store.addCheckpoint(runId, 0, 'fixture-checkpoint', { note: 'tokenizer only (viewer fixture)' });
}

/** Builds the fixture store at `path` (a new file) and returns what it wrote. */
export async function buildFixtureStore(path: string, options: FixtureOptions = {}): Promise<void> {
  const iterations = options.iterations ?? 3;
  const runs = options.runs ?? ['household', 'search'];
  const store = openStore(path, { backgroundCheckpoint: false });
  try {
    if (runs.includes('household')) {
      store.createRun(HOUSEHOLD_RUN, {
        estimator: 'gigpo',
        env: 'household',
        groupSize: options.groupSize ?? 4,
        model: 'tiny',
        gamma: 0.95,
        note: 'viewer fixture: real env, tokenizer, untrained policy and estimators; no updates',
      });
      saveTokenizer(store, path, HOUSEHOLD_RUN);
      for (let it = 0; it < iterations; it++) await writeHouseholdIteration(store, it, options);
      if (!options.keepRunning) store.setRunStatus(HOUSEHOLD_RUN, 'finished');
    }
    if (runs.includes('search')) {
      store.createRun(SEARCH_RUN, { estimator: 'igpo', env: 'search', groupSize: options.groupSize ?? 4 });
      saveTokenizer(store, path, SEARCH_RUN);
      const source = new EncyclopediaQA({});
      const search = webSearchTool({ index: source.index(), defaultK: 3 });
      for (let it = 0; it < iterations; it++) await writeSearchIteration(store, it, options, source, search);
      store.setRunStatus(SEARCH_RUN, 'finished');
    }
  } finally {
    store.close();
  }
}
