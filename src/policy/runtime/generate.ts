/**
 * The generation loop: batched prefill of left-padded prompts, then one-token decode steps with a
 * KV cache, sampling each row's next token on the host.
 */
import { z } from 'zod';
import { Rng } from '../../util/random.ts';
import { parseOrThrow } from '../../util/zod.ts';
import type { ModelRunner } from './runner.ts';
import { logSoftmaxAt, SamplingOptions, StopStrings, sampleToken } from './sampling.ts';

/**
 * Options one row of a batch may set for itself (anything unset falls back to the batch's), so
 * requests with different sampling settings can share one decode batch (see src/agents/chat).
 */
// Spelled out rather than `SamplingOptions.partial()`: zod would still fill in the defaults, and a
// row's unset field must fall back to the batch's value, not to the default.
export const RowOptions = z.object({
  temperature: z.number().min(0).optional(),
  topK: z.number().int().min(0).optional(),
  topP: z.number().gt(0).max(1).optional(),
  maxNewTokens: z.number().int().min(1).optional(),
  stop: z.array(z.string().min(1)).optional(),
  /** This row's own seed (instead of `seed + row index`). */
  seed: z.number().int().optional(),
  /** Also return the log-probs of this many most likely tokens at each step (0 = none). */
  topLogprobs: z.number().int().min(0).max(20).optional(),
});
export type RowOptions = z.infer<typeof RowOptions>;

export const GenerateOptions = SamplingOptions.extend({
  /** Upper bound on generated tokens per row (also bounded by the context length). */
  maxNewTokens: z.number().int().min(1).default(64),
  /** Stop a row once its decoded text contains one of these; the text is cut before it. */
  stop: z.array(z.string().min(1)).default([]),
  /** Stop a row after it generates one of these ids (kept in its tokens), e.g. the end token. */
  stopTokens: z.array(z.number().int().min(0)).default([]),
  /** Row i samples with seed + i, so a row's tokens do not depend on the rest of the batch. */
  seed: z.number().int().default(0),
  /** Per-row overrides, one entry per prompt (optional). */
  rows: z.array(RowOptions).optional(),
});
export type GenerateOptions = z.infer<typeof GenerateOptions>;

export function generateOptions(input: z.input<typeof GenerateOptions> = {}): GenerateOptions {
  return parseOrThrow(GenerateOptions, input, 'invalid generate options');
}

export interface Generation {
  /** Generated ids, including a stop token that ended the row. */
  tokens: number[];
  /** log_softmax(logits)[token] at temperature 1 for each generated token (see sampling.ts). */
  logprobs: number[];
  /** 'stop': a stop token or string; 'length': maxNewTokens or the context length. */
  finishReason: 'stop' | 'length';
  /** Decoded text before any stop string (when a detokenizer was given). */
  text?: string;
  /** With a row's `topLogprobs`: per step, the most likely tokens and their log-probs, best first. */
  topLogprobs?: { token: number; logprob: number }[][];
}

/** Called as each token is sampled (e.g. to stream it); `row` is the prompt's index. */
export type OnToken = (
  row: number,
  token: number,
  logprob: number,
  top?: { token: number; logprob: number }[],
) => void;

/** What generation needs from a tokenizer to watch for stop strings. */
export interface Detokenizer {
  tokenBytes(id: number): Uint8Array;
}

export async function generate(
  runner: ModelRunner,
  prompts: number[][],
  options: GenerateOptions,
  detokenizer?: Detokenizer,
  onToken?: OnToken,
): Promise<Generation[]> {
  if (prompts.length === 0) return [];
  if (options.rows && options.rows.length !== prompts.length) {
    throw new Error(`generate: got ${options.rows.length} row options for ${prompts.length} prompts`);
  }
  const B = prompts.length;
  const rows = prompts.map((_, i) => {
    const r = options.rows?.[i] ?? {};
    return {
      sampling: {
        temperature: r.temperature ?? options.temperature,
        topK: r.topK ?? options.topK,
        topP: r.topP ?? options.topP,
      },
      maxNewTokens: r.maxNewTokens ?? options.maxNewTokens,
      stop: r.stop ?? options.stop,
      seed: r.seed ?? options.seed + i,
      topLogprobs: r.topLogprobs ?? 0,
    };
  });
  if (rows.some((r) => r.stop.length > 0) && !detokenizer) {
    throw new Error('generate: stop strings need a detokenizer (use Policy.generate, which has one)');
  }
  const rngs = rows.map((r) => new Rng(r.seed));
  const stopTokens = new Set(options.stopTokens);
  const watchers = detokenizer
    ? rows.map((r) => new StopStrings(r.stop, (t) => detokenizer.tokenBytes(t)))
    : [];
  const out: Generation[] = rows.map((r) => ({
    tokens: [],
    logprobs: [],
    finishReason: 'length',
    ...(r.topLogprobs > 0 ? { topLogprobs: [] } : {}),
  }));
  const done = new Array<boolean>(B).fill(false);

  const longest = Math.max(...prompts.map((p) => p.length));
  const steps = Math.min(Math.max(...rows.map((r) => r.maxNewTokens)), runner.config.contextLength - longest);
  // The cache holds the prompt and every token but the last (whose keys nothing reads).
  let { logits, cache } = await runner.prefill(prompts, Math.max(longest, longest + steps - 1));
  for (let step = 0; step < steps; step++) {
    const next = new Array<number>(B).fill(0);
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      const row = rows[b]!;
      const { token, logprob } = sampleToken(logits[b]!, row.sampling, rngs[b]!);
      next[b] = token;
      const g = out[b]!;
      g.tokens.push(token);
      g.logprobs.push(logprob);
      const top = row.topLogprobs > 0 ? topTokens(logits[b]!, row.topLogprobs) : undefined;
      if (top) g.topLogprobs!.push(top);
      onToken?.(b, token, logprob, top);
      // A stop token ends the row but is not part of its text.
      const stopped = stopTokens.has(token) || (watchers[b]?.push(token) && row.stop.length > 0);
      if (stopped) {
        g.finishReason = 'stop';
        done[b] = true;
      } else if (g.tokens.length >= row.maxNewTokens) {
        done[b] = true;
      }
    }
    // The last step needs no decode: nothing would read its logits.
    if (done.every(Boolean) || step === steps - 1) break;
    // Finished rows keep decoding (a token of 0) so the batch stays rectangular; their output is ignored.
    logits = await runner.decode(next, cache);
  }
  if (detokenizer) {
    out.forEach((g, b) => {
      g.text = watchers[b]!.textBeforeStop();
    });
  }
  return out;
}

/** The k most likely tokens of a row of logits and their log-probs (temperature 1), best first. */
function topTokens(logits: Float32Array, k: number): { token: number; logprob: number }[] {
  // k is at most 20: a partial selection by repeated scans is simpler than a heap and fast enough.
  const picked: number[] = [];
  for (let n = 0; n < Math.min(k, logits.length); n++) {
    let best = -1;
    for (let i = 0; i < logits.length; i++) {
      if (picked.includes(i)) continue;
      if (best < 0 || logits[i]! > logits[best]!) best = i;
    }
    picked.push(best);
  }
  return picked.map((token) => ({ token, logprob: logSoftmaxAt(logits, token) }));
}
