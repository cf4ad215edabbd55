/**
 * Intervals for evaluation figures, so a reported success rate says how sure it is: the Wilson
 * score interval for a rate, the paired bootstrap interval for the difference of two success
 * vectors measured on the same tasks (after minus before, method B minus method A), and the
 * two-level bootstrap over tasks and training seeds for methods trained with several seeds.
 */
import { Rng } from '../util/random.ts';

/** A two-sided interval [low, high]. */
export type Interval = [low: number, high: number];

/** z for a two-sided 95% interval (the 0.975 quantile of the standard normal). */
export const Z95 = 1.959963984540054;

/**
 * The Wilson score interval for a binomial rate (Wilson, "Probable inference, the law of
 * succession, and statistical inference", JASA 1927): the rates p for which the observed
 * `successes` of `n` are within z standard errors, `(p̂ + z²/2n ± z·sqrt(p̂(1-p̂)/n + z²/4n²)) /
 * (1 + z²/n)`. Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty at 0 or n.
 */
export function wilson(successes: number, n: number, z = Z95): Interval {
  if (!Number.isInteger(n) || n < 1) throw new Error(`wilson: n must be a positive integer, got ${n}`);
  if (!Number.isInteger(successes) || successes < 0 || successes > n) {
    throw new Error(`wilson: successes must be an integer in [0, ${n}], got ${successes}`);
  }
  const p = successes / n;
  const z2 = z * z;
  const center = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  // Exact ends at 0 and n (the formula gives them up to rounding).
  return [successes === 0 ? 0 : center - half, successes === n ? 1 : center + half];
}

/** A difference of two paired success rates with its interval. */
export interface PairedDifference {
  /** mean(b) - mean(a). */
  value: number;
  ci95: Interval;
  tasks: number;
  /** Tasks only `b` solved / only `a` solved (the discordant pairs; the rest do not move the difference). */
  onlyB: number;
  onlyA: number;
}

/**
 * The paired bootstrap 95% interval of mean(b) - mean(a), where a[i] and b[i] are the outcomes
 * (0/1, or any numbers such as F1) of the same task i under two policies (Efron & Tibshirani, "An
 * Introduction to the Bootstrap", 1993, percentile interval): tasks are resampled with replacement
 * `resamples` times, keeping each task's pair together, and the 2.5% and 97.5% quantiles of the
 * resampled differences are the ends. Seeded, so the same inputs give the same interval.
 */
export function pairedBootstrap(
  a: readonly number[],
  b: readonly number[],
  options: { resamples?: number; seed?: number } = {},
): PairedDifference {
  const n = a.length;
  if (n === 0) throw new Error('pairedBootstrap: no tasks');
  if (b.length !== n) {
    throw new Error(
      `pairedBootstrap: the vectors must pair up task by task; got ${n} and ${b.length} values`,
    );
  }
  checkFinite('pairedBootstrap', 'a', a);
  checkFinite('pairedBootstrap', 'b', b);
  const resamples = options.resamples ?? 10_000;
  const d = a.map((x, i) => b[i]! - x);
  const rng = new Rng(`paired-bootstrap:${options.seed ?? 0}`);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += d[Math.floor(rng.next() * n)]!;
    means[r] = sum / n;
  }
  return percentileDifference(d, means);
}

/** Refuse a value that is not a finite number, naming where it is. */
function checkFinite(fn: string, name: string, xs: readonly number[]): void {
  const bad = xs.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new Error(`${fn}: ${name}[${bad}] is ${xs[bad]}; expected a finite number`);
}

/** The per-task differences' mean with the 2.5% and 97.5% quantiles of the resampled means. */
function percentileDifference(d: readonly number[], means: Float64Array): PairedDifference {
  means.sort();
  return {
    value: d.reduce((s, x) => s + x, 0) / d.length,
    ci95: [quantile(means, 0.025), quantile(means, 0.975)],
    tasks: d.length,
    onlyB: d.filter((x) => x > 0).length,
    onlyA: d.filter((x) => x < 0).length,
  };
}

