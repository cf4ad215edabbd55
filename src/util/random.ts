/**
 * Seeded randomness, written once: `hashSeed` (32-bit FNV-1a, Fowler/Noll/Vo) turns keys into seeds,
 * `callSeed` is the seed of one model call, and `Rng` (mulberry32, Tommy Ettinger) is the one seeded
 * generator: task generation, sampling, initialization and shuffles all draw from it. Hand-written
 * (a dozen lines) because the streams must be the same on every platform and Node version, which
 * Math.random cannot promise; the generated worlds and splits depend on this exact stream.
 */

/** 32-bit FNV-1a of a string's UTF-16 code units, unsigned. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The seed of one model call: the FNV-1a of its coordinates joined by ':' (for example the
 * sampling seed, the trajectory's seed and id, and the step), as a non-negative 31-bit integer.
 * Every loop seeds its calls this way, so the G rollouts of a group sample differently and a
 * rerun samples the same.
 */
export function callSeed(...parts: readonly (string | number)[]): number {
  return hashSeed(parts.join(':')) >>> 1;
}

/** mulberry32: 32 bits of state, one multiply-xorshift round per draw. */
export class Rng {
  private s: number;

  /** `seed` is any finite number (taken mod 2^32) or any key (hashed); equal seeds give equal streams. */
  constructor(seed: number | string) {
    if (typeof seed === 'number' && !Number.isFinite(seed)) {
      throw new Error(`Rng: seed must be a finite number or a string, got ${seed}`);
    }
    this.s = (typeof seed === 'string' ? hashSeed(seed) : seed) >>> 0;
  }

  /** Resume a stream from a state saved by `state()`. */
  static fromState(state: number): Rng {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) {
      throw new Error(`Rng.fromState: expected an unsigned 32-bit integer, got ${state}`);
    }
    return new Rng(state);
  }

  /** The generator's whole state, one unsigned 32-bit integer (JSON-serializable). */
  state(): number {
    return this.s;
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A standard normal draw (Box-Muller, one of the pair; two uniform draws). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** An `Rng`'s stream as a plain `() => number` in [0, 1), for code that wants a function. */
export function uniform(seed: number | string): () => number {
  const r = new Rng(seed);
  return () => r.next();
}
