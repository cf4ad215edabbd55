// The generation loop: batched prefill of left-padded prompts, then one-token decode steps with a
// KV cache, sampling each row's next token on the host.
import { z } from 'zod';
import type { ModelRunner } from './runner.ts';
import { Rng, SamplingOptions, StopStrings, sampleToken } from './sampling.ts';

export const GenerateOptions = SamplingOptions.extend({
  /** Upper bound on generated tokens per row (also bounded by the context length). */
  maxNewTokens: z.number().int().min(1).default(64),
  /** Stop a row once its decoded text contains one of these; the text is cut before it. */
  stop: z.array(z.string().min(1)).default([]),
  /** Stop a row after it generates one of these ids (kept in its tokens), e.g. the end token. */
  stopTokens: z.array(z.number().int().min(0)).default([]),
  /** Row i samples with seed + i, so a row's tokens do not depend on the rest of the batch. */
  seed: z.number().int().default(0),
});
export type GenerateOptions = z.infer<typeof GenerateOptions>;

export function generateOptions(input: z.input<typeof GenerateOptions> = {}): GenerateOptions {
  const parsed = GenerateOptions.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`invalid generate options: '${issue.path.join('.')}': ${issue.message}`);
  }
  return parsed.data;
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
}

/** What generation needs from a tokenizer to watch for stop strings. */
export interface Detokenizer {
  tokenBytes(id: number): Uint8Array;
}

export async function generate(
  runner: ModelRunner,
  prompts: number[][],
  options: GenerateOptions,
  detokenizer?: Detokenizer,
): Promise<Generation[]> {
  if (prompts.length === 0) return [];
  if (options.stop.length > 0 && !detokenizer) {
    throw new Error('generate: stop strings need a detokenizer (use Policy.generate, which has one)');
  }
  const B = prompts.length;
  const rngs = prompts.map((_, i) => new Rng(options.seed + i));
  const stopTokens = new Set(options.stopTokens);
  const watchers = detokenizer
    ? prompts.map(() => new StopStrings(options.stop, (t) => detokenizer.tokenBytes(t)))
    : [];
  const out: Generation[] = prompts.map(() => ({ tokens: [], logprobs: [], finishReason: 'length' }));
  const done = new Array<boolean>(B).fill(false);

  const longest = Math.max(...prompts.map((p) => p.length));
  const steps = Math.min(options.maxNewTokens, runner.config.contextLength - longest);
  // The cache holds the prompt and every token but the last (whose keys nothing reads).
  let { logits, cache } = await runner.prefill(prompts, Math.max(longest, longest + steps - 1));
  for (let step = 0; step < steps; step++) {
    const next = new Array<number>(B).fill(0);
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      const { token, logprob } = sampleToken(logits[b]!, options, rngs[b]!);
      next[b] = token;
      const g = out[b]!;
      g.tokens.push(token);
      g.logprobs.push(logprob);
      // A stop token ends the row but is not part of its text.
      const stopped = stopTokens.has(token) || (watchers[b]?.push(token) && options.stop.length > 0);
      if (stopped) {
        g.finishReason = 'stop';
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
