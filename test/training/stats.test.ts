/**
 * Evaluation intervals against values computed independently: Wilson intervals from SciPy
 * (`scipy.stats.binomtest(k, n).proportion_ci(method='wilson')`), the paired bootstrap against a
 * NumPy percentile bootstrap with 400,000 resamples (`default_rng(0)`), the two-level bootstrap
 * against a NumPy version of it (400,000 resamples: tasks, then each method's seeds, drawn with
 * `default_rng(0)`).
 */
import { describe, expect, it } from 'vitest';
import { meanBootstrap, pairedBootstrap, quantile, seedBootstrap, wilson } from '../../src/training/stats.ts';
import { Rng } from '../../src/util/random.ts';

describe('wilson', () => {
  it.each([
    [0, 10, 0, 0.27753279986288926],
    [3, 10, 0.10779126740630102, 0.6032218525388546],
    [81, 200, 0.3393777128250676, 0.474202899186613],
    [200, 200, 0.9811546736227335, 1],
    [50, 100, 0.4038315303659956, 0.5961684696340044],
  ])('%i of %i matches SciPy', (k, n, low, high) => {
    const [lo, hi] = wilson(k, n);
    expect(lo).toBeCloseTo(low, 12);
    expect(hi).toBeCloseTo(high, 12);
  });

  it('refuses counts that are not a rate, naming what was expected', () => {
    expect(() => wilson(3, 0)).toThrow(/n must be a positive integer, got 0/);
    expect(() => wilson(11, 10)).toThrow(/successes must be an integer in \[0, 10\], got 11/);
    expect(() => wilson(0.5, 10)).toThrow(/successes/);
  });
});

describe('pairedBootstrap', () => {
  // 200 tasks: 30 solved before; after, 25 of those and 31 others (difference +0.13).
  const before = Array.from({ length: 200 }, (_, i) => (i < 30 ? 1 : 0));
  const after = Array.from({ length: 200 }, (_, i) => (i < 25 || (i >= 30 && i < 61) ? 1 : 0));

  it('matches a NumPy percentile bootstrap of the same pairs', () => {
    const d = pairedBootstrap(before, after, { resamples: 20_000 });
    expect(d.value).toBeCloseTo(0.13, 12);
    expect(d).toMatchObject({ tasks: 200, onlyB: 31, onlyA: 5 });
    // NumPy: [0.075, 0.185]; Monte Carlo error at 20,000 resamples is about 0.002.
    expect(d.ci95[0]).toBeCloseTo(0.075, 2);
    expect(d.ci95[1]).toBeCloseTo(0.185, 2);
  });

  it('is deterministic for a seed, and pairs matter: swapping the vectors mirrors the interval', () => {
    const a = pairedBootstrap(before, after, { seed: 4 });
    expect(pairedBootstrap(before, after, { seed: 4 })).toEqual(a);
    const mirrored = pairedBootstrap(after, before, { seed: 4 });
    expect(mirrored.value).toBeCloseTo(-a.value, 12);
    expect(mirrored.ci95[0]).toBeCloseTo(-a.ci95[1], 12);
    expect(mirrored.ci95[1]).toBeCloseTo(-a.ci95[0], 12);
    // The same outcomes on every task: no difference, and no uncertainty about it.
    expect(pairedBootstrap(after, after).ci95).toEqual([0, 0]);
  });

  it('refuses vectors that do not pair up', () => {
    expect(() => pairedBootstrap([1, 0], [1])).toThrow(/pair up task by task; got 2 and 1/);
    expect(() => pairedBootstrap([], [])).toThrow(/no tasks/);
    expect(() => pairedBootstrap([1, Number.NaN], [1, 0])).toThrow(/a\[1\] is NaN/);
  });

  it('quantile interpolates like numpy.quantile', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([0, 10], 0.025)).toBeCloseTo(0.25, 12);
  });
});

describe('meanBootstrap', () => {
  it('brackets the mean of per-task F1, narrows with more tasks, and refuses an empty list', () => {
    const rng = new Rng('mean-bootstrap-test');
    const draw = (n: number) =>
      Array.from({ length: n }, () => (rng.next() < 0.3 ? 1 : rng.next() < 0.5 ? 0.5 : 0));
    const small = meanBootstrap(draw(30));
    const large = meanBootstrap(draw(600));
    for (const m of [small, large]) {
      expect(m.ci95[0]).toBeLessThan(m.value);
      expect(m.ci95[1]).toBeGreaterThan(m.value);
    }
    // the true mean is 0.3 + 0.7 * 0.5 * 0.5 = 0.475
    expect(large.ci95[0]).toBeLessThan(0.475);
    expect(large.ci95[1]).toBeGreaterThan(0.475);
    expect(large.ci95[1] - large.ci95[0]).toBeLessThan((small.ci95[1] - small.ci95[0]) / 2);
    expect(meanBootstrap([0.5, 0.5, 0.5])).toEqual({ value: 0.5, ci95: [0.5, 0.5], tasks: 3 });
    expect(() => meanBootstrap([])).toThrow(/no tasks/);
  });
});

