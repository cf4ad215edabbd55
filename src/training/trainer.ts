/**
 * The RL run, as wiring. One iteration:
 *
 *   rollout (G trajectories per task, dynamic sampling) -> credit (the estimator's advantages and
 *   details) -> update (scored log-probs, PPO epochs) -> checkpoint -> the iteration (trajectories,
 *   advantages, metrics) into the store in one transaction -> evaluation every k iterations.
 *
 * A run: SFT (or a checkpoint) -> evaluation before -> iterations until the count or the
 * env-step budget is reached -> evaluation after. The iteration is written after its update and
 * checkpoint, so a stored iteration always has its weights on disk: a killed run resumes after its
 * last stored iteration from that iteration's checkpoint, and an iteration cut short is rolled out
 * again from scratch (nothing counted twice).
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { rolloutMetrics, type Trajectory } from '../agents/record.ts';
import { isPostgresUrl, openStore } from '../store/index.ts';
import { IterateAverage } from './average.ts';
import { parseTrainConfig } from './config.ts';
import { type Evaluations, mean, pct, type RunBase, type RunContext, type TrainHooks } from './context.ts';
import { assignCredit } from './credit.ts';
import { evaluateAfter, evaluateBefore, evaluateDue } from './evaluate.ts';
import { makeFamily } from './families/index.ts';
import { rollout } from './rollout.ts';
import type { SftResult } from './sft.ts';
import { referencePolicy, startRun } from './start.ts';
import { DivergenceError, update } from './update.ts';

export type { EvalResult, ProgressEvent, RunContext, TrainHooks } from './context.ts';
export { evaluate } from './evaluate.ts';
export { taskSeed } from './rollout.ts';
export { DivergenceError, tokenRows } from './update.ts';

export interface TrainResult {
  db: string;
  runId: string;
  /** Evaluations of the starting (SFT) policy and of the final one, on valid-seen and valid-unseen. */
  before: Evaluations;
  after: Evaluations;
  /** Iterations run in this call (a resumed run counts only its new ones). */
  iterationsRun: number;
  sft?: SftResult;
  /** The last iteration's checkpoint (where a resumed run goes on from). */
  lastCheckpoint: string;
  /** The policy `after` measured: `<checkpointDir>/average` with `weightAverage`, else `lastCheckpoint`. */
  finalCheckpoint: string;
  referenceCheckpoint: string;
}

/** Run (or resume) a training run end to end: SFT, evaluation before, the RL iterations, evaluation after. */
export async function train(input: unknown, hooks: TrainHooks = {}): Promise<TrainResult> {
  const config = parseTrainConfig(input);
  const log = hooks.log ?? ((line: string) => console.log(line));
  if (!isPostgresUrl(config.db)) await mkdir(dirname(config.db) || '.', { recursive: true });
  await mkdir(config.checkpointDir, { recursive: true });
  const family = await makeFamily(config, hooks);
  const store = openStore(config.db);
  const base: RunBase = { config, store, family, hooks, log, progress: hooks.onProgress ?? (() => {}) };
  try {
    const start = await startRun(base);
    const reference = await referencePolicy(config, start.policy, start.referenceDir);
    const ctx: RunContext = { ...base, policy: start.policy, reference };
    try {
      return { ...(await run(ctx, start.next, start.referenceDir)), sft: start.sft };
    } catch (err) {
      store.setRunStatus(config.runId, err instanceof DivergenceError ? 'failed' : 'stopped');
      throw err;
    } finally {
      await reference.dispose();
      await start.policy.dispose();
    }
  } finally {
    store.close();
    await family.close?.();
  }
}

/** Evaluation before, the iterations from `next` on, evaluation after. */
async function run(ctx: RunContext, next: number, referenceDir: string): Promise<Omit<TrainResult, 'sft'>> {
  const { config, store, log } = ctx;
  const before = await evaluateBefore(ctx);
  log(
    `before: valid-seen ${pct(before['valid-seen'].success)}, valid-unseen ${pct(before['valid-unseen'].success)}`,
  );
  let lastCheckpoint = next > 0 ? store.resumePoint(config.runId).checkpoint!.path : referenceDir;
  const average = config.weightAverage
    ? await IterateAverage.resume(config.weightAverage.from, ctx.policy, next, lastCheckpoint, log)
    : undefined;
  let ran = 0;
  const budget = config.envStepBudget ?? Number.POSITIVE_INFINITY;
  for (let it = next; it < config.iterations && envStepsSoFar(ctx) < budget; it++) {
    const dir = await iteration({ ...ctx, it, lastGood: lastCheckpoint, average });
    if (average && lastCheckpoint !== referenceDir) await average.drop(lastCheckpoint);
    lastCheckpoint = dir;
    ran++;
  }
  if (envStepsSoFar(ctx) >= budget) {
    log(`the environment-step budget (${budget}) is spent after ${envStepsSoFar(ctx)} steps`);
  }
  const finalCheckpoint = await finalPolicy(ctx, average, lastCheckpoint);
  const after = await evaluateAfter(ctx, before, ran);
  store.setRunStatus(config.runId, 'finished');
  return {
    db: config.db,
    runId: config.runId,
    before,
    after,
    iterationsRun: ran,
    lastCheckpoint,
    finalCheckpoint,
    referenceCheckpoint: referenceDir,
  };
}

