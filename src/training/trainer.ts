/**
 * The RL loop. One iteration:
 *
 *   draw tasks -> G rollouts per task from the same seed (PolicyChatModel, shared decode batches)
 *   -> advantages from the chosen estimator over the iteration's step rows
 *   -> behaviour and reference log-probs from the scoring graph -> token rows (advantage on every
 *   response token) -> PPO epochs of mini-batches through Policy.update
 *   -> checkpoint -> the iteration (trajectories, advantages, metrics) into the store, in one
 *   transaction -> evaluation every k iterations.
 *
 * The iteration is written after its update and checkpoint, so a store iteration always has its
 * weights on disk: a killed run resumes after its last written iteration from that iteration's
 * checkpoint, and an iteration cut short is rolled out again from scratch (nothing counted twice).
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import cliProgress from 'cli-progress';
import { groupTrajectories, rolloutMetrics, type Trajectory } from '../agents/record.ts';
import { estimators } from '../credit/estimators.ts';
import { rowDetails } from '../credit/jsonl.ts';
import { hashString, Rng } from '../envs/rng.ts';
import type { Split } from '../envs/types.ts';
import { Policy } from '../policy/policy.ts';
import type { TokenRow } from '../policy/runtime/runner.ts';
import { openStore, type TrajectoryStore } from '../store/index.ts';
import type { AdvantageRecord, GroupInput, Json } from '../store/types.ts';
import { parseTrainConfig, type TrainConfig, TrainConfigError } from './config.ts';
import { makeFamily } from './families/index.ts';
import { creditRows, type Demonstrated, type FamilyHooks, type TaskFamily } from './family.ts';
import { domainTokenizer, keptByRole, runSft, type SftResult, sftSamples } from './sft.ts';

/** What the caller may swap in (a family of its own, a tokenizer), and how the run reports. */
export interface TrainHooks extends FamilyHooks {
  /**
   * The starting checkpoint's evaluations, when the caller already has them (runs that share one
   * SFT checkpoint, as the learning benchmark's): stored as this run's "before" instead of re-run.
   */
  before?: TrainResult['before'];
  /** Continue a stored run of the same id instead of refusing it. */
  resume?: boolean;
  /** Progress bars on stderr (only drawn on a terminal). */
  progress?: boolean;
  /** One line per iteration and per phase; default console.log. */
  log?: (line: string) => void;
}

/** Success on an evaluation split, overall and per task type. */
export interface EvalResult {
  split: Split;
  tasks: number;
  success: number;
  meanReturn: number;
  invalidRate: number;
  byType: Record<string, { tasks: number; success: number }>;
  /** Means of the family's own figures (search: f1, exact_match), as fractions. */
  scores: Record<string, number>;
}

export interface TrainResult {
  db: string;
  runId: string;
  /** Evaluations of the starting (SFT) policy and of the final one, on valid-seen and valid-unseen. */
  before: Record<'valid-seen' | 'valid-unseen', EvalResult>;
  after: Record<'valid-seen' | 'valid-unseen', EvalResult>;
  /** Iterations run in this call (a resumed run counts only its new ones). */
  iterationsRun: number;
  sft?: SftResult;
  lastCheckpoint: string;
  referenceCheckpoint: string;
}

/** A run that stopped because its update went wrong; its last good checkpoint is kept. */
export class DivergenceError extends Error {
  constructor(
    message: string,
    readonly lastGoodCheckpoint: string,
  ) {
    super(`${message}; the run stopped, its last good checkpoint is ${lastGoodCheckpoint}`);
    this.name = 'DivergenceError';
  }
}

const EVAL_SPLITS = ['valid-seen', 'valid-unseen'] as const;

/** Seed of the k-th task of an iteration's attempt: distinct per (run seed, iteration, attempt, k). */
export function taskSeed(seed: number, iteration: number, attempt: number, k: number): number {
  return hashString(`task:${seed}:${iteration}:${attempt}:${k}`) % 2 ** 30;
}

