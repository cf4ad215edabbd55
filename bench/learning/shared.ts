/**
 * What every part of the learning benchmark does the same way: train the shared SFT checkpoint,
 * run each method from it for each seed at one environment-step budget (resuming the runs of a
 * killed benchmark), and read each run's evaluation curve against env steps.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import type { EvalResult, TrainResult } from '../../src/training/trainer.ts';
import { train } from '../../src/training/trainer.ts';
import type { LearningContext, LearningCurve } from './types.ts';

/** One evaluation figure: its stored metric (`eval/valid-unseen/<name>`) and its value in a result. */
export interface Measure {
  /** The curve's label, e.g. 'valid-unseen F1'. */
  label: string;
  /** The metric after `eval/valid-unseen/` ('success', 'f1'). */
  metric: string;
  of: (e: EvalResult) => number;
}

export const SUCCESS: Measure = { label: 'valid-unseen success', metric: 'success', of: (e) => e.success };

/**
 * A run's result, kept beside its store once it finished: a resumed benchmark reads it back whole.
 * (A finished run resumed from its store alone has no per-task outcomes: its evaluations are
 * stored as rates, and the paired intervals need every task's outcome.)
 */
async function kept(db: string, run: () => Promise<TrainResult>): Promise<TrainResult> {
  const file = db.replace(/\.db$/, '.result.json');
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as TrainResult;
  const result = await run();
  await writeFile(file, JSON.stringify(result));
  return result;
}

/** The shared SFT checkpoint (iterations 0), or the finished one a killed benchmark left in `ctx.dir`. */
export function sharedSft(ctx: LearningContext, base: TrainConfigInput): Promise<TrainResult> {
  const db = join(ctx.dir, 'sft.db');
  return kept(db, () =>
    train({ ...base, iterations: 0, db, runId: 'sft', seed: 0 }, { log: ctx.log, resume: true }),
  );
}

/**
 * Every method from `sft`'s checkpoint for every seed, at `envStepBudget` environment steps each;
 * returns the results by method and each run's curve of `measure` against env steps.
 */
export async function runMethods(
  ctx: LearningContext,
  options: {
    part: string;
    base: TrainConfigInput;
    methods: readonly string[];
    sft: TrainResult;
    envStepBudget: number;
    measure: Measure;
  },
): Promise<{ results: Map<string, TrainResult[]>; curves: LearningCurve[] }> {
  const results = new Map<string, TrainResult[]>();
  const curves: LearningCurve[] = [];
  // Seed-major: a benchmark stopped part-way has every method on the seeds it finished, so the
  // methods still compare on the same tasks and seeds.
  for (const seed of ctx.seeds) {
    for (const method of options.methods) {
      const db = join(ctx.dir, `${method}-${seed}.db`);
      ctx.log(`${options.part}: ${method}, seed ${seed}`);
      const result = await kept(db, () =>
        train(
          {
            ...options.base,
            policy: { checkpoint: options.sft.referenceCheckpoint },
            sft: { enabled: false },
            estimator: method as TrainConfigInput['estimator'],
            iterations: 1000,
            envStepBudget: options.envStepBudget,
            seed,
            db,
            runId: `${method}-${seed}`,
          },
          { log: (l) => ctx.log(`  ${l}`), before: options.sft.before, resume: true },
        ),
      );
      results.set(method, [...(results.get(method) ?? []), result]);
      curves.push(evalCurve(db, result, method, seed, options.measure));
    }
  }
  return { results, curves };
}

/** A run's valid-unseen evaluations against cumulative env steps: the start, each `eval`, the end. */
export function evalCurve(
  db: string,
  result: TrainResult,
  method: string,
  seed: number,
  measure: Measure,
): LearningCurve {
  const store = openStore(db, { readonly: true });
  try {
    const steps = new Map(store.metricSeries(result.runId, 'env_steps').map((p) => [p.iteration, p.value]));
    const points = [{ envSteps: 0, value: measure.of(result.before['valid-unseen']) }];
    for (const p of store.metricSeries(result.runId, `eval/valid-unseen/${measure.metric}`)) {
      points.push({ envSteps: steps.get(p.iteration) ?? 0, value: p.value });
    }
    const last = store.lastCompleteIteration(result.runId);
    if (last !== undefined && steps.get(last) !== points.at(-1)!.envSteps) {
      points.push({ envSteps: steps.get(last)!, value: measure.of(result.after['valid-unseen']) });
    }
    return { method, seed, metric: measure.label, points };
  } finally {
    store.close();
  }
}

/** CPU seconds of this process since `start` (process.cpuUsage). */
export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}
