/**
 * Weight averaging of the RL iterates (Polyak-Ruppert averaging; Izmailov et al. 2018, "Averaging
 * Weights Leads to Wider Optima and Better Generalization"): with `weightAverage.from` set, the
 * run's result is the mean of the policy's trainable weights after each iteration from `from` on,
 * not the last iterate. The rollouts and updates still use the iterate; the evaluations (every
 * `eval.every` iterations and after the run) and the result checkpoint use the mean.
 *
 * Why: with 8 tasks an iteration the iterate wanders. Over six household runs (two SFT starts,
 * 40 iterations each) the greedy valid-unseen success of the last iterate ranged from 39.5% to
 * 55.0%; the mean of iterations 10..39 stayed within 2.5 points of the good runs' last iterates and
 * lifted the worst by 10.3 points (docs/BENCHMARKS.md, "Averaged weights").
 *
 * The running mean lives in each averaged iteration's checkpoint folder (`weight-average.safetensors`,
 * with how many iterates it holds), so a killed run resumes it exactly.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTrainable, saveTrainable } from '../policy/checkpoint/checkpoint.ts';
import type { Params } from '../policy/model/params.ts';
import { trainableSpecs } from '../policy/model/params.ts';
import type { Policy } from '../policy/policy.ts';

/** The file beside an iteration's checkpoint that holds the running mean. */
export const AVERAGE_FILE = 'weight-average.safetensors';

/** The running mean of the trainable weights: how many iterates, and their mean per parameter. */
export interface WeightAverage {
  count: number;
  mean: Params;
}

/** Fold one more iterate into the mean (Welford's update: no sum that grows with the count). */
export function addIterate(
  average: WeightAverage | undefined,
  params: Params,
  names: string[],
): WeightAverage {
  if (!average) {
    return { count: 1, mean: new Map(names.map((k) => [k, Float32Array.from(params.get(k)!)])) };
  }
  const count = average.count + 1;
  for (const k of names) {
    const m = average.mean.get(k)!;
    const x = params.get(k)!;
    for (let i = 0; i < m.length; i++) m[i]! += (x[i]! - m[i]!) / count;
  }
  return { count, mean: average.mean };
}

/** A run's average: folded in after each iteration's checkpoint, resumed from the last one's. */
export class IterateAverage {
  private readonly names: string[];

  private constructor(
    readonly from: number,
    private readonly policy: Policy,
    private average: WeightAverage | undefined,
  ) {
    this.names = trainableSpecs(policy.config).map((s) => s.name);
  }

  /**
   * Start (next = 0) or resume a run's average: the mean stored with the last iteration's
   * checkpoint (`lastDir`) when that iteration was averaged.
   */
  static async resume(
    from: number,
    policy: Policy,
    next: number,
    lastDir: string,
    log: (line: string) => void,
  ): Promise<IterateAverage> {
    const self = new IterateAverage(from, policy, undefined);
    if (next - 1 < from) return self;
    const file = join(lastDir, AVERAGE_FILE);
    if (existsSync(file)) {
      const { params, metadata } = await loadTrainable(file, policy.config);
      const count = Number(metadata.count);
      if (!Number.isInteger(count) || count < 1) {
        throw new Error(
          `${file}: metadata 'count' is ${JSON.stringify(metadata.count)}; expected an integer >= 1`,
        );
      }
      self.average = { count, mean: params };
    } else {
      log(`weight average: ${lastDir} holds no running mean; the average starts again at iteration ${next}`);
    }
    return self;
  }

  /** Iterates folded in so far. */
  get count(): number {
    return this.average?.count ?? 0;
  }

  /**
   * After iteration `it`'s checkpoint is written to `dir` and before the iteration is stored: fold
   * the policy's weights in and write the mean beside them (so a stored iteration has its mean).
   */
  async add(it: number, dir: string): Promise<void> {
    if (it < this.from) return;
    this.average = addIterate(this.average, this.policy.runner.getParams(), this.names);
    await saveTrainable(join(dir, AVERAGE_FILE), this.policy.config, this.average.mean, {
      count: String(this.average.count),
    });
  }

  /** Once a later iteration is stored, the earlier folder's mean is never read again. */
  async drop(dir: string): Promise<void> {
    await rm(join(dir, AVERAGE_FILE), { force: true });
  }

  /** Put the mean into the policy's weights (a frozen base stays); false when nothing was averaged. */
  apply(): boolean {
    if (!this.average) return false;
    const params: Params = new Map(this.policy.runner.getParams());
    for (const [k, v] of this.average.mean) params.set(k, v);
    this.policy.runner.setParams(params);
    return true;
  }

  /**
   * Run `work` (an evaluation in the middle of the run) on the mean, then put the iterate back, so
   * that the learning curve measures what the run would return if it stopped there; before any
   * iterate is averaged, `work` runs on the iterate.
   */
  async withMean<T>(work: () => Promise<T>): Promise<T> {
    if (!this.average) return work();
    const runner = this.policy.runner;
    const iterate = runner.getParams();
    // A copy of the mean: the runner wraps what it is given, and the mean keeps changing.
    const params: Params = new Map(iterate);
    for (const [k, v] of this.average.mean) params.set(k, Float32Array.from(v));
    runner.setParams(params);
    try {
      return await work();
    } finally {
      runner.setParams(iterate);
    }
  }
}
