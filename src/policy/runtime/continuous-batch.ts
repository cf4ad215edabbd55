/**
 * Continuous batching (Orca's iteration-level scheduling, as in vLLM and SGLang): one running
 * decode batch per `ContinuousBatch`, which requests join and leave between decode steps instead
 * of waiting for a whole batch to finish. A joining row takes a slot, gets the keys and values of
 * its prompt's longest cached prefix (the runner's `PrefixCache`) and prefills only the rest
 * (the extend graph); rows of one admission that share a prefix longer than the cache knows are
 * prefilled in waves, so the G copies of a task's first prompt cost one prefill. A finished
 * row's prompt and reply go into the prefix cache, ready for the trajectory's next turn.
 *
 * Each row samples with its own generator, so its tokens do not depend on which rows share its
 * steps (up to float rounding in the batched kernels).
 */
import { Rng } from '../../util/random.ts';
import { ChoiceConstraint, type Choices, maskLogits } from './choices.ts';
import type { PrefixNode } from './prefix-cache.ts';
import type { ModelRunner } from './runner.ts';
import { logSoftmaxAt, type SamplingOptions, StopStrings, sampleToken } from './sampling.ts';
import { SlotCache } from './slots.ts';

/** One generation request, every option resolved. */
export interface RowRequest {
  prompt: number[];
  sampling: SamplingOptions;
  maxNewTokens: number;
  /** Stop strings (need the batch's detokenizer). */
  stop: readonly string[];
  /** Ids that end the row (kept in its tokens), e.g. the end token. */
  stopTokens: readonly number[];
  seed: number;
  /** Also return the log-probs of this many most likely tokens at each step (0 = none). */
  topLogprobs: number;
  /** Constrain the text between `choices.open` and `choices.close` to one of its options (choices.ts). */
  choices?: Choices;
  onToken?: (token: number, logprob: number, top?: TopLogprob[]) => void;
  /** Aborting drops the row before its next step (the promise rejects with the reason). */
  signal?: AbortSignal;
}

export interface TopLogprob {
  token: number;
  logprob: number;
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
  /** With `topLogprobs`: per step, the most likely tokens and their log-probs, best first. */
  topLogprobs?: TopLogprob[][];
}

/** What generation needs from a tokenizer to watch for stop strings. */
export interface Detokenizer {
  tokenBytes(id: number): Uint8Array;
  /** Needed for `choices` (their options are encoded). */
  encode?(text: string): number[];
}

export interface ContinuousBatchOptions {
  /** Most rows decoding at once; more requests wait for a row to leave. */
  maxBatch: number;
  /**
   * An idle batch starts once no request has arrived for this long, in ms (a burst arrives a
   * little apart)... (0: at the next turn of the event loop)
   */
  waitMs?: number;
  /** ...or this long after the first request arrived, whichever comes first. */
  maxWaitMs?: number;
  detokenizer?: Detokenizer;
}

export interface ContinuousBatchStats {
  /** Busy periods: the batch went from idle to running this many times. */
  runs: number;
  /** Rows admitted. */
  rows: number;
  /** Prefill (extend) calls and decode steps run. */
  prefills: number;
  steps: number;
  /** Prompt tokens of admitted rows, and how many of them were prefilled (not found in the cache). */
  promptTokens: number;
  prefilledTokens: number;
}

interface Pending {
  request: RowRequest;
  resolve(g: Generation): void;
  reject(err: unknown): void;
}

interface Row extends Pending {
  rng: Rng;
  stopStrings: StopStrings | undefined;
  stopTokens: Set<number>;
  constraint: ChoiceConstraint | undefined;
  /** Most tokens this row may generate: maxNewTokens, bounded by the context. */
  budget: number;
  out: Generation;
  /** The token the next decode step feeds: the last sampled one, or the prompt's last (see `prefill`). */
  next: number;
  done: boolean;
  /** The deepest prefix-cache node this row holds (kept from eviction while it runs). */
  held: PrefixNode | undefined;
}

