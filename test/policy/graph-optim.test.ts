import { describe, expect, it } from 'vitest';
import {
  adamw,
  add,
  clipByGlobalNorm,
  Graph,
  gelu,
  matmul,
  mul,
  reduceMean,
  reduceSum,
  sqrt,
  sub,
  type Tensor,
  trainStep,
} from '../../src/policy/graph/index.ts';
import { type Feed, rng, run, session } from './graph-helpers.ts';

/** Textbook AdamW (Loshchilov & Hutter, as in PyTorch), one parameter, in float64. */
function adamwReference(
  p: number[],
  g: number[],
  m: number[],
  v: number[],
  t: number,
  o: { lr: number; b1: number; b2: number; eps: number; wd: number },
) {
  for (let i = 0; i < p.length; i++) {
    p[i]! *= 1 - o.lr * o.wd;
    m[i] = o.b1 * m[i]! + (1 - o.b1) * g[i]!;
    v[i] = o.b2 * v[i]! + (1 - o.b2) * g[i]! ** 2;
    const mHat = m[i]! / (1 - o.b1 ** t);
    const vHat = v[i]! / (1 - o.b2 ** t);
    p[i]! -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
  }
}

const maxAbsDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));

const f64 = (dims: number[], data: number[]): Feed => ({ dtype: 'float64', dims, data });

