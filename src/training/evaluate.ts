/**
 * Evaluation: greedy rollouts on a split (seeds 0..n-1, the same every time), written to the store
 * as metrics named `<phase>/<split>/<metric>` (`before`, `eval` every k iterations, `after`), and
 * read back from those metrics when a resumed run already has them.
 */
import { rolloutMetrics } from '../agents/record.ts';
import type { Split } from '../envs/types.ts';
import type { Policy } from '../policy/policy.ts';
import type { TrajectoryStore } from '../store/index.ts';
import type { IterateAverage } from './average.ts';
import { EVAL_SPLITS, type EvalResult, type Evaluations, mean, type RunContext } from './context.ts';
import type { TaskFamily } from './family.ts';
import { wilson } from './stats.ts';

/**
 * Greedy evaluation: one rollout per task of `split` (seeds 0..n-1, the same every time), by the
 * family's own batched path when it has one.
 */
export async function evaluate(
  policy: Policy,
  family: TaskFamily,
  split: Split,
  tasks: number,
): Promise<EvalResult> {
  const drawn = Array.from({ length: tasks }, (_, seed) => family.task(split, seed));
  if (family.evaluate) return family.evaluate(policy, split, drawn);
  const trajectories = await family.rollout(policy, {
    tasks: drawn,
    groupSize: 1,
    temperature: 0,
    seed: 0,
    purpose: 'eval',
  });
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
    outcomes: trajectories.map((t) => (t.won ? 1 : 0)),
    taskScores: scores,
  };
}

/**
 * An evaluation as metrics, named `<prefix>/<split>/<metric>` (the viewer reads `eval/...` as
 * evaluations): success, invalid_rate and success/<task type>.
 */
export function evalMetrics(prefix: string, e: EvalResult): Record<string, number> {
  const out: Record<string, number> = {
    [`${prefix}/${e.split}/success`]: e.success,
    [`${prefix}/${e.split}/invalid_rate`]: e.invalidRate,
    // the task count, so a resumed run can still give the rate its interval
    [`${prefix}/${e.split}/tasks`]: e.tasks,
  };
  if (e.tasks > 0) {
    // the success rate's Wilson 95% interval, for readers of the store (the viewer's table)
    const [low, high] = wilson(Math.round(e.success * e.tasks), e.tasks);
    out[`${prefix}/${e.split}/success_low`] = low;
    out[`${prefix}/${e.split}/success_high`] = high;
  }
  for (const [name, v] of Object.entries(e.scores)) out[`${prefix}/${e.split}/${name}`] = v;
  for (const [type, v] of Object.entries(e.byType)) out[`${prefix}/${e.split}/success/${type}`] = v.success;
  return out;
}

/** Stored evaluation metrics that are not family scores. */
const NOT_SCORES = new Set(['success', 'invalid_rate', 'tasks', 'success_low', 'success_high']);

/** An evaluation read back from the metrics table (per-type successes; counts are not stored). */
export function storedEval(store: TrajectoryStore, runId: string, prefix: string, split: Split): EvalResult {
  const value = (name: string) => store.metricSeries(runId, name).at(-1)?.value ?? 0;
  const byType: EvalResult['byType'] = {};
  const scores: Record<string, number> = {};
  const splitPrefix = `${prefix}/${split}/`;
  for (const name of store.metricNames(runId)) {
    if (!name.startsWith(splitPrefix)) continue;
    const rest = name.slice(splitPrefix.length);
    if (rest.startsWith('success/'))
      byType[rest.slice('success/'.length)] = { tasks: 0, success: value(name) };
    else if (!NOT_SCORES.has(rest)) scores[rest] = value(name);
  }
  return {
    split,
    tasks: value(`${prefix}/${split}/tasks`),
    success: value(`${prefix}/${split}/success`),
    meanReturn: 0,
    invalidRate: value(`${prefix}/${split}/invalid_rate`),
    byType,
    scores,
  };
}

const stored = (ctx: RunContext, prefix: string, split: Split) =>
  ctx.store.metricSeries(ctx.config.runId, `${prefix}/${split}/success`).length > 0;

/** The reference policy's evaluations: stored once (or taken from the hooks), read back on resume. */
export async function evaluateBefore(ctx: RunContext): Promise<Evaluations> {
  const { config, store } = ctx;
  const before = {} as Evaluations;
  for (const split of EVAL_SPLITS) {
    if (stored(ctx, 'before', split)) {
      before[split] = storedEval(store, config.runId, 'before', split);
      continue;
    }
    before[split] =
      ctx.hooks.before?.[split] ?? (await evaluate(ctx.reference, ctx.family, split, config.eval.tasks));
    store.writeMetrics(config.runId, 0, evalMetrics('before', before[split]));
  }
  return before;
}

/**
 * The final policy's evaluations, stored at the last iteration. With no RL iteration the policy
 * is the reference, so "after" is "before"; a finished run resumed with nothing left to do keeps
 * its stored evaluation instead of making a second one.
 */
export async function evaluateAfter(ctx: RunContext, before: Evaluations, ran: number): Promise<Evaluations> {
  const { config, store } = ctx;
  const after = { ...before };
  const last = store.lastCompleteIteration(config.runId);
  if (last === undefined) return after;
  for (const split of EVAL_SPLITS) {
    if (ran === 0 && stored(ctx, 'after', split)) {
      after[split] = storedEval(store, config.runId, 'after', split);
      continue;
    }
    after[split] = await evaluate(ctx.policy, ctx.family, split, config.eval.tasks);
    store.writeMetrics(config.runId, last, evalMetrics('after', after[split]));
  }
  return after;
}

/**
 * The evaluation every `eval.every` iterations, stored as `eval/...`; undefined when not due. With
 * `weightAverage` it measures the mean of the iterates so far (what the run would return now), so
 * the learning curve ends at what "after" measures.
 */
export async function evaluateDue(
  ctx: RunContext,
  iteration: number,
  average?: IterateAverage,
): Promise<EvalResult | undefined> {
  const { every, split, tasks } = ctx.config.eval;
  if (every <= 0 || (iteration + 1) % every !== 0) return undefined;
  const run = () => evaluate(ctx.policy, ctx.family, split, tasks);
  const e = average ? await average.withMean(run) : await run();
  ctx.store.writeMetrics(ctx.config.runId, iteration, evalMetrics('eval', e));
  return e;
}
