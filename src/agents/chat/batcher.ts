/**
 * Batching of concurrent generation requests: calls that arrive while a batch is decoding, or within
 * a few milliseconds of each other, run together as one `Policy.generate` batch. Decode cost grows
 * far slower than the batch size on CPU, so 64 episodes awaiting their next turn share each step.
 */
import type { Policy } from '../../policy/policy.ts';
import type { Generation, RowOptions } from '../../policy/runtime/generate.ts';

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
  /** Most rows in one batch. */
  maxBatch: number;
  /**
   * An idle batcher starts decoding once no request has arrived for this long, in ms (requests
   * of a burst, e.g. 32 clients answered by the same batch, arrive a little apart)...
   */
  waitMs: number;
  /** ...or this long after the first request of the batch arrived, whichever comes first. */
  maxWaitMs: number;
}

interface Pending {
  prompt: number[];
  row: RowOptions & { maxNewTokens: number };
  onToken?: TokenCallback;
  signal?: AbortSignal;
  resolve(g: Generation): void;
  reject(err: unknown): void;
}

/** One batcher per policy, so every PolicyChatModel on a policy shares its decode batches. */
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

  /** Batches run so far and the rows they held (for tests and the bench). */
  readonly stats = { batches: 0, rows: 0 };
  private queue: Pending[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly policy: Policy,
    readonly options: BatcherOptions,
  ) {}

  /** Generate one continuation of `prompt` (token ids) in the next batch that has room for it. */
  submit(
    prompt: number[],
    row: RowOptions & { maxNewTokens: number },
    extra: { onToken?: TokenCallback; signal?: AbortSignal } = {},
  ): Promise<Generation> {
    const ctx = this.policy.config.contextLength;
    if (prompt.length >= ctx) return Promise.reject(new ContextOverflowError(prompt.length, ctx));
    if (prompt.length === 0) return Promise.reject(new Error('generate: the prompt is empty'));
    extra.signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      // The abort listener goes once the request settles: a run may share one signal across
      // thousands of calls.
      const onAbort = () => this.cancel(pending);
      const settle = () => extra.signal?.removeEventListener('abort', onAbort);
      const pending: Pending = {
        prompt,
        row,
        ...extra,
        resolve: (g) => {
          settle();
          resolve(g);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      };
      this.queue.push(pending);
      extra.signal?.addEventListener('abort', onAbort, { once: true });
      this.schedule();
    });
  }

  private cancel(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i < 0) return; // already decoding: it finishes with its batch
    this.queue.splice(i, 1);
    p.reject(p.signal?.reason ?? new Error('aborted'));
  }

  private firstArrival = 0;

  private schedule(): void {
    if (this.running) return;
    const now = performance.now();
    if (this.timer) clearTimeout(this.timer);
    else this.firstArrival = now;
    const wait = Math.min(this.options.waitMs, this.options.maxWaitMs - (now - this.firstArrival));
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.runBatch();
      },
      Math.max(0, wait),
    );
  }

  /**
   * Take queued requests in arrival order while each still gets as many tokens as it would alone:
   * prompts are left-padded to the longest, so a long prompt shortens every row's budget.
   */
  private take(): Pending[] {
    const ctx = this.policy.config.contextLength;
    const alone = (p: Pending) => Math.min(p.row.maxNewTokens, ctx - p.prompt.length);
    const batch: Pending[] = [];
    let longest = 0;
    const rest: Pending[] = [];
    for (const p of this.queue) {
      const l = Math.max(longest, p.prompt.length);
      const fits = batch.length < this.options.maxBatch && [...batch, p].every((q) => alone(q) <= ctx - l);
      if (batch.length === 0 || fits) {
        batch.push(p);
        longest = l;
      } else rest.push(p);
    }
    this.queue = rest;
    return batch;
  }

  private async runBatch(): Promise<void> {
    const batch = this.take();
    if (batch.length === 0) return;
    this.running = true;
    this.stats.batches++;
    this.stats.rows += batch.length;
    try {
      const out = await this.policy.generate(
        batch.map((p) => p.prompt),
        { rows: batch.map((p) => p.row), maxNewTokens: Math.max(...batch.map((p) => p.row.maxNewTokens)) },
        (row, token, logprob, top) => batch[row]!.onToken?.(token, logprob, top),
      );
      for (const [i, p] of batch.entries()) p.resolve(out[i]!);
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.running = false;
      // Requests that arrived while this batch decoded have waited long enough: run them now.
      if (this.queue.length > 0) void this.runBatch();
    }
  }
}
