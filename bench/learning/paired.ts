/**
 * Paired evaluation figures for the search and AgentFlow parts (issue 14): every method is
 * evaluated greedily on the same questions (seeds 0..n-1 of a split), so figures pair up question
 * by question. A method's per-question figure is its mean over the RL seeds; a mean F1 gets a
 * bootstrap interval, an accuracy a Wilson interval, a difference of two methods the paired
 * bootstrap interval over questions and, beside it, the two-level one over questions and seeds
 * (`seedBootstrap`), which also holds how far the RL seeds of one method land apart.
 */
import type { EvalResult } from '../../src/training/context.ts';
import { meanBootstrap, pairedBootstrap, seedBootstrap, wilson } from '../../src/training/stats.ts';

/** One figure per question for each evaluation (one per seed), or undefined when one lacks it. */
export function perSeed(evals: readonly EvalResult[], metric: string): number[][] | undefined {
  const vectors = evals.map((e) => (metric === 'success' ? e.outcomes : e.taskScores?.[metric]));
  if (vectors.length === 0 || vectors.some((v) => v === undefined)) return undefined;
  const n = vectors[0]!.length;
  return vectors.some((v) => v!.length !== n) ? undefined : (vectors as number[][]);
}

/** One figure per question, averaged over the given evaluations (one per seed), or undefined when one lacks it. */
export function perQuestion(evals: readonly EvalResult[], metric: string): number[] | undefined {
  const vectors = perSeed(evals, metric);
  return vectors && seedMean(vectors);
}

/** Per question, the mean of the seeds' figures. */
export function seedMean(vectors: readonly number[][]): number[] {
  return vectors[0]!.map((_, i) => vectors.reduce((s, v) => s + v[i]!, 0) / vectors.length);
}

const pct = (x: number) => (100 * x).toFixed(1);
const range = ([lo, hi]: readonly [number, number]) => `[${pct(lo)}, ${pct(hi)}]`;

/** "23.4 [19.0, 27.9] (n = 300)": a mean figure with its bootstrap 95% interval. */
export function meanText(xs: readonly number[]): string {
  const m = meanBootstrap(xs);
  return `${pct(m.value)} ${range(m.ci95)} (n = ${m.tasks})`;
}

/** "21.0% [16.8, 25.9] (63/300)": a rate of 0/1 outcomes with its Wilson 95% interval. */
export function rateText(outcomes: readonly number[]): string {
  const k = outcomes.reduce((s, x) => s + x, 0);
  return `${pct(k / outcomes.length)}% ${range(wilson(k, outcomes.length))} (${k}/${outcomes.length})`;
}

/** b - a, paired question by question, with its bootstrap 95% interval, in points. */
export function differenceText(a: readonly number[], b: readonly number[]): { value: number; text: string } {
  const d = pairedBootstrap(a, b);
  const sign = d.value >= 0 ? '+' : '';
  return {
    value: d.value,
    text: `${sign}${pct(d.value)} points, 95% interval ${range(d.ci95)} (${d.tasks} paired questions)`,
  };
}

/**
 * b - a over questions and seeds (`a[s]`, `b[s]`: one seed's per-question figures), in points;
 * `pairSeeds` when a[s] and b[s] ran with the same RL seed.
 */
export function seedDifferenceText(
  a: readonly number[][],
  b: readonly number[][],
  options: { pairSeeds?: boolean } = {},
): string {
  const d = seedBootstrap(a, b, options);
  const sign = d.value >= 0 ? '+' : '';
  return `${sign}${pct(d.value)} points, 95% interval over questions and seeds ${range(d.ci95)} (${d.tasks} questions, ${d.seeds[0]} and ${d.seeds[1]} seeds)`;
}
