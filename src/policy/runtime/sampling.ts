/**
 * Choosing the next token from a row of logits: temperature, top-k, top-p, a seeded generator,
 * and a stop-string watcher for the decoded text.
 *
 * The returned log-prob is under the MODEL's distribution at temperature 1 with no truncation:
 * `logprob = log_softmax(logits)[token]`, whatever temperature/top-k/top-p were used to pick the
 * token. PPO's behaviour log-probs are recomputed by the scoring graph at temperature 1 anyway, so
 * this is the number that graph will agree with; the sampling distribution's own probability is
 * not returned.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// A seeded generator

/** splitmix32: turns a seed into well-mixed 32-bit words (used only to fill xoshiro's state). */
function splitmix32(state: { x: number }): number {
  state.x = (state.x + 0x9e3779b9) | 0;
  let z = state.x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

/**
 * xoshiro128** (Blackman and Vigna): 128 bits of state, fast with 32-bit integer ops, and its
 * state is four numbers, so a rollout can save it and resume exactly where it was.
 */
export class Rng {
  private s: Uint32Array;

  /** Seed with any integer (seeds are taken mod 2^32); equal seeds give equal streams. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    const mix = { x: Math.trunc(seed) | 0 };
    this.s = new Uint32Array([splitmix32(mix), splitmix32(mix), splitmix32(mix), splitmix32(mix)]);
    if (this.s.every((w) => w === 0)) this.s[0] = 1; // the all-zero state is a fixed point
  }

  /** Resume from a state saved by `state()`. */
  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new Error(`Rng.fromState: expected 4 unsigned 32-bit integers, got [${state}]`);
    }
    if (state.every((w) => w === 0)) throw new Error('Rng.fromState: the all-zero state is not allowed');
    const r = new Rng(0);
    r.s = Uint32Array.from(state);
    return r;
  }

  /** The generator's state, four unsigned 32-bit integers (JSON-serializable). */
  state(): number[] {
    return Array.from(this.s);
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling options

export const SamplingOptions = z.object({
  /** 0 = greedy (argmax, lowest id on ties); otherwise logits are divided by it before softmax. */
  temperature: z.number().min(0).default(1),
  /** Keep only the k most likely tokens; 0 = no limit. */
  topK: z.number().int().min(0).default(0),
  /** Keep the smallest set of most likely tokens whose probability reaches p (after top-k); 1 = off. */
  topP: z.number().gt(0).max(1).default(1),
});
export type SamplingOptions = z.infer<typeof SamplingOptions>;

/** Parse sampling options once (per generate call, not per token); errors name the bad field. */
export function samplingOptions(input: z.input<typeof SamplingOptions> = {}): SamplingOptions {
  const parsed = SamplingOptions.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`invalid sampling options: '${issue.path.join('.')}': ${issue.message}`);
  }
  return parsed.data;
}

export interface Sampled {
  token: number;
  /** log_softmax(logits)[token] at temperature 1, untruncated (see the module comment). */
  logprob: number;
}

// ---------------------------------------------------------------------------------------------
// Sampling

/** Max of a row of logits; rejects NaN and +Infinity (-Infinity means "never pick this"). */
function maxLogit(logits: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (Number.isNaN(v) || v === Number.POSITIVE_INFINITY) {
      throw new Error(`sampleToken: logit ${i} is ${v}; expected a finite number or -Infinity`);
    }
    if (v > max) max = v;
  }
  if (max === Number.NEGATIVE_INFINITY) throw new Error('sampleToken: every logit is -Infinity');
  return max;
}

/** log_softmax(logits)[token], computed in float64. */
export function logSoftmaxAt(logits: Float32Array, token: number, max = maxLogit(logits)): number {
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return logits[token]! - max - Math.log(sum);
}

/**
 * The sampling distribution after temperature, top-k and top-p, as (token, weight) pairs with
 * weights summing to 1. `sampleToken` draws from exactly this; tests compare against it.
 */