/**
 * With `weightAverage`, put the mean of the averaged iterates into the policy and save it as
 * `<checkpointDir>/average`: the run's result. Otherwise the last iterate is the result.
 */
async function finalPolicy(
  ctx: RunContext,
  average: IterateAverage | undefined,
  lastCheckpoint: string,
): Promise<string> {
  if (!average) return lastCheckpoint;
  if (!average.apply()) {
    ctx.log(
      `weight average: no iteration at or after weightAverage.from (${average.from}) ran; the result is the last iterate`,
    );
    return lastCheckpoint;
  }
  const dir = join(ctx.config.checkpointDir, 'average');
  await rm(dir, { recursive: true, force: true });
  await ctx.policy.save(dir);
  ctx.log(
    `weight average: the result is the mean of ${average.count} iterates (from iteration ${average.from}), ${dir}`,
  );
  return dir;
}

/** An iteration's context: the run's, the iteration's number and the checkpoint a divergence names. */
interface IterationContext extends RunContext {
  it: number;
  lastGood: string;
  average?: IterateAverage;
}

/** One RL iteration; returns the path of its checkpoint. */
async function iteration(ctx: IterationContext): Promise<string> {
  const { config, store, policy, it } = ctx;
  const rolled = ctx.hooks.rollout ? await ctx.hooks.rollout(ctx, it, ctx.lastGood) : await rollout(ctx, it);
  const credit = await assignCredit(ctx, rolled.trajectories);
  const updated = await update(ctx, it, credit.steps, ctx.lastGood, { rolloutVersion: rolled.policyVersion });

  // Checkpoint first, then the iteration: a stored iteration always has its weights on disk.
  const dir = join(config.checkpointDir, `iter-${it}`);
  await rm(dir, { recursive: true, force: true });
  await policy.save(dir);
  await ctx.average?.add(it, dir);
  const { trajectories, all } = rolled;
  const rolloutTokens = trajectories.reduce(
    (a, t) => a + t.steps.reduce((b, s) => b + s.responseTokens.length, 0),
    0,
  );
  const metrics: Record<string, number> = {
    ...rolloutMetrics(trajectories),
    ...successByType(trajectories),
    loss: updated.loss,
    kl: updated.kl,
    entropy: updated.entropy,
    clip_fraction: updated.clipFraction,
    grad_norm: updated.gradNorm,
    advantage_abs_mean: mean(credit.advantages.map(Math.abs)),
    rollout_tokens_per_s: rolloutTokens / rolled.seconds,
    update_tokens_per_s: updated.tokens / Math.max(updated.seconds, 1e-9),
    dropped_trajectories: all.length - trajectories.length,
    skipped_sequences: updated.skipped,
    env_steps: envStepsSoFar(ctx) + all.reduce((a, t) => a + t.steps.length, 0),
    ...(rolled.prefilledTokens === undefined
      ? {}
      : {
          prefill_tokens_per_env_step:
            rolled.prefilledTokens /
            Math.max(
              1,
              all.reduce((a, t) => a + t.steps.length, 0),
            ),
        }),
  };
  store.writeIteration(config.runId, { iteration: it, groups: credit.groups, metrics });
  store.addCheckpoint(config.runId, it, dir, { step: policy.runner.step });

  const e = await evaluateDue(ctx, it, ctx.average);
  ctx.log(
    `iter ${it}: success ${pct(metrics.success_rate!)} | return ${metrics.mean_return!.toFixed(2)} | ` +
      `invalid ${pct(metrics.invalid_rate!)} | len ${metrics.mean_length!.toFixed(1)} | KL ${metrics.kl!.toFixed(4)} | ` +
      `entropy ${metrics.entropy!.toFixed(3)} | clip ${metrics.clip_fraction!.toFixed(3)} | ` +
      `${metrics.rollout_tokens_per_s!.toFixed(0)} tok/s rollout, ${metrics.update_tokens_per_s!.toFixed(0)} tok/s update` +
      (e ? ` | eval ${config.eval.split} ${pct(e.success)}` : ''),
  );
  return dir;
}

/** Rollout success per task type, as `success_rate/<type>`. */
function successByType(trajectories: readonly Trajectory[]): Record<string, number> {
  const won = new Map<string, number[]>();
  for (const t of trajectories) won.set(t.task.kind, [...(won.get(t.task.kind) ?? []), t.won ? 1 : 0]);
  return Object.fromEntries([...won].map(([type, xs]) => [`success_rate/${type}`, mean(xs)]));
}

/** Environment steps of the run's stored iterations (the `env_steps` metric is cumulative). */
function envStepsSoFar(ctx: RunContext): number {
  return ctx.store.metricSeries(ctx.config.runId, 'env_steps').at(-1)?.value ?? 0;
}