/**
 * Rows whose prompts share this many more tokens with an earlier row of the same admission than
 * the cache holds wait for that row's prefill (the second wave) and reuse it.
 */
const SHARED_PREFIX_MIN = 8;

/**
 * An idle batch frees its slot buffers after this long, in ms. A burst right after a burst (32
 * clients sending their next requests) reuses them instead of allocating and zeroing them again
 * (for 32 rows of the small preset, 48 MB, whose garbage collection followed).
 */
const KEEP_SLOTS_MS = 2000;

export class ContinuousBatch {
  readonly stats: ContinuousBatchStats = {
    runs: 0,
    rows: 0,
    prefills: 0,
    steps: 0,
    promptTokens: 0,
    prefilledTokens: 0,
  };
  private readonly slots: SlotCache;
  private waiting: Pending[] = [];
  /** Row b decodes in slot b. */
  private active: Row[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  /** Frees the slot buffers of an idle batch (see KEEP_SLOTS_MS). */
  private releaseTimer: NodeJS.Timeout | undefined;
  private firstArrival = 0;
  /** Scratch logits for constrained rows. */
  private masked: Float32Array = new Float32Array();

  constructor(
    readonly runner: ModelRunner,
    readonly options: ContinuousBatchOptions,
  ) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new Error(`ContinuousBatch: maxBatch must be an integer >= 1, got ${options.maxBatch}`);
    }
    this.slots = new SlotCache(runner.config);
  }

  /** Rows decoding now and requests waiting for a slot. */
  get load(): { active: number; waiting: number } {
    return { active: this.active.length, waiting: this.waiting.length };
  }

  /** Generate one continuation; the request joins the running batch at its next step. */
  submit(request: RowRequest): Promise<Generation> {
    const ctx = this.runner.config.contextLength;
    try {
      this.runner.checkTokens([request.prompt], 'prompt');
      if (request.prompt.length >= ctx) {
        throw new Error(
          `generate: the prompt has ${request.prompt.length} tokens; the context is ${ctx}, so it leaves no room to generate`,
        );
      }
      if (request.stop.length > 0 && !this.options.detokenizer) {
        throw new Error('generate: stop strings need a detokenizer (Policy.generate has one)');
      }
      if (request.choices && !this.options.detokenizer?.encode) {
        throw new Error('generate: choices need a tokenizer that encodes (Policy.generate has one)');
      }
      request.signal?.throwIfAborted();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running) return; // joins at the next step
    const now = performance.now();
    if (this.timer) clearTimeout(this.timer);
    else this.firstArrival = now;
    const wait = Math.min(
      this.options.waitMs ?? 0,
      (this.options.maxWaitMs ?? 0) - (now - this.firstArrival),
    );
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.run();
      },
      Math.max(0, wait),
    );
  }

  /** The decode loop: admit waiting requests, step, retire finished rows, until nothing is left. */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stats.runs++;
    clearTimeout(this.releaseTimer);
    try {
      while (this.waiting.length > 0 || this.active.length > 0) {
        this.dropAborted();
        if (this.waiting.length > 0 && this.active.length < this.options.maxBatch) {
          await this.guard(() => this.admit());
        }
        if (this.active.length > 0) await this.guard(() => this.step());
      }
    } finally {
      this.running = false;
      this.releaseTimer = setTimeout(() => this.slots.release(), KEEP_SLOTS_MS);
      // A process with nothing else to do may exit meanwhile.
      this.releaseTimer.unref();
    }
  }

  /** A failing graph run fails the rows in flight, not the loop (waiting requests still run). */
  private async guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      for (const row of this.active) {
        this.runner.prefixCache?.unhold(row.held);
        row.reject(err);
      }
      this.active = [];
      this.slots.rows = 0;
      this.slots.lengths = [];
    }
  }

  private dropAborted(): void {
    this.waiting = this.waiting.filter((p) => {
      if (!p.request.signal?.aborted) return true;
      p.reject(p.request.signal.reason ?? new Error('aborted'));
      return false;
    });
    for (let b = this.active.length - 1; b >= 0; b--) {
      const row = this.active[b]!;
      if (row.request.signal?.aborted) {
        this.removeRow(b, false);
        row.reject(row.request.signal.reason ?? new Error('aborted'));
      }
    }
  }

  private newRow(p: Pending): Row {
    const r = p.request;
    const detok = this.options.detokenizer;
    return {
      ...p,
      rng: new Rng(r.seed),
      stopStrings: detok ? new StopStrings(r.stop, (t) => detok.tokenBytes(t)) : undefined,
      stopTokens: new Set(r.stopTokens),
      constraint:
        r.choices && new ChoiceConstraint(r.choices, detok as Required<Detokenizer>).prime(r.prompt),
      budget: Math.min(r.maxNewTokens, this.runner.config.contextLength - r.prompt.length),
      out: {
        tokens: [],
        logprobs: [],
        finishReason: 'length',
        ...(r.topLogprobs > 0 ? { topLogprobs: [] } : {}),
      },
      next: 0,
      done: false,
      held: undefined,
    };
  }

  /**
   * Take waiting requests into free slots and prefill them. With a prefix cache they go in waves:
   * a row that shares a longer prefix with an earlier row of the wave than the cache holds waits
   * for the next wave, when that row's prompt is cached (so G copies of a prompt, or prompts that
   * share a system message, prefill the shared part once).
   */
  private async admit(): Promise<void> {
    let pending = this.waiting
      .splice(0, this.options.maxBatch - this.active.length)
      .map((p) => this.newRow(p));
    const cache = this.runner.prefixCache;
    while (pending.length > 0) {
      const wave: Row[] = [];
      const later: Row[] = [];
      for (const row of pending) {
        const prompt = row.request.prompt;
        const cached = cache ? cache.peek(prompt, prompt.length - 1) : 0;
        const shared = cache ? Math.max(0, ...wave.map((w) => commonPrefix(w.request.prompt, prompt))) : 0;
        (Math.min(shared, prompt.length - 1) >= cached + SHARED_PREFIX_MIN ? later : wave).push(row);
      }
      await this.prefill(wave);
      pending = later;
    }
  }

  /**
   * Give each row of a wave a slot holding its cached prefix, then prefill the suffixes. Rows go
   * into slots longest suffix first and are prefilled in runs of similar length, so that a
   * one-token suffix is not left-padded to a long one's length. A one-token suffix (a prompt the
   * cache holds but for its last token) is not prefilled at all: that token is the row's first
   * input of the next decode step, which computes the same keys, values and logits as a prefill
   * of it would, inside a step the running rows take anyway.
   */
  private async prefill(wave: Row[]): Promise<void> {
    const cache = this.runner.prefixCache;
    const matches = wave.map((row) => {
      const prompt = row.request.prompt;
      return cache?.match(prompt, prompt.length - 1);
    });
    const order = wave.map((_, j) => j);
    const suffixLength = (j: number) => wave[j]!.request.prompt.length - (matches[j]?.length ?? 0);
    order.sort((a, b) => suffixLength(b) - suffixLength(a));
    const start = this.active.length;
    const need = Math.max(...wave.map((r) => r.request.prompt.length + r.budget - 1));
    this.slots.reserve(start + wave.length, need);
    const rows: Row[] = [];
    const suffixes: number[][] = [];
    for (const j of order) {
      const row = wave[j]!;
      const match = matches[j];
      const prompt = row.request.prompt;
      const slot = this.slots.add();
      this.active.push(row);
      rows.push(row);
      if (cache && match) {
        cache.copyInto(match, this.slots, slot);
        this.slots.lengths[slot] = match.length;
        row.held = match.path.at(-1)?.node;
        cache.hold(row.held);
      }
      const cached = match?.length ?? 0;
      suffixes.push(prompt.slice(cached));
      this.stats.rows++;
      this.stats.promptTokens += prompt.length;
      this.stats.prefilledTokens += prompt.length - cached;
    }
    // Suffixes are sorted longest first: the one-token ones are the tail.
    let prefilled = rows.length;
    while (prefilled > 0 && suffixes[prefilled - 1]!.length === 1) prefilled--;
    for (let j = prefilled; j < rows.length; j++) rows[j]!.next = suffixes[j]![0]!;
    const logits: Float32Array[] = [];
    for (let a = 0; a < prefilled; ) {
      // A run: rows whose suffixes are at least 3/4 of its first (longest) one, so padding
      // wastes at most a quarter of the run's work.
      let b = a + 1;
      while (b < prefilled && 4 * suffixes[b]!.length >= 3 * suffixes[a]!.length) b++;
      this.stats.prefills++;
      logits.push(...(await this.runner.extend(this.slots, start + a, suffixes.slice(a, b))));
      a = b;
    }
    // A decoding row's prompt goes into the cache when it retires (with its reply).
    const done = rows.slice(0, prefilled);
    if (cache) {
      done.forEach((row, j) => {
        const held = cache.insert(row.request.prompt, (s, e) => this.slots.read(start + j, s, e));
        cache.unhold(row.held);
        row.held = held;
        cache.hold(held);
      });
    }
    done.forEach((row, j) => {
      this.sample(row, logits[j]!);
    });
    this.retire();
  }

  private async step(): Promise<void> {
    this.stats.steps++;
    // Rows that have sampled nothing yet feed their prompt's last token (see `prefill`).
    const prompted = this.active.reduce((n, r) => n + (r.out.tokens.length === 0 ? 1 : 0), 0);
    const logits = await this.runner.decodeSlots(
      this.slots,
      this.active.map((r) => r.next),
      prompted,
    );
    this.active.forEach((row, b) => {
      this.sample(row, logits[b]!);
    });
    this.retire();
  }

  /** Sample a row's next token from its logits and decide whether the row is done. */
  private sample(row: Row, logits: Float32Array): void {
    const r = row.request;
    const allowed = row.constraint?.allowed();
    if (allowed) this.masked = maskLogits(logits, allowed, this.masked);
    let { token, logprob } = sampleToken(allowed ? this.masked : logits, r.sampling, row.rng);
    // The model's own log-prob, not the renormalised one (choices.ts says why).
    if (allowed) logprob = logSoftmaxAt(logits, token);
    row.constraint?.push(token);
    row.next = token;
    row.out.tokens.push(token);
    row.out.logprobs.push(logprob);
    const top = r.topLogprobs > 0 ? topTokens(logits, r.topLogprobs) : undefined;
    if (top) row.out.topLogprobs!.push(top);
    r.onToken?.(token, logprob, top);
    // A stop token ends the row but is not part of its text.
    const stopped = row.stopTokens.has(token) || (row.stopStrings?.push(token) === true && r.stop.length > 0);
    if (stopped) {
      row.out.finishReason = 'stop';
      row.done = true;
    } else if (row.out.tokens.length >= row.budget) {
      row.done = true;
    }
  }

  /** Resolve finished rows and free their slots (their text into the prefix cache first). */
  private retire(): void {
    for (let b = this.active.length - 1; b >= 0; b--) {
      const row = this.active[b]!;
      if (!row.done) continue;
      this.removeRow(b, true);
      if (row.stopStrings) row.out.text = row.stopStrings.textBeforeStop();
      row.resolve(row.out);
    }
  }

  private removeRow(b: number, cacheIt: boolean): void {
    const row = this.active[b]!;
    const cache = this.runner.prefixCache;
    if (cache) {
      if (cacheIt) {
        // Everything but the last sampled token has keys and values in the slot.
        const tokens = [...row.request.prompt, ...row.out.tokens.slice(0, -1)];
        cache.insert(tokens, (s, e) => this.slots.read(b, s, e));
      }
      cache.unhold(row.held);
    }
    this.slots.remove(b);
    const last = this.active.pop()!;
    if (b < this.active.length) this.active[b] = last;
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The k most likely tokens of a row of logits and their log-probs (temperature 1), best first. */
export function topTokens(logits: Float32Array, k: number): TopLogprob[] {
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