describe('optimizer nodes', () => {
  it('AdamW matches a hand-written float64 reference over several steps', async () => {
    const shapes = [[3], [2, 2]];
    const g = new Graph();
    const ins = (prefix: string) => shapes.map((s, i) => g.input(`${prefix}${i}`, 'float64', s));
    const [params, grads, m, v] = [ins('p'), ins('g'), ins('m'), ins('v')];
    const step = g.input('step', 'float64', []);
    const lr = g.input('lr', 'float64', []);
    const config = { beta1: 0.8, beta2: 0.95, eps: 1e-3, weightDecay: 0.1 };
    const out = adamw({ params, grads, m, v, step, lr, config, decay: [true, false] });
    for (const [i, t] of out.params.entries()) g.output(`p${i}_out`, t);
    for (const [i, t] of out.m.entries()) g.output(`m${i}_out`, t);
    for (const [i, t] of out.v.entries()) g.output(`v${i}_out`, t);
    g.output('step_out', out.step);
    const s = await session(g.toOnnx());

    const rand = rng(7);
    const sizes = [3, 4];
    const state = {
      p: sizes.map((n) => Array.from({ length: n }, () => rand() * 2 - 1)),
      m: sizes.map((n) => new Array<number>(n).fill(0)),
      v: sizes.map((n) => new Array<number>(n).fill(0)),
    };
    const ref = structuredClone(state);
    let stepValue = 0;
    for (let t = 1; t <= 4; t++) {
      const gs = sizes.map((n) => Array.from({ length: n }, () => rand() * 2 - 1));
      const lrValue = 0.05 / t;
      const feeds: Record<string, Feed> = { step: f64([], [stepValue]), lr: f64([], [lrValue]) };
      shapes.forEach((dims, i) => {
        feeds[`p${i}`] = f64(dims, state.p[i]!);
        feeds[`g${i}`] = f64(dims, gs[i]!);
        feeds[`m${i}`] = f64(dims, state.m[i]!);
        feeds[`v${i}`] = f64(dims, state.v[i]!);
      });
      const res = await run(s, feeds);
      sizes.forEach((_, i) => {
        state.p[i] = res[`p${i}_out`]!.data;
        state.m[i] = res[`m${i}_out`]!.data;
        state.v[i] = res[`v${i}_out`]!.data;
        const o = { lr: lrValue, b1: 0.8, b2: 0.95, eps: 1e-3, wd: i === 0 ? 0.1 : 0 };
        adamwReference(ref.p[i]!, gs[i]!, ref.m[i]!, ref.v[i]!, t, o);
      });
      stepValue = res.step_out!.data[0]!;
      expect(stepValue).toBe(t);
    }
    for (let i = 0; i < sizes.length; i++) {
      expect(maxAbsDiff(state.p[i]!, ref.p[i]!)).toBeLessThan(1e-12);
      expect(maxAbsDiff(state.m[i]!, ref.m[i]!)).toBeLessThan(1e-12);
      expect(maxAbsDiff(state.v[i]!, ref.v[i]!)).toBeLessThan(1e-12);
    }
  });

  it('clips gradients to a global norm and reports the norm before clipping', async () => {
    const g = new Graph();
    const a = g.input('a', 'float64', [2]);
    const b = g.input('b', 'float64', [1, 1]);
    for (const max of [1, 10]) {
      const { grads, norm } = clipByGlobalNorm([a, b], max);
      g.output(`a${max}`, grads[0]!);
      g.output(`b${max}`, grads[1]!);
      g.output(`norm${max}`, norm);
    }
    // |(3, 4, 12)| = 13
    const res = await run(await session(g.toOnnx()), { a: f64([2], [3, 4]), b: f64([1, 1], [12]) });
    expect(res.norm1!.data[0]).toBeCloseTo(13, 12);
    const scale = 1 / (13 + 1e-6);
    expect(res.a1!.data[0]).toBeCloseTo(3 * scale, 12);
    expect(res.a1!.data[1]).toBeCloseTo(4 * scale, 12);
    expect(res.b1!.data[0]).toBeCloseTo(12 * scale, 12);
    expect(res.a10!.data).toEqual([3 * (10 / (13 + 1e-6)), 4 * (10 / (13 + 1e-6))]);
    const big = await run(await session(g.toOnnx()), { a: f64([2], [0.3, 0.4]), b: f64([1, 1], [0]) });
    expect(big.a10!.data).toEqual([0.3, 0.4]); // norm 0.5 < 10: unchanged
  });

  describe('non-finite guard', () => {
    // loss = sum(sqrt(p) * x): a NaN in x makes the loss NaN; p = 0 makes the gradient infinite.
    async function build() {
      const g = new Graph();
      const p = g.input('p', 'float64', [3]);
      const x = g.input('x', 'float64', [3]);
      const loss = reduceSum(mul(sqrt(p), x));
      const out = trainStep({
        loss,
        params: [p],
        m: [g.input('m', 'float64', [3])],
        v: [g.input('v', 'float64', [3])],
        step: g.input('step', 'float64', []),
        lr: 0.1,
        maxGradNorm: 1,
      });
      g.output('p_out', out.params[0]!);
      g.output('m_out', out.m[0]!);
      g.output('v_out', out.v[0]!);
      g.output('step_out', out.step);
      g.output('skipped', out.skipped);
      g.output('norm', out.gradNorm);
      const s = await session(g.toOnnx());
      return (p: number[], x: number[]) =>
        run(s, {
          p: f64([3], p),
          x: f64([3], x),
          m: f64([3], [0.1, 0.2, 0.3]),
          v: f64([3], [0.01, 0.02, 0.03]),
          step: f64([], [5]),
        });
    }

    it('updates normally when everything is finite: clipped gradient, then AdamW', async () => {
      const p = [1, 2, 3];
      const x = [4, 4, 4];
      const res = await (await build())(p, x);
      expect(res.skipped!.data).toEqual([0]);
      expect(res.step_out!.data).toEqual([6]);
      // d/dp sum(sqrt(p) x) = x / (2 sqrt(p)); norm ~2.7 > 1, so scaled by 1 / (norm + 1e-6).
      const g = p.map((v, i) => x[i]! / (2 * Math.sqrt(v)));
      const norm = Math.hypot(...g);
      expect(res.norm!.data[0]).toBeCloseTo(norm, 12);
      const clipped = g.map((v) => v / (norm + 1e-6));
      const ref = { p: [...p], m: [0.1, 0.2, 0.3], v: [0.01, 0.02, 0.03] };
      adamwReference(ref.p, clipped, ref.m, ref.v, 6, { lr: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 });
      expect(maxAbsDiff(res.p_out!.data, ref.p)).toBeLessThan(1e-12);
      expect(maxAbsDiff(res.m_out!.data, ref.m)).toBeLessThan(1e-12);
      expect(maxAbsDiff(res.v_out!.data, ref.v)).toBeLessThan(1e-12);
    });

    it('skips the update when the loss is NaN', async () => {
      const res = await (await build())([1, 2, 3], [1, Number.NaN, 1]);
      expect(res.skipped!.data).toEqual([1]);
      expect(res.p_out!.data).toEqual([1, 2, 3]);
      expect(res.m_out!.data).toEqual([0.1, 0.2, 0.3]);
      expect(res.v_out!.data).toEqual([0.01, 0.02, 0.03]);
      expect(res.step_out!.data).toEqual([5]);
    });

    it('skips the update when the loss is finite but a gradient is infinite', async () => {
      const res = await (await build())([0, 2, 3], [1, 1, 1]);
      expect(res.norm!.data[0]).toBe(Number.POSITIVE_INFINITY);
      expect(res.skipped!.data).toEqual([1]);
      expect(res.p_out!.data).toEqual([0, 2, 3]);
      expect(res.step_out!.data).toEqual([5]);
    });
  });

  it('trains a tiny MLP with one session.run per step', async () => {
    // Fit y = sin(3 x0) * x1 on 64 fixed points, float32, forward + backward + AdamW in one graph.
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 2]);
    const y = g.input('y', 'float32', ['batch', 1]);
    const specs: [string, number[]][] = [
      ['w1', [2, 32]],
      ['b1', [32]],
      ['w2', [32, 1]],
    ];
    const params = specs.map(([n, s]) => g.input(n, 'float32', s));
    const m = specs.map(([n, s]) => g.input(`${n}_m`, 'float32', s));
    const v = specs.map(([n, s]) => g.input(`${n}_v`, 'float32', s));
    const step = g.input('step', 'float32', []);
    const [w1, b1, w2] = params as [Tensor, Tensor, Tensor];
    const pred = matmul(gelu(add(matmul(x, w1), b1)), w2);
    const diff = sub(pred, y);
    const loss = reduceMean(mul(diff, diff));
    const out = trainStep({ loss, params, m, v, step, lr: 0.02, maxGradNorm: 1, config: { weightDecay: 0 } });
    g.output('loss', loss);
    specs.forEach(([n], i) => {
      g.output(`${n}_out`, out.params[i]!);
      g.output(`${n}_m_out`, out.m[i]!);
      g.output(`${n}_v_out`, out.v[i]!);
    });
    g.output('step_out', out.step);
    const s = await session(g.toOnnx());

    const rand = rng(3);
    const n = 64;
    const xs = Array.from({ length: 2 * n }, () => rand() * 2 - 1);
    const ys = Array.from({ length: n }, (_, i) => Math.sin(3 * xs[2 * i]!) * xs[2 * i + 1]!);
    const feeds: Record<string, Feed> = {
      x: { dtype: 'float32', dims: [n, 2], data: xs },
      y: { dtype: 'float32', dims: [n, 1], data: ys },
      step: { dtype: 'float32', dims: [], data: [0] },
    };
    for (const [name, dims] of specs) {
      const size = dims.reduce((a, b) => a * b, 1);
      const scale = name.startsWith('b') ? 0 : 1 / Math.sqrt(dims[0]!);
      feeds[name] = {
        dtype: 'float32',
        dims,
        data: Array.from({ length: size }, () => (rand() * 2 - 1) * scale),
      };
      feeds[`${name}_m`] = { dtype: 'float32', dims, data: new Array<number>(size).fill(0) };
      feeds[`${name}_v`] = { dtype: 'float32', dims, data: new Array<number>(size).fill(0) };
    }
    const losses: number[] = [];
    for (let i = 0; i < 300; i++) {
      const res = await run(s, feeds);
      losses.push(res.loss!.data[0]!);
      for (const [name, dims] of specs) {
        for (const k of [name, `${name}_m`, `${name}_v`])
          feeds[k] = { dtype: 'float32', dims, data: res[`${k}_out`]!.data };
      }
      feeds.step = { dtype: 'float32', dims: [], data: res.step_out!.data };
    }
    expect(losses[0]).toBeGreaterThan(0.05);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! / 10);
  });
});
