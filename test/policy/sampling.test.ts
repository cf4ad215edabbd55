import { describe, expect, it } from 'vitest';
import {
  type SamplingOptions,
  StopStrings,
  sampleToken,
  samplingDistribution,
  samplingOptions,
} from '../../src/policy/runtime/sampling.ts';
import { Rng } from '../../src/util/random.ts';

/** Exact reference distribution, written out plainly in float64 (independent of the sampler). */
function reference(logits: number[], t: number, k: number, p: number): Map<number, number> {
  const order = logits.map((l, i) => ({ l, i })).sort((a, b) => b.l - a.l || a.i - b.i);
  const kept = k > 0 ? order.slice(0, k) : order;
  const z = kept.reduce((s, e) => s + Math.exp(e.l / t), 0);
  let probs = kept.map((e) => ({ i: e.i, q: Math.exp(e.l / t) / z }));
  if (p < 1) {
    const out: typeof probs = [];
    let mass = 0;
    for (const e of probs) {
      if (mass >= p) break;
      out.push(e);
      mass += e.q;
    }
    probs = out.map((e) => ({ i: e.i, q: e.q / mass }));
  }
  return new Map(probs.map((e) => [e.i, e.q]));
}

const logSoftmax = (logits: number[], i: number): number =>
  logits[i]! - Math.log(logits.reduce((s, l) => s + Math.exp(l), 0));