function progressBar(label: string, unit: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
}

/** A progress bar that also reports its rate; does nothing unless `on`. */
function tracker(on: boolean, label: string, unit: string, total: number) {
  const bar = on ? progressBar(label, unit) : undefined;
  const started = performance.now();
  let done = 0;
  bar?.start(total, 0, { rate: '0' });
  return {
    tick(n = 1) {
      done += n;
      bar?.update(done, { rate: (done / ((performance.now() - started) / 1000)).toFixed(1) });
    },
    stop() {
      bar?.stop();
    },
  };
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Greedy evaluation: one rollout per task of `split` (seeds 0..n-1, the same every time). */
export async function evaluate(
  policy: Policy,
  family: TaskFamily,
  split: Split,
  tasks: number,
): Promise<EvalResult> {
  const drawn = Array.from({ length: tasks }, (_, seed) => family.task(split, seed));
  const trajectories = await family.rollout(policy, { tasks: drawn, groupSize: 1, temperature: 0, seed: 0 });
  const byType: EvalResult['byType'] = {};
  for (const t of trajectories) {
    byType[t.task.kind] ??= { tasks: 0, success: 0 };
    const entry = byType[t.task.kind]!;
    entry.tasks++;
    entry.success += t.won ? 1 : 0;
  }
  for (const entry of Object.values(byType)) entry.success /= entry.tasks;
  const scores: Record<string, number[]> = {};
  for (const t of trajectories) {
    for (const [k, v] of Object.entries(family.scores?.(t) ?? {})) scores[k] = [...(scores[k] ?? []), v];
  }
  const m = rolloutMetrics(trajectories);
  return {
    split,
    tasks: drawn.length,
    success: m.success_rate!,
    meanReturn: m.mean_return!,
    invalidRate: m.invalid_rate!,
    byType,
    scores: Object.fromEntries(Object.entries(scores).map(([k, xs]) => [k, mean(xs)])),
  };
}

/**
 * Groups to store; each trained step carries the estimator's advantage and the details that
 * explain it (GiGPO's parts, HGPO's levels, IGPO's values and gains...), which the viewer shows.
 */
function groupsWithAdvantages(
  trajectories: readonly Trajectory[],
  credit: Map<string, AdvantageRecord>,
): GroupInput[] {
  return groupTrajectories(trajectories).map((g) => ({
    ...g,
    trajectories: g.trajectories.map((t) => ({
      ...t,
      steps: t.steps.map((s) => {
        const record = credit.get(stepKey(g.groupId, t.trajectoryId, s.stepIndex));
        return record ? { ...s, advantages: [record] } : s;
      }),
    })),
  }));
}

const stepKey = (groupId: string, trajectoryId: string, stepIndex: number) =>
  `${groupId}|${trajectoryId}|${stepIndex}`;

/**
 * Token rows of an iteration: prompt + response tokens, the loss mask on the response, the step's
 * advantage broadcast to its response tokens, and the behaviour (current policy) and reference
 * log-probs of the response tokens from the scoring graph.
 */
export async function tokenRows(
  policy: Policy,
  reference: Policy,
  steps: readonly { prompt: number[]; response: number[]; advantage: number }[],
  chunk = 32,
): Promise<TokenRow[]> {
  const rows: TokenRow[] = [];
  for (let i = 0; i < steps.length; i += chunk) {
    const part = steps.slice(i, i + chunk);
    const pairs = part.map((s) => ({ prompt: s.prompt, continuation: s.response }));
    const [old, ref] = [await policy.scoreBatch(pairs), await reference.scoreBatch(pairs)];
    part.forEach((s, j) => {
      const pad = s.prompt.map(() => 0);
      rows.push({
        tokens: [...s.prompt, ...s.response],
        mask: [...pad, ...s.response.map(() => 1)],
        advantages: [...pad, ...s.response.map(() => s.advantage)],
        oldLogprobs: [...pad, ...old[j]!],
        refLogprobs: [...pad, ...ref[j]!],
      });
    });
  }
  return rows;
}

/** The expert's demonstrations on `n` tasks of `split` (seeds offset from the evaluation's 0..n-1). */
function demosOf(family: TaskFamily, split: Split, n: number): Promise<Demonstrated[]> {
  // Offset so that SFT never sees an evaluated task.
  return family.demonstrations(Array.from({ length: n }, (_, k) => family.task(split, 1_000_000 + k)));
}

/** A fresh policy (tokenizer trained on the envs' and the loop's text) or the configured checkpoint. */
async function startingPolicy(
  config: TrainConfig,
  hooks: TrainHooks,
  family: TaskFamily,
  demos: readonly Demonstrated[],
): Promise<Policy> {
  if (config.policy.checkpoint) return Policy.load(config.policy.checkpoint, { device: config.device });
  const tokenizer =
    hooks.tokenizer ??
    (await domainTokenizer(
      config.policy.vocabSize,
      config.policy.tokenizerTasks,
      demos,
      await family.tokenizerText?.(),
    ));
  return Policy.create({
    model: config.policy.model ?? config.policy.preset,
    tokenizer,
    device: config.device,
    seed: config.seed,
  });
}

/** SFT on the expert's demonstrations (train split), validated on valid-seen ones. */
async function warmStart(
  policy: Policy,
  config: TrainConfig,
  hooks: TrainHooks,
  family: TaskFamily,
  log: (line: string) => void,
  trainDemos: readonly Demonstrated[],
): Promise<SftResult> {
  const context = policy.config.contextLength;
  const train = sftSamples(trainDemos, policy.tokenizer, context);
  const valid = sftSamples(
    await demosOf(family, 'valid-seen', config.sft.validTasks),
    policy.tokenizer,
    context,
  );
  const roles = keptByRole(trainDemos, policy.tokenizer, context);
  log(
    `sft: ${train.length} training samples (${trainDemos.length - train.length} longer than the context left out), ` +
      `${valid.length} validation samples${roles ? `; kept per role: ${roles}` : ''}`,
  );
  const result = await runSft(policy, train, valid, config.sft, {
    seed: config.seed,
    progress: hooks.progress,
    log,
  });
  log(
    `sft: ${result.steps} steps, train loss ${result.trainLoss.toFixed(4)}, valid loss ${result.validLoss.toFixed(4)} ` +
      `(stopped by ${result.stoppedBy})`,
  );
  return result;
}

/**
 * An evaluation as metrics, named `<prefix>/<split>/<metric>` (the viewer reads `eval/...` as
 * evaluations): success, invalid_rate and success/<task type>.
 */
function evalMetrics(prefix: string, e: EvalResult): Record<string, number> {
  const out: Record<string, number> = {
    [`${prefix}/${e.split}/success`]: e.success,
    [`${prefix}/${e.split}/invalid_rate`]: e.invalidRate,
  };
  for (const [name, v] of Object.entries(e.scores)) out[`${prefix}/${e.split}/${name}`] = v;
  for (const [type, v] of Object.entries(e.byType)) out[`${prefix}/${e.split}/success/${type}`] = v.success;
  return out;
}

/** Rollout success per task type, as `success_rate/<type>`. */
function successByType(trajectories: readonly Trajectory[]): Record<string, number> {
  const won = new Map<string, number[]>();
  for (const t of trajectories) won.set(t.task.kind, [...(won.get(t.task.kind) ?? []), t.won ? 1 : 0]);
  return Object.fromEntries([...won].map(([type, xs]) => [`success_rate/${type}`, mean(xs)]));
}

/** Run (or resume) a training run end to end: SFT, evaluation before, the RL iterations, evaluation after. */
export async function train(input: unknown, hooks: TrainHooks = {}): Promise<TrainResult> {
  const config = parseTrainConfig(input);
  const log = hooks.log ?? ((line: string) => console.log(line));
  await mkdir(dirname(config.db) || '.', { recursive: true });
  await mkdir(config.checkpointDir, { recursive: true });
  const family = await makeFamily(config, hooks);
  const store = openStore(config.db);
  try {
    return await trainOn(store, config, hooks, family, log);
  } finally {
    store.close();
    await family.close?.();
  }
}

async function trainOn(
  store: TrajectoryStore,
  config: TrainConfig,
  hooks: TrainHooks,
  family: TaskFamily,
  log: (line: string) => void,
): Promise<TrainResult> {
  const runId = config.runId;
  const existing = store.run(runId);
  if (existing && !hooks.resume) {
    throw new Error(
      `run '${runId}' is already in ${config.db}; pass --resume to continue it, or choose another --db or runId`,
    );
  }
  const sftDir = join(config.checkpointDir, 'sft');
  const iterDir = (it: number) => join(config.checkpointDir, `iter-${it}`);
  let policy: Policy;
  let sft: SftResult | undefined;
  let referenceDir: string;
  let next = 0;

  if (existing) {
    sameAsStored(config, existing.config);
    referenceDir = (existing.config as { reference?: string }).reference ?? sftDir;
    const last = store.lastCompleteIteration(runId);
    // The checkpoint is saved before its iteration is written; a kill between the write and
    // addCheckpoint leaves it on disk but unregistered.
    if (last !== undefined && !store.checkpoints(runId).some((c) => c.iteration === last)) {
      if (!existsSync(join(iterDir(last), 'config.json'))) {
        throw new Error(
          `cannot resume run '${runId}': iteration ${last} is stored but its checkpoint is missing`,
        );
      }
      store.addCheckpoint(runId, last, iterDir(last));
    }
    const point = store.resumePoint(runId);
    next = point.nextIteration;
    const from = point.checkpoint?.path ?? referenceDir;
    policy = await Policy.load(from, { device: config.device });
    store.setRunStatus(runId, 'running');
    log(`resuming run '${runId}' at iteration ${next} from ${from}`);
  } else {
    const demos = config.sft.enabled ? await demosOf(family, 'train', config.sft.tasks) : [];
    policy = await startingPolicy(config, hooks, family, demos);
    if (config.sft.enabled) {
      sft = await warmStart(policy, config, hooks, family, log, demos);
      await rm(sftDir, { recursive: true, force: true });
      await policy.save(sftDir);
      referenceDir = sftDir;
    } else {
      referenceDir = config.policy.checkpoint!;
    }
    store.createRun(runId, { ...(config as unknown as Record<string, Json>), reference: referenceDir });
  }
  const reference = await Policy.load(referenceDir, { device: config.device, bakeWeights: true });

  try {
    // The "before" evaluation is the reference policy's: stored once, read back on resume.
    const before = {} as TrainResult['before'];
    for (const split of EVAL_SPLITS) {
      const stored = store.metricSeries(runId, `before/${split}/success`);
      if (stored.length > 0) before[split] = storedEval(store, runId, 'before', split);
      else {
        before[split] =
          hooks.before?.[split] ?? (await evaluate(reference, family, split, config.eval.tasks));
        store.writeMetrics(runId, 0, evalMetrics('before', before[split]));
      }
    }
    log(
      `before: valid-seen ${pct(before['valid-seen'].success)}, valid-unseen ${pct(before['valid-unseen'].success)}`,
    );

    let lastCheckpoint = next > 0 ? store.resumePoint(runId).checkpoint!.path : referenceDir;
    let ran = 0;
    const budget = config.envStepBudget ?? Number.POSITIVE_INFINITY;
    for (let it = next; it < config.iterations && envStepsSoFar(store, runId) < budget; it++) {
      lastCheckpoint = await iteration(
        store,
        config,
        hooks,
        family,
        log,
        policy,
        reference,
        it,
        lastCheckpoint,
      );
      ran++;
    }
    if (envStepsSoFar(store, runId) >= budget) {
      log(`the environment-step budget (${budget}) is spent after ${envStepsSoFar(store, runId)} steps`);
    }
    // With no RL iteration (iterations: 0) the policy is the reference: "after" is "before".
    const after = { ...before };
    const lastIteration = store.lastCompleteIteration(runId);
    for (const split of lastIteration === undefined ? [] : EVAL_SPLITS) {
      // A finished run resumed with nothing left to do keeps its stored evaluation (not a second one).
      if (ran === 0 && store.metricSeries(runId, `after/${split}/success`).length > 0) {
        after[split] = storedEval(store, runId, 'after', split);
        continue;
      }
      after[split] = await evaluate(policy, family, split, config.eval.tasks);
      store.writeMetrics(runId, lastIteration!, evalMetrics('after', after[split]));
    }
    store.setRunStatus(runId, 'finished');
    return {
      db: config.db,
      runId,
      before,
      after,
      iterationsRun: ran,
      sft,
      lastCheckpoint,
      referenceCheckpoint: referenceDir,
    };
  } catch (err) {
    store.setRunStatus(runId, err instanceof DivergenceError ? 'failed' : 'stopped');
    throw err;
  } finally {
    await reference.dispose();
    await policy.dispose();
  }
}

/** Environment steps of the run's stored iterations (the `env_steps` metric is cumulative). */
function envStepsSoFar(store: TrajectoryStore, runId: string): number {
  return store.metricSeries(runId, 'env_steps').at(-1)?.value ?? 0;
}

/**
 * A resumed run must keep what its stored iterations were made with (more iterations are fine):
 * otherwise the run would mix two experiments under one id.
 */
function sameAsStored(config: TrainConfig, stored: Json): void {
  const before = stored as Record<string, Json>;
  for (const field of ['env', 'estimator', 'groupSize', 'tasksPerIteration', 'seed', 'split'] as const) {
    const was = before[field];
    if (was !== undefined && was !== config[field]) {
      throw new TrainConfigError(
        field,
        `${JSON.stringify(config[field])} differs from the stored run's ${JSON.stringify(was)}; resume with the same value or start a new run`,
      );
    }
  }
}

/** An evaluation read back from the metrics table (per-type successes; counts are not stored). */
function storedEval(store: TrajectoryStore, runId: string, prefix: string, split: Split): EvalResult {
  const value = (name: string) => store.metricSeries(runId, name).at(-1)?.value ?? 0;
  const byType: EvalResult['byType'] = {};
  const scores: Record<string, number> = {};
  const splitPrefix = `${prefix}/${split}/`;
  for (const name of store.metricNames(runId)) {
    if (!name.startsWith(splitPrefix)) continue;
    const rest = name.slice(splitPrefix.length);
    if (rest.startsWith('success/'))
      byType[rest.slice('success/'.length)] = { tasks: 0, success: value(name) };
    else if (rest !== 'success' && rest !== 'invalid_rate') scores[rest] = value(name);
  }
  return {
    split,
    tasks: 0,
    success: value(`${prefix}/${split}/success`),
    meanReturn: 0,
    invalidRate: value(`${prefix}/${split}/invalid_rate`),
    byType,
    scores,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** One RL iteration; returns the path of its checkpoint. */
async function iteration(
  store: TrajectoryStore,
  config: TrainConfig,
  hooks: TrainHooks,
  family: TaskFamily,
  log: (line: string) => void,
  policy: Policy,
  reference: Policy,
  it: number,
  lastGood: string,
): Promise<string> {
  const sampling = hashString(`sample:${config.seed}:${it}`) % 2 ** 30;

  // Rollouts (with dynamic sampling: keep groups whose outcomes differ, roll more tasks).
  const rolloutStart = performance.now();
  const want = config.tasksPerIteration;
  let kept: Trajectory[] = [];
  let all: Trajectory[] = [];
  const attempts = config.dynamicSampling.enabled ? config.dynamicSampling.retries + 1 : 1;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const have = new Set(kept.map((t) => t.groupId)).size;
    if (have >= want) break;
    const tasks = Array.from({ length: want - have }, (_, k) =>
      family.task(config.split, taskSeed(config.seed, it, attempt, k)),
    );
    const bar = tracker(hooks.progress ?? false, `rollout ${it}`, 'traj', tasks.length * config.groupSize);
    const batch = await family.rollout(policy, {
      tasks,
      groupSize: config.groupSize,
      temperature: config.loop.temperature,
      seed: sampling + attempt,
      onTrajectory: () => bar.tick(),
    });
    bar.stop();
    all = all.concat(batch);
    kept = kept.concat(config.dynamicSampling.enabled ? informativeGroups(batch) : batch);
  }
  // Nothing informative at all: train on everything (the advantages are then zero, KL still counts).
  const trajectories = kept.length > 0 ? kept : all;
  const rolloutSeconds = (performance.now() - rolloutStart) / 1000;

  // Advantages over the iteration's trainable steps, with the details that explain them.
  const trainable = (s: Trajectory['steps'][number]) =>
    s.responseTokens.length > 0 && (family.trainable?.(s) ?? true);
  const rows = family.creditRows
    ? await family.creditRows(trajectories, policy)
    : creditRows(trajectories, trainable);
  const credit = estimators[config.estimator].run(rows, config.estimatorOptions);
  const records = new Map<string, AdvantageRecord>();
  for (const [i, r] of rows.entries()) {
    const details = rowDetails(credit.details, i) as Record<string, Json>;
    if (config.estimator === 'hgpo')
      details.alpha = (config.estimatorOptions.alpha as number | undefined) ?? 1;
    records.set(stepKey(String(r.groupId), String(r.trajectoryId), r.stepIndex), {
      estimator: config.estimator,
      value: credit.advantages[i]!,
      details,
    });
  }
  const advantageOf = (t: Trajectory, stepIndex: number) => {
    const record = records.get(stepKey(t.groupId, t.trajectoryId, stepIndex));
    if (!record) {
      throw new Error(
        `the estimator's rows miss trainable step ${stepIndex} of trajectory ${t.groupId}/${t.trajectoryId}`,
      );
    }
    return record.value;
  };

  // Token rows and the PPO epochs.
  const updateStart = performance.now();
  const steps = trajectories.flatMap((t) =>
    t.steps.filter(trainable).map((s) => ({
      prompt: s.promptTokens,
      response: s.responseTokens,
      advantage: advantageOf(t, s.stepIndex),
    })),
  );
  const tokenBatch = await tokenRows(policy, reference, steps);
  const rng = new Rng(`ppo:${config.seed}:${it}`);
  const perEpoch = Math.ceil(tokenBatch.length / config.ppo.miniBatchSize);
  const bar = tracker(hooks.progress ?? false, `update  ${it}`, 'batch', perEpoch * config.ppo.epochs);
  const seen: Record<'loss' | 'kl' | 'entropy' | 'clipFraction' | 'gradNorm', number[]> = {
    loss: [],
    kl: [],
    entropy: [],
    clipFraction: [],
    gradNorm: [],
  };
  let updateTokens = 0;
  const loss = {
    kind: 'rl' as const,
    learningRate: config.ppo.learningRate,
    clipLow: config.ppo.clipLow,
    clipHigh: config.ppo.clipHigh,
    clipC: config.ppo.clipC,
    klCoef: config.ppo.klCoef,
    entropyCoef: config.ppo.entropyCoef,
    lossAgg: config.ppo.lossAgg,
    maxGradNorm: config.ppo.maxGradNorm,
  };
  for (let epoch = 0; epoch < config.ppo.epochs; epoch++) {
    const order = rng.shuffle(tokenBatch.map((_, i) => i));
    for (let b = 0; b < order.length; b += config.ppo.miniBatchSize) {
      const mini = order.slice(b, b + config.ppo.miniBatchSize).map((i) => tokenBatch[i]!);
      const m = await policy.update(mini, loss);
      if (m.skipped || !Number.isFinite(m.loss)) {
        bar.stop();
        throw new DivergenceError(
          `iteration ${it}: the loss (${m.loss}) or gradient norm (${m.gradNorm}) is not finite`,
          lastGood,
        );
      }
      if (m.kl > config.ppo.maxKl) {
        bar.stop();
        throw new DivergenceError(
          `iteration ${it}: the KL to the reference (${m.kl.toFixed(4)}) passed ppo.maxKl (${config.ppo.maxKl})`,
          lastGood,
        );
      }
      for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k].push(m[k]);
      updateTokens += m.tokens;
      bar.tick();
    }
  }
  bar.stop();
  const updateSeconds = (performance.now() - updateStart) / 1000;

  // Checkpoint first, then the iteration: a stored iteration always has its weights on disk.
  const dir = join(config.checkpointDir, `iter-${it}`);
  await rm(dir, { recursive: true, force: true });
  await policy.save(dir);
  const rolloutTokens = trajectories.reduce(
    (a, t) => a + t.steps.reduce((b, s) => b + s.responseTokens.length, 0),
    0,
  );
  const metrics: Record<string, number> = {
    ...rolloutMetrics(trajectories),
    ...successByType(trajectories),
    loss: mean(seen.loss),
    kl: mean(seen.kl),
    entropy: mean(seen.entropy),
    clip_fraction: mean(seen.clipFraction),
    grad_norm: mean(seen.gradNorm),
    advantage_abs_mean: mean(Array.from(credit.advantages, Math.abs)),
    rollout_tokens_per_s: rolloutTokens / rolloutSeconds,
    update_tokens_per_s: updateTokens / Math.max(updateSeconds, 1e-9),
    dropped_trajectories: all.length - trajectories.length,
    env_steps: envStepsSoFar(store, config.runId) + all.reduce((a, t) => a + t.steps.length, 0),
  };
  store.writeIteration(config.runId, {
    iteration: it,
    groups: groupsWithAdvantages(trajectories, records),
    metrics,
  });
  store.addCheckpoint(config.runId, it, dir, { step: policy.runner.step });

  let evalText = '';
  const every = config.eval.every;
  if (every > 0 && (it + 1) % every === 0) {
    const e = await evaluate(policy, family, config.eval.split, config.eval.tasks);
    store.writeMetrics(config.runId, it, evalMetrics('eval', e));
    evalText = ` | eval ${config.eval.split} ${pct(e.success)}`;
  }
  log(
    `iter ${it}: success ${pct(metrics.success_rate!)} | return ${metrics.mean_return!.toFixed(2)} | ` +
      `invalid ${pct(metrics.invalid_rate!)} | len ${metrics.mean_length!.toFixed(1)} | KL ${metrics.kl!.toFixed(4)} | ` +
      `entropy ${metrics.entropy!.toFixed(3)} | clip ${metrics.clip_fraction!.toFixed(3)} | ` +
      `${metrics.rollout_tokens_per_s!.toFixed(0)} tok/s rollout, ${metrics.update_tokens_per_s!.toFixed(0)} tok/s update${evalText}`,
  );
  return dir;
}

/** Trajectories of the groups whose members did not all end with the same return. */
function informativeGroups(trajectories: readonly Trajectory[]): Trajectory[] {
  const returns = new Map<string, Set<number>>();
  for (const t of trajectories) {
    const set = returns.get(t.groupId) ?? new Set<number>();
    set.add(t.episodeReturn);
    returns.set(t.groupId, set);
  }
  return trajectories.filter((t) => returns.get(t.groupId)!.size > 1);
}