export function samplingDistribution(
  logits: Float32Array,
  options: SamplingOptions,
): { tokens: Uint32Array; probs: Float64Array } {
  const max = maxLogit(logits);
  const v = logits.length;
  const { temperature, topK, topP } = options;
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < v; i++) if (logits[i]! > logits[best]!) best = i;
    return { tokens: Uint32Array.of(best), probs: Float64Array.of(1) };
  }
  const truncate = (topK > 0 && topK < v) || topP < 1;
  let tokens: Uint32Array;
  if (truncate) {
    // Most likely first; equal logits keep id order so results never depend on the sort's mood.
    tokens = new Uint32Array(v);
    for (let i = 0; i < v; i++) tokens[i] = i;
    tokens.sort((a, b) => logits[b]! - logits[a]! || a - b);
    if (topK > 0 && topK < v) tokens = tokens.subarray(0, topK);
  } else {
    tokens = new Uint32Array(v);
    for (let i = 0; i < v; i++) tokens[i] = i;
  }
  const probs = new Float64Array(tokens.length);
  let total = 0;
  for (let j = 0; j < tokens.length; j++) {
    const w = Math.exp((logits[tokens[j]!]! - max) / temperature);
    probs[j] = w;
    total += w;
  }
  for (let j = 0; j < probs.length; j++) probs[j]! /= total;
  if (topP < 1) {
    // Smallest prefix whose mass reaches topP (the token that crosses the line is kept).
    let mass = 0;
    let keep = 0;
    while (keep < probs.length && mass < topP) mass += probs[keep++]!;
    tokens = tokens.subarray(0, keep);
    const kept = probs.subarray(0, keep);
    for (let j = 0; j < keep; j++) kept[j]! /= mass;
    return { tokens, probs: kept };
  }
  return { tokens, probs };
}

/**
 * Draw one token from a row of logits. Order: temperature, then top-k, then top-p (as in most
 * LLM servers). The log-prob is log_softmax of the RAW logits (temperature 1, untruncated).
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: Rng): Sampled {
  const max = maxLogit(logits);
  let token: number;
  if (options.temperature === 0) {
    token = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[token]!) token = i;
  } else if ((options.topK > 0 && options.topK < logits.length) || options.topP < 1) {
    const { tokens, probs } = samplingDistribution(logits, options);
    token = draw(tokens, probs, rng.nextFloat());
  } else {
    // Untruncated: no sort needed, one pass for the mass and one to find the drawn token.
    const t = options.temperature;
    let total = 0;
    for (let i = 0; i < logits.length; i++) total += Math.exp((logits[i]! - max) / t);
    const u = rng.nextFloat() * total;
    let acc = 0;
    token = -1;
    for (let i = 0; i < logits.length; i++) {
      const w = Math.exp((logits[i]! - max) / t);
      acc += w;
      if (w > 0) token = i;
      if (u < acc) break;
    }
  }
  return { token, logprob: logSoftmaxAt(logits, token, max) };
}

function draw(tokens: Uint32Array, probs: Float64Array, u: number): number {
  let acc = 0;
  for (let j = 0; j < tokens.length; j++) {
    acc += probs[j]!;
    if (u < acc) return tokens[j]!;
  }
  // Rounding can leave the total a hair under u; the last kept token has positive mass.
  return tokens[tokens.length - 1]!;
}

// ---------------------------------------------------------------------------------------------
// Stop strings

/**
 * Watches generated tokens for stop strings in the decoded text. Tokens are decoded incrementally
 * (a streaming UTF-8 decoder holds back the bytes of a character split across tokens), and only
 * the new tail is searched, so each push costs O(new text + longest stop string).
 */
export class StopStrings {
  private readonly decoder = new TextDecoder('utf-8');
  private readonly longest: number;
  /** Decoded text so far (complete characters only). */
  text = '';
  /** The first stop string found and where it starts in `text`, once one has appeared. */
  match: { stop: string; index: number } | undefined;

  constructor(
    readonly stops: readonly string[],
    private readonly tokenBytes: (token: number) => Uint8Array,
  ) {
    if (stops.some((s) => s.length === 0)) throw new Error('StopStrings: a stop string must not be empty');
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Add one generated token; returns true once a stop string has appeared in the text. */
  push(token: number): boolean {
    if (this.match) return true;
    const before = this.text.length;
    this.text += this.decoder.decode(this.tokenBytes(token), { stream: true });
    // A match may straddle the old text and the new piece, so look back longest-1 characters.
    const from = Math.max(0, before - this.longest + 1);
    for (const stop of this.stops) {
      const index = this.text.indexOf(stop, from);
      if (index >= 0 && (!this.match || index < this.match.index)) this.match = { stop, index };
    }
    return this.match !== undefined;
  }

  /** The text before the stop string (all of it when none has appeared). */
  textBeforeStop(): string {
    return this.match ? this.text.slice(0, this.match.index) : this.text;
  }
}