describe('sampleToken', () => {
  const logits = [2.0, 1.5, 1.5, 0.3, -0.7, -1.2, 0.9, 3.1, -4.0, 0.0];
  const row = Float32Array.from(logits);
  const f32 = Array.from(row); // compare against the float32 values the sampler sees

  it('temperature 0 is argmax (lowest id on ties)', () => {
    const r = new Rng(1);
    expect(sampleToken(row, samplingOptions({ temperature: 0 }), r).token).toBe(7);
    expect(sampleToken(Float32Array.of(1, 5, 5, 2), samplingOptions({ temperature: 0 }), r).token).toBe(1);
  });

  it('is reproducible with a seed', () => {
    const opts = samplingOptions({ temperature: 0.8, topP: 0.9 });
    const run = (seed: number) => {
      const r = new Rng(seed);
      return Array.from({ length: 200 }, () => sampleToken(row, opts, r).token);
    };
    expect(run(3)).toEqual(run(3));
    expect(run(3)).not.toEqual(run(4));
  });

  it('returns log_softmax of the raw logits whatever the sampling options', () => {
    const r = new Rng(5);
    for (const o of [{ temperature: 0 }, { temperature: 0.3, topK: 2 }, { temperature: 2, topP: 0.5 }, {}]) {
      for (let i = 0; i < 20; i++) {
        const s = sampleToken(row, samplingOptions(o), r);
        expect(s.logprob).toBeCloseTo(logSoftmax(f32, s.token), 10);
      }
    }
  });

  const cases: [string, Partial<SamplingOptions>][] = [
    ['plain softmax', {}],
    ['temperature 0.7', { temperature: 0.7 }],
    ['top-k 3', { topK: 3 }],
    ['top-p 0.8 at temperature 1.5', { temperature: 1.5, topP: 0.8 }],
    ['top-k 5 then top-p 0.6', { topK: 5, topP: 0.6 }],
  ];

  it('matches the reference distribution on a large vocabulary with many ties', () => {
    const r = new Rng(9);
    // Logits on a coarse grid, so many tokens tie, including at the top-k and top-p cut points.
    const big = Float32Array.from({ length: 3000 }, () => (r.nextUint32() % 40) / 4);
    const values = Array.from(big);
    for (const o of [
      { topK: 37 },
      { topP: 0.5 },
      { topP: 0.93, temperature: 0.6 },
      { topK: 500, topP: 0.7 },
    ]) {
      const opts = samplingOptions(o);
      const want = reference(values, opts.temperature, opts.topK, opts.topP);
      const d = samplingDistribution(big, opts);
      expect(new Set(d.tokens), JSON.stringify(o)).toEqual(new Set(want.keys()));
      for (const [j, tok] of d.tokens.entries()) expect(d.probs[j]).toBeCloseTo(want.get(tok)!, 12);
    }
  });
  for (const [name, o] of cases) {
    it(`draws from the exact renormalized distribution: ${name}`, () => {
      const opts = samplingOptions(o);
      const want = reference(f32, opts.temperature, opts.topK, opts.topP);
      // The exported distribution matches the reference exactly ...
      const d = samplingDistribution(row, opts);
      expect(new Set(d.tokens)).toEqual(new Set(want.keys()));
      for (const [j, tok] of d.tokens.entries()) expect(d.probs[j]).toBeCloseTo(want.get(tok)!, 12);
      // ... and the sampler's empirical frequencies match it (5 sigma at 100k draws).
      const n = 100_000;
      const counts = new Map<number, number>();
      const r = new Rng(11);
      for (let i = 0; i < n; i++) {
        const t = sampleToken(row, opts, r).token;
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      for (const t of counts.keys()) expect(want.has(t), `token ${t} is outside the support`).toBe(true);
      for (const [t, q] of want) {
        const freq = (counts.get(t) ?? 0) / n;
        expect(Math.abs(freq - q), `token ${t}`).toBeLessThan(5 * Math.sqrt((q * (1 - q)) / n) + 1e-9);
      }
    });
  }

  it('top-p keeps the token that crosses the threshold, and at least one token', () => {
    const l = Float32Array.of(Math.log(0.5), Math.log(0.3), Math.log(0.2));
    expect(Array.from(samplingDistribution(l, samplingOptions({ topP: 0.6 })).tokens)).toEqual([0, 1]);
    expect(Array.from(samplingDistribution(l, samplingOptions({ topP: 0.01 })).tokens)).toEqual([0]);
    // Ties rank by lower id, for top-k and at top-p's crossing point alike.
    const tied = Float32Array.of(0, 1, 1, 2, 1);
    expect(Array.from(samplingDistribution(tied, samplingOptions({ topK: 2 })).tokens)).toEqual([1, 3]);
    const flat = Float32Array.of(0, 1, 1, 1);
    expect(Array.from(samplingDistribution(flat, samplingOptions({ topP: 0.5 })).tokens)).toEqual([1, 2]);
    expect(Array.from(samplingDistribution(flat, samplingOptions({ topP: 0.85 })).tokens)).toEqual([1, 2, 3]);
  });

  it('never picks a -Infinity logit and rejects NaN', () => {
    const l = Float32Array.of(0, Number.NEGATIVE_INFINITY, 0);
    const r = new Rng(2);
    for (let i = 0; i < 1000; i++) expect(sampleToken(l, samplingOptions(), r).token).not.toBe(1);
    expect(() => sampleToken(Float32Array.of(0, Number.NaN), samplingOptions(), r)).toThrow(/logit 1 is NaN/);
    expect(() => samplingOptions({ topP: 0 })).toThrow(/'topP'/);
    expect(() => samplingOptions({ temperature: -1 })).toThrow(/'temperature'/);
  });
});

describe('StopStrings', () => {
  const bytes = (s: string) => new TextEncoder().encode(s);

  it('finds a stop string split across tokens and across a split UTF-8 character', () => {
    const euro = bytes('€'); // 3 bytes, fed one token per byte
    const pieces = [
      bytes('Answer: 4'),
      euro.subarray(0, 1),
      euro.subarray(1, 2),
      euro.subarray(2),
      bytes('\nOb'),
      bytes('s'),
    ];
    const w = new StopStrings(['\nObs', '€\n'], (t) => pieces[t]!);
    const stoppedAt = pieces.findIndex((_, i) => w.push(i));
    expect(stoppedAt).toBe(4); // '€\n' completes with the token carrying '\n'
    expect(w.match).toEqual({ stop: '€\n', index: 'Answer: 4'.length });
    expect(w.textBeforeStop()).toBe('Answer: 4');
  });

  it('reports the earliest stop and keeps all text when none appears', () => {
    const w = new StopStrings(['xyz'], (t) => bytes(['ab', 'c'][t]!));
    expect(w.push(0)).toBe(false);
    expect(w.push(1)).toBe(false);
    expect(w.textBeforeStop()).toBe('abc');
    const v = new StopStrings(['b', 'a'], () => bytes('ab'));
    v.push(0);
    expect(v.match).toEqual({ stop: 'a', index: 0 });
  });
});
