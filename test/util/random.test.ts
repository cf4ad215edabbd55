/** The shared seeded randomness: FNV-1a's published vectors, mulberry32's stream, call seeds. */
import { describe, expect, it } from 'vitest';
import { callSeed, hashSeed, Rng, uniform } from '../../src/util/random.ts';

describe('hashSeed', () => {
  it('is 32-bit FNV-1a (the published test vectors)', () => {
    expect(hashSeed('')).toBe(0x811c9dc5);
    expect(hashSeed('a')).toBe(0xe40c292c);
    expect(hashSeed('foobar')).toBe(0xbf9cf968);
  });
});

describe('callSeed', () => {
  it('is the hash of the coordinates joined by ":", as a non-negative 31-bit integer', () => {
    expect(callSeed(7, 12, '0', 3)).toBe(hashSeed('7:12:0:3') >>> 1);
    expect(callSeed('foo', 'bar')).toBeLessThan(2 ** 31);
    expect(callSeed(1, 2)).not.toBe(callSeed(2, 1));
  });
});

describe('Rng', () => {
  it('is mulberry32 (first outputs worked out by a separate implementation)', () => {
    const r = new Rng(0);
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32()]).toEqual([1144304738, 1416247, 958946056]);
    const s = new Rng(42);
    expect([s.nextUint32(), s.nextUint32(), s.nextUint32()]).toEqual([2581720956, 1925393290, 3661312704]);
  });

  it('is reproducible from a seed; a string seed is its hash', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(new Rng(43).next()).not.toBe(xs[0]);
    expect(new Rng('split:train').next()).toBe(new Rng(hashSeed('split:train')).next());
    const u = uniform(42);
    expect(Array.from({ length: 100 }, () => u())).toEqual(xs);
  });

  it('gives uniform floats in [0, 1) (chi-square over 64 buckets)', () => {
    const r = new Rng(7);
    const n = 64_000;
    const counts = new Array(64).fill(0);
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      if (!(u >= 0 && u < 1)) outside++;
      counts[Math.floor(u * 64)]++;
    }
    expect(outside).toBe(0);
    const chi2 = counts.reduce((s, c) => s + (c - 1000) ** 2 / 1000, 0);
    expect(chi2).toBeLessThan(110); // 63 degrees of freedom: p < 0.001 above ~103
  });

  it('draws normals with mean 0 and variance 1', () => {
    const r = new Rng(3);
    const xs = Array.from({ length: 50_000 }, () => r.normal());
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
  });

  it('picks, shuffles and draws integers inside their ranges', () => {
    const r = new Rng(5);
    for (let i = 0; i < 1000; i++) {
      const k = r.int(-2, 3);
      expect(k >= -2 && k <= 3 && Number.isInteger(k)).toBe(true);
    }
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(() => r.pick([])).toThrow(/empty list/);
  });

  it('resumes a stream exactly from its saved state', () => {
    const a = new Rng(9);
    a.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    const next = Array.from({ length: 10 }, () => a.next());
    const resumed = Rng.fromState(saved);
    expect(Array.from({ length: 10 }, () => resumed.next())).toEqual(next);
    expect(() => Rng.fromState(-1)).toThrow(/expected an unsigned 32-bit integer/);
  });

  it('refuses a seed that is not finite', () => {
    expect(() => new Rng(Number.NaN)).toThrow(/seed must be a finite number/);
  });
});
