/**
 * Generation options (batch-wide and per row) and `generate`, which turns a call's prompts into
 * row requests of a continuous batch (continuous-batch.ts runs the loop).
 */
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';
import { Choices } from './choices.ts';
import type { ContinuousBatch, Generation, TopLogprob } from './continuous-batch.ts';
import { SamplingOptions } from './sampling.ts';

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
  /** The text between `open` and `close` must be one of `options` (constrained decoding, choices.ts). */
  choices: Choices.optional(),
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

export type { Detokenizer, Generation } from './continuous-batch.ts';

/** Called as each token is sampled (e.g. to stream it); `row` is the prompt's index. */
export type OnToken = (row: number, token: number, logprob: number, top?: TopLogprob[]) => void;

/**
 * Sample a continuation of each prompt on a continuous batch: every prompt is one row request
 * (its options from `options.rows[i]`, else the call's), and they run together with whatever
 * else the batch is decoding. Row i samples with `seed + i` unless it sets its own seed.
 */
export function generate(
  batch: ContinuousBatch,
  prompts: number[][],
  options: GenerateOptions,
  onToken?: OnToken,
): Promise<Generation[]> {
  if (prompts.length === 0) return Promise.resolve([]);
  if (options.rows && options.rows.length !== prompts.length) {
    return Promise.reject(
      new Error(`generate: got ${options.rows.length} row options for ${prompts.length} prompts`),
    );
  }
  return Promise.all(
    prompts.map((prompt, i) => {
      const r = options.rows?.[i] ?? {};
      return batch.submit({
        prompt,
        sampling: {
          temperature: r.temperature ?? options.temperature,
          topK: r.topK ?? options.topK,
          topP: r.topP ?? options.topP,
        },
        maxNewTokens: r.maxNewTokens ?? options.maxNewTokens,
        stop: r.stop ?? options.stop,
        stopTokens: options.stopTokens,
        seed: r.seed ?? options.seed + i,
        topLogprobs: r.topLogprobs ?? 0,
        ...(r.choices ? { choices: r.choices } : {}),
        onToken: onToken && ((token, logprob, top) => onToken(i, token, logprob, top)),
      });
    }),
  );
}
