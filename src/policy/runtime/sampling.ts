/**
 * Choosing the next token from a row of logits: temperature, top-k, top-p (drawing from the shared
 * seeded `Rng`), and a stop-string watcher for the decoded text.
 *
 * The returned log-prob is under the MODEL's distribution at temperature 1 with no truncation:
 * `logprob = log_softmax(logits)[token]`, whatever temperature/top-k/top-p were used to pick the
 * token. PPO's behaviour log-probs are recomputed by the scoring graph at temperature 1 anyway, so
 * this is the number that graph will agree with; the sampling distribution's own probability is
 * not returned.
 */
import { z } from 'zod';
import type { Rng } from '../../util/random.ts';
import { parseOrThrow } from '../../util/zod.ts';

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
  return parseOrThrow(SamplingOptions, input, 'invalid sampling options');
}

export interface Sampled {
  token: number;
  /** log_softmax(logits)[token] at temperature 1, untruncated (see the module comment). */
  logprob: number;
}

// ---------------------------------------------------------------------------------------------
// Sampling

/** Max of a row of logits and its first index; rejects NaN and +Infinity (-Infinity: never pick). */
function maxLogit(logits: Float32Array): { index: number; max: number } {
  let max = Number.NEGATIVE_INFINITY;
  let index = -1;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (Number.isNaN(v) || v === Number.POSITIVE_INFINITY) {
      throw new Error(`sampleToken: logit ${i} is ${v}; expected a finite number or -Infinity`);
    }
    if (v > max) {
      max = v;
      index = i;
    }
  }
  if (index < 0) throw new Error('sampleToken: every logit is -Infinity (or the row is empty)');
  return { index, max };
}

/** log_softmax(logits)[token], computed in float64. */
export function logSoftmaxAt(logits: Float32Array, token: number, max = maxLogit(logits).max): number {
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return logits[token]! - max - Math.log(sum);
}

/** True when token a ranks before token b: higher logit first, lower id on equal logits. */
const ranksBefore = (logits: Float32Array, a: number, b: number): boolean =>
  logits[a]! > logits[b]! || (logits[a] === logits[b] && a < b);

/**
 * The k best-ranked token ids (in no particular order), by a size-k heap whose root is the worst
 * kept token: O(vocab log k) instead of sorting the whole vocabulary.
 */
function topKIds(logits: Float32Array, k: number): Uint32Array {
  const heap = new Uint32Array(k);
  const worse = (i: number, j: number) => ranksBefore(logits, heap[j]!, heap[i]!);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let w = i;
      if (l < k && worse(l, w)) w = l;
      if (r < k && worse(r, w)) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w]!, heap[i]!];
      i = w;
    }
  };
  for (let i = 0; i < k; i++) heap[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i);
  for (let t = k; t < logits.length; t++) {
    if (ranksBefore(logits, t, heap[0]!)) {
      heap[0] = t;
      siftDown(0);
    }
  }
  return heap;
}

/**
 * The sampling distribution after temperature, top-k and top-p, as (token, weight) pairs in id
 * order with weights summing to 1. `sampleToken` draws from exactly this.
 *
 * Ranking is by logit, equal logits by lower id. Nothing sorts with a comparator (slow in V8 on
 * a whole vocabulary): top-k keeps a heap, top-p finds the logit where the mass crosses p by a
 * native sort of the logits and then keeps every token above it, plus the tied ones it needs.
 */
export function samplingDistribution(
  logits: Float32Array,
  options: SamplingOptions,
): { tokens: Uint32Array; probs: Float64Array } {
  const { index: best, max } = maxLogit(logits);
  const v = logits.length;
  const { temperature, topK, topP } = options;
  if (temperature === 0) return { tokens: Uint32Array.of(best), probs: Float64Array.of(1) };
  let tokens: Uint32Array;
  if (topK > 0 && topK < v) {
    tokens = topKIds(logits, topK).sort();
  } else {
    tokens = new Uint32Array(v);
    for (let i = 0; i < v; i++) tokens[i] = i;
  }
  const n = tokens.length;
  let weights = new Float64Array(n); // unnormalized probabilities at this temperature
  let total = 0;
  for (let j = 0; j < n; j++) {
    weights[j] = Math.exp((logits[tokens[j]!]! - max) / temperature);
    total += weights[j]!;
  }
  if (topP < 1) {
    // Walk the logits from the top until the mass reaches topP: the crossing logit.
    const sorted = new Float32Array(n);
    for (let j = 0; j < n; j++) sorted[j] = logits[tokens[j]!]!;
    sorted.sort();
    const target = topP * total;
    let mass = 0;
    let cross = sorted[0]!;
    for (let j = n - 1; j >= 0; j--) {
      mass += Math.exp((sorted[j]! - max) / temperature);
      if (mass >= target) {
        cross = sorted[j]!;
        break;
      }
    }
    // Every token above the crossing logit is in; tokens at it join in id order while needed.
    const keep = new Uint8Array(n);
    let kept = 0;
    let keptMass = 0;
    for (let j = 0; j < n; j++) {
      if (logits[tokens[j]!]! > cross) {
        keep[j] = 1;
        kept++;
        keptMass += weights[j]!;
      }
    }
    for (let j = 0; j < n && keptMass < target; j++) {
      if (logits[tokens[j]!] === cross) {
        keep[j] = 1;
        kept++;
        keptMass += weights[j]!;
      }
    }
    const keptTokens = new Uint32Array(kept);
    const keptWeights = new Float64Array(kept);
    for (let j = 0, k = 0; j < n; j++) {
      if (keep[j]) {
        keptTokens[k] = tokens[j]!;
        keptWeights[k++] = weights[j]!;
      }
    }
    tokens = keptTokens;
    weights = keptWeights;
    total = keptMass;
  }
  for (let j = 0; j < weights.length; j++) weights[j]! /= total;
  return { tokens, probs: weights };
}

/** sampleToken's weights of one row, reused across calls (sampling is synchronous). */
let weightScratch = new Float64Array(0);

/**
 * Draw one token from a row of logits. Order: temperature, then top-k, then top-p (as in most
 * LLM servers). The log-prob is log_softmax of the RAW logits (temperature 1, untruncated).
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: Rng): Sampled {
  const { index: best, max } = maxLogit(logits);
  const t = options.temperature;
  if (t === 0) return { token: best, logprob: logSoftmaxAt(logits, best, max) };
  if ((options.topK > 0 && options.topK < logits.length) || options.topP < 1) {
    const { tokens, probs } = samplingDistribution(logits, options);
    const token = draw(tokens, probs, rng.next());
    return { token, logprob: logSoftmaxAt(logits, token, max) };
  }
  // Untruncated: no sort; one pass for the mass, one (stopping early) to find the drawn token,
  // reading the weights the first pass kept (the same float64 values, without a second exp each).
  const v = logits.length;
  if (weightScratch.length < v) weightScratch = new Float64Array(v);
  const weights = weightScratch;
  let total = 0;
  for (let i = 0; i < v; i++) {
    const w = Math.exp((logits[i]! - max) / t);
    weights[i] = w;
    total += w;
  }
  const u = rng.next() * total;
  let acc = 0;
  let token = best;
  for (let i = 0; i < v; i++) {
    const w = weights[i]!;
    acc += w;
    if (w > 0) token = i;
    if (u < acc) break;
  }
  // At temperature 1 the mass above is already log_softmax's normalizer.
  const logprob = t === 1 ? logits[token]! - max - Math.log(total) : logSoftmaxAt(logits, token, max);
  return { token, logprob };
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