/**
 * The 95% interval of mean(b) - mean(a) when each method was trained with several seeds and every
 * seed's policy was evaluated on the same tasks: `a[s][i]` is the outcome of task i under method
 * a's seed-s policy. Two-level (hierarchical) bootstrap (Davison & Hinkley, "Bootstrap Methods and
 * their Application", 1997, section 3.8): each resample draws the tasks with replacement (the same
 * draw for both methods, so they stay paired) and, independently for each method, its seeds with
 * replacement. The task-paired bootstrap of `pairedBootstrap` over pooled (task, seed) pairs sees
 * only the evaluation's noise; this interval also holds the training's (how far two seeds of one
 * method land apart), which is what a claim that one method trains better than another needs. With
 * two or three seeds a method's seed spread is itself poorly known, so the interval is a lower
 * bound on the real uncertainty, not an exact one. Seeded.
 *
 * `pairSeeds`: a[s] and b[s] ran with the same RL seed (the same tasks drawn each iteration, the
 * same first rollouts: common random numbers), so seed s is drawn for both at once; what the two
 * runs of a seed share then cancels, as the tasks' difficulty does.
 */
export function seedBootstrap(
  a: readonly (readonly number[])[],
  b: readonly (readonly number[])[],
  options: { resamples?: number; seed?: number; pairSeeds?: boolean } = {},
): PairedDifference & { seeds: [a: number, b: number] } {
  if (a.length === 0 || b.length === 0) {
    throw new Error(`seedBootstrap: each method needs at least one seed; got ${a.length} and ${b.length}`);
  }
  if (options.pairSeeds && a.length !== b.length) {
    throw new Error(
      `seedBootstrap: pairSeeds needs the same seeds for both methods; got ${a.length} and ${b.length} seeds`,
    );
  }
  const n = a[0]!.length;
  if (n === 0) throw new Error('seedBootstrap: no tasks');
  for (const [name, runs] of [
    ['a', a],
    ['b', b],
  ] as const) {
    runs.forEach((xs, s) => {
      if (xs.length !== n) {
        throw new Error(
          `seedBootstrap: every seed must be evaluated on the same ${n} tasks; ${name}[${s}] has ${xs.length}`,
        );
      }
      checkFinite('seedBootstrap', `${name}[${s}]`, xs);
    });
  }
  const seedMean = (runs: readonly (readonly number[])[], i: number) =>
    runs.reduce((sum, xs) => sum + xs[i]!, 0) / runs.length;
  const d = Array.from({ length: n }, (_, i) => seedMean(b, i) - seedMean(a, i));
  const resamples = options.resamples ?? 10_000;
  const rng = new Rng(`seed-bootstrap:${options.seed ?? 0}`);
  const draw = (k: number) => Array.from({ length: k }, () => Math.floor(rng.next() * k));
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const sa = draw(a.length);
    const sb = options.pairSeeds ? sa : draw(b.length);
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const i = Math.floor(rng.next() * n);
      let x = 0;
      for (const s of sb) x += b[s]![i]!;
      let y = 0;
      for (const s of sa) y += a[s]![i]!;
      sum += x / sb.length - y / sa.length;
    }
    means[r] = sum / n;
  }
  return { ...percentileDifference(d, means), seeds: [a.length, b.length] };
}

/** The q-quantile of sorted values, linear between order statistics (numpy's default). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** A mean with its 95% interval. */
export interface MeanInterval {
  value: number;
  ci95: Interval;
  tasks: number;
}

/**
 * The bootstrap 95% percentile interval of the mean of per-task figures (e.g. answer F1, which is
 * no rate, so Wilson does not apply; Efron & Tibshirani, "An Introduction to the Bootstrap", 1993):
 * the paired bootstrap of the figures against zero, seeded.
 */
export function meanBootstrap(
  xs: readonly number[],
  options: { resamples?: number; seed?: number } = {},
): MeanInterval {
  if (xs.length === 0) throw new Error('meanBootstrap: no tasks');
  const d = pairedBootstrap(
    xs.map(() => 0),
    xs,
    options,
  );
  return { value: d.value, ci95: d.ci95, tasks: d.tasks };
}