describe('seedBootstrap', () => {
  // 60 tasks; method a with 2 seeds, method b with 3, outcomes from fixed patterns.
  const n = 60;
  const a = [0, 1].map((s) => Array.from({ length: n }, (_, i) => ((i * 7 + s * 3) % 5 < 2 ? 1 : 0)));
  const b = [0, 1, 2].map((s) => Array.from({ length: n }, (_, i) => ((i * 11 + s * 5) % 7 < 3 + s ? 1 : 0)));

  it('matches a NumPy two-level bootstrap over tasks and seeds', () => {
    const d = seedBootstrap(a, b, { resamples: 40_000 });
    expect(d.value).toBeCloseTo(0.177778, 5);
    expect(d).toMatchObject({ tasks: 60, seeds: [2, 3] });
    // NumPy: [-0.0056, 0.3667]; Monte Carlo error at 40,000 resamples is about 0.003.
    expect(Math.abs(d.ci95[0] - -0.0056)).toBeLessThan(0.01);
    expect(Math.abs(d.ci95[1] - 0.3667)).toBeLessThan(0.01);
  });

  it("holds the seeds' spread, which the task-paired interval does not", () => {
    // b's two seeds disagree on every task (one solves all, the other none): the pooled pairs give
    // a narrow interval around +0.5, the seeds make it span most of [0, 1].
    const zero = Array.from({ length: 200 }, () => 0);
    const one = zero.map(() => 1);
    const pooled = pairedBootstrap([...zero, ...zero], [...one, ...zero]);
    const seeded = seedBootstrap([zero, zero], [one, zero]);
    expect(pooled.value).toBeCloseTo(0.5, 12);
    expect(seeded.value).toBeCloseTo(0.5, 12);
    expect(pooled.ci95[1] - pooled.ci95[0]).toBeLessThan(0.12);
    expect(seeded.ci95[0]).toBe(0);
    expect(seeded.ci95[1]).toBe(1);
    // Seeds that agree: about the task interval of one seed.
    const same = seedBootstrap([a[0]!, a[0]!], [b[0]!, b[0]!]);
    const one0 = pairedBootstrap(a[0]!, b[0]!);
    expect(Math.abs(same.ci95[0] - one0.ci95[0])).toBeLessThan(0.02);
    expect(Math.abs(same.ci95[1] - one0.ci95[1])).toBeLessThan(0.02);
  });

  it('pairSeeds draws seed s for both methods: what a seed shares cancels', () => {
    // Seed 0 is easy for both methods, seed 1 hard for both; b is one task ahead in each.
    const easy = Array.from({ length: 100 }, (_, i) => (i < 80 ? 1 : 0));
    const hard = Array.from({ length: 100 }, (_, i) => (i < 20 ? 1 : 0));
    const ahead = (xs: number[]) => xs.map((x, i) => (i === 90 ? 1 : x));
    const apart = seedBootstrap([easy, hard], [ahead(easy), ahead(hard)]);
    const paired = seedBootstrap([easy, hard], [ahead(easy), ahead(hard)], { pairSeeds: true });
    expect(paired.value).toBeCloseTo(0.01, 12);
    expect(apart.value).toBeCloseTo(0.01, 12);
    expect(paired.ci95[1] - paired.ci95[0]).toBeLessThan(0.05);
    expect(apart.ci95[1] - apart.ci95[0]).toBeGreaterThan(0.3);
    expect(() => seedBootstrap([easy], [easy, hard], { pairSeeds: true })).toThrow(/same seeds.*1 and 2/);
  });

  it('refuses seeds evaluated on different tasks, naming them', () => {
    expect(() => seedBootstrap([[1, 0]], [[1, 0], [1]])).toThrow(/same 2 tasks; b\[1\] has 1/);
    expect(() => seedBootstrap([], [[1]])).toThrow(/at least one seed; got 0 and 1/);
    expect(() => seedBootstrap([[1, Number.NaN]], [[1, 0]])).toThrow(/a\[0\]\[1\] is NaN/);
  });
});
