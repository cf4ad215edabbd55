/**
 * Batching of concurrent chat calls on the local policy: each call is a row of a continuous batch
 * (src/policy/runtime/continuous-batch.ts), which joins the running decode batch at its next step
 * and leaves it when done; an idle batch waits a few milliseconds for a burst of calls to arrive.
 * Decode cost grows far slower than the batch size on CPU, so 64 episodes awaiting their next
 * turn share each step, and their shared prompt prefixes come from the prefix cache.
 */
import type { Policy } from '../../policy/policy.ts';
import { ContinuousBatch, type Generation } from '../../policy/runtime/continuous-batch.ts';
import type { RowOptions } from '../../policy/runtime/generate.ts';

/** A prompt that leaves no room for even one generated token. */
export class ContextOverflowError extends Error {
  constructor(
    readonly promptTokens: number,
    readonly contextLength: number,
  ) {
    super(
      `the prompt has ${promptTokens} tokens; the model's context is ${contextLength} tokens, ` +
        'so the prompt must be shorter than that to leave room for a reply',
    );
    this.name = 'ContextOverflowError';
  }
}

/** Sees each token of one request as it is sampled (with the top log-probs when asked for). */
export type TokenCallback = (
  token: number,
  logprob: number,
  top?: { token: number; logprob: number }[],
) => void;

export interface BatcherOptions {
  /** Most rows decoding at once. */
  maxBatch: number;
  /**
   * An idle batcher starts decoding once no request has arrived for this long, in ms (requests
   * of a burst, e.g. 32 clients answered by the same batch, arrive a little apart)...
   */
  waitMs: number;
  /** ...or this long after the first request of the batch arrived, whichever comes first. */
  maxWaitMs: number;
}

/** One batcher per policy, so every PolicyChatModel on a policy shares its decode batch. */
const shared = new WeakMap<Policy, GenerateBatcher>();

export class GenerateBatcher {
  /**
   * The policy's shared batcher (created with these options by the first caller; later callers get
   * it as it is, so an AgentFlow's modules on one policy decode together).
   */
  static shared(policy: Policy, options: BatcherOptions): GenerateBatcher {
    let b = shared.get(policy);
    if (!b) {
      b = new GenerateBatcher(policy, options);
      shared.set(policy, b);
    }
    return b;
  }

  /** The running decode batch requests join (its stats say how much the prefix cache saved). */
  readonly batch: ContinuousBatch;

  constructor(
    readonly policy: Policy,
    readonly options: BatcherOptions,
  ) {
    this.batch = new ContinuousBatch(policy.runner, {
      maxBatch: options.maxBatch,
      waitMs: options.waitMs,
      maxWaitMs: options.maxWaitMs,
      detokenizer: policy.tokenizer,
    });
  }

  /**
   * Busy periods of the decode batch (idle to idle) and the rows it ran, for tests and the bench.
   * With continuous batching a busy period may serve any number of requests.
   */
  get stats(): { batches: number; rows: number } {
    return { batches: this.batch.stats.runs, rows: this.batch.stats.rows };
  }

  /** Generate one continuation of `prompt` (token ids); it joins the running batch at its next step. */
  submit(
    prompt: number[],
    row: RowOptions & { maxNewTokens: number },
    extra: { onToken?: TokenCallback; signal?: AbortSignal } = {},
  ): Promise<Generation> {
    const ctx = this.policy.config.contextLength;
    if (prompt.length >= ctx) return Promise.reject(new ContextOverflowError(prompt.length, ctx));
    if (prompt.length === 0) return Promise.reject(new Error('generate: the prompt is empty'));
    return this.batch.submit({
      prompt,
      sampling: {
        temperature: row.temperature ?? 1,
        topK: row.topK ?? 0,
        topP: row.topP ?? 1,
      },
      maxNewTokens: row.maxNewTokens,
      stop: row.stop ?? [],
      stopTokens: [...this.policy.tokenizer.stopIds],
      seed: row.seed ?? 0,
      topLogprobs: row.topLogprobs ?? 0,
      ...(row.choices ? { choices: row.choices } : {}),
      onToken: extra.onToken,
      signal: extra.signal,
    });
  }
}
