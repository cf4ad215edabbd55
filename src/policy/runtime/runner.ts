/**
 * Runs the model's graphs in ONNX Runtime. Parameters and AdamW moments live here as ORT tensors
 * between calls: a train step's outputs become the next call's inputs without a copy through JS.
 */
import * as ort from 'onnxruntime-node';
import { headSize, kvHeads, type ModelConfig } from '../model/config.ts';
import type { FloatType } from '../model/graphs.ts';
import {
  buildDecodeGraph,
  buildExtendGraph,
  buildLogitsGraph,
  buildPrefillGraph,
  buildScoreGraph,
} from '../model/graphs.ts';
import type { LossConfig } from '../model/loss.ts';
import { checkParams, elementCount, type Params, paramSpecs, trainableSpecs } from '../model/params.ts';
import { buildTrainGraph, METRICS, type MetricName, tokenInputs } from '../model/train.ts';
import { MASKED } from '../model/transformer.ts';
import { kvBytesPerToken, PrefixCache } from './prefix-cache.ts';
import { createSession, type Device, type PolicyDtype, warnDtypeFallback } from './session.ts';
import type { SlotCache } from './slots.ts';

/**
 * Loss scaling of float16 updates: where the scale starts, and how many steps in a row without an
 * overflow double it. PyTorch starts at 2^16 and grows every 2000 steps; a run here makes tens to
 * hundreds of updates, so it starts lower (each overflow costs a skipped step) and grows sooner.
 * Neither was tuned: no GPU here.
 */
export const INITIAL_LOSS_SCALE = 2 ** 10;
export const LOSS_SCALE_GROWTH = 100;

/** Default bound of the prefix cache, in bytes of keys and values. */
export const PREFIX_CACHE_BYTES = 256 * 1024 * 1024;

/** One training sequence. Per-token arrays are aligned with `tokens`; entry 0 is never used. */
export interface TokenRow {
  tokens: number[];
  /** 1 where the token counts in the loss (response tokens), 0 elsewhere (prompt, padding). */
  mask: number[];
  advantages?: number[];
  /** Log-probs of the tokens under the policy that sampled them. */
  oldLogprobs?: number[];
  /** Log-probs of the tokens under the frozen reference policy. */
  refLogprobs?: number[];
  /**
   * A prompt prefix the row continues: `tokens` (and the arrays aligned with it) are then the
   * row's tokens after it. Rows with equal prefixes in one batch share one pass of it
   * (`prefixFeeds`); the loss never reads entry 0 of `tokens`, as without a prefix.
   */
  prefix?: readonly number[];
}

export type TokenBatch = TokenRow[];

/**
 * The shared-prefix inputs of a batch whose rows continue `prefixes` (undefined: none): each
 * distinct prefix once, right-padded (prefixIds), and per row its index (prefixOf) and length
 * (prefixLength). Undefined when no row has a prefix.
 */
export function prefixFeeds(
  prefixes: readonly (readonly number[] | undefined)[],
): Record<string, ort.Tensor> | undefined {
  if (prefixes.every((p) => p === undefined || p.length === 0)) return undefined;
  const index = new Map<string, number>();
  const distinct: (readonly number[])[] = [];
  const of = new BigInt64Array(prefixes.length);
  const length = new BigInt64Array(prefixes.length);
  prefixes.forEach((p, b) => {
    if (!p || p.length === 0) return;
    const key = p.join(',');
    let i = index.get(key);
    if (i === undefined) {
      i = distinct.length;
      index.set(key, i);
      distinct.push(p);
    }
    of[b] = BigInt(i);
    length[b] = BigInt(p.length);
  });
  const width = Math.max(...distinct.map((p) => p.length));
  const ids = new BigInt64Array(distinct.length * width);
  distinct.forEach((p, i) => {
    p.forEach((t, j) => {
      ids[i * width + j] = BigInt(t);
    });
  });
  return {
    prefixIds: new ort.Tensor('int64', ids, [distinct.length, width]),
    prefixOf: new ort.Tensor('int64', of, [prefixes.length]),
    prefixLength: new ort.Tensor('int64', length, [prefixes.length]),
  };
}

/**
 * ONNX Runtime sessions by graph key, and the device they really run on. Runners of one base
 * model with different adapters share one pool: their inference graphs bake only the frozen base
 * weights (identical for all of them) and take the adapters as inputs, so one session per graph
 * serves every adapter and the base weights sit once in the sessions.
 */
export class SessionPool {
  readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  device?: Device;

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await s.then((x) => x.release()).catch(() => {});
  }
}

export interface RunnerOptions {
  bakeWeights?: boolean;
  prefixCacheBytes?: number;
  /** Sessions shared with other runners of the same base (their owner disposes them). */
  sessions?: SessionPool;
  /** Refuse updates: the adapter (or base) is served and scored, never trained. */
  frozen?: boolean;
  /** Names the runner in errors, e.g. "adapter 'executor'". */
  label?: string;
  /**
   * Compute precision of every graph (generation, scoring, the train step's forward and backward),
   * already resolved for the device (`resolveCompute`). Parameters and AdamW moments stay float32
   * whatever it is (mixed precision; see train.ts).
   */
  dtype?: PolicyDtype;
}

export type UpdateMetrics = Record<MetricName, number> & {
  /** True when the loss or gradient was not finite: nothing was updated. */
  skipped: boolean;
  tokens: number;
};

/**
 * Keys and values of every layer for a batch of rows decoded together, in preallocated host
 * buffers [batch, kvHeads, capacity, headSize]: a decode step reads them in place (ONNX Runtime
 * wraps input arrays without copying) and returns only the new token's keys and values.
 */
export interface KvCache {
  k: Float32Array[];
  v: Float32Array[];
  batch: number;
  capacity: number;
  /** Filled positions, left padding included. */
  length: number;
  /** Left padding of each row. */
  pads: number[];
}

const i64 = (values: ArrayLike<number>, dims: number[]) =>
  new ort.Tensor('int64', BigInt64Array.from(Array.from(values, (v) => BigInt(v))), dims);

export class ModelRunner {
  readonly config: ModelConfig;
  readonly device: Device;
  /** Parameters, in paramSpecs order. */
  params: Map<string, ort.Tensor> = new Map();
  private m = new Map<string, ort.Tensor>();
  private v = new Map<string, ort.Tensor>();
  /** AdamW updates applied so far. */
  step = 0;
  private readonly pool: SessionPool;
  private readonly ownsPool: boolean;
  /** Refuses `update` (see `RunnerOptions.frozen`). */
  readonly frozen: boolean;
  private readonly label: string;
  /** The requested compute precision (`RunnerOptions.dtype`). */
  readonly dtype: PolicyDtype;
  /** The precision graphs really run in: `dtype`, or float32 after a graph would not load. */
  private computeDtype: PolicyDtype;
  /**
   * float16 updates: the loss scale (dynamic, as PyTorch's GradScaler: halved after a step whose
   * gradients overflowed, which the non-finite guard skipped; doubled after LOSS_SCALE_GROWTH
   * steps in a row without one).
   */
  lossScale = INITIAL_LOSS_SCALE;
  private goodSteps = 0;
  /** Bumped whenever the parameters change; baked inference sessions are built per version. */
  private version = 0;
  /** Bumped when `setParams` replaces the frozen base of a LoRA config (updates never change it). */
  private baseVersion = 0;
  /**
   * The parameters' version: equal before and after some work means the weights did not change
   * in between (a rollout's log-probs are then the behaviour log-probs of an update that follows).
   */
  get paramsVersion(): number {
    return this.version;
  }
  /**
   * Work done by generation, cumulative: prompt tokens run through prefill or extend (cache hits
   * excluded) and generated tokens fed to decode steps. Callers take differences.
   */
  readonly work = { prefilledTokens: 0, decodedTokens: 0 };
  /**
   * Inference graphs (score, prefill, decode, logits) with the weights baked in as initializers,
   * rebuilt lazily after each update. Measured on the small preset: a decode step takes 30-45% less
   * CPU than with weights as inputs (ONNX Runtime pre-packs constant MatMul operands), for a
   * rebuild of about half a second per update. Off = one session forever, weights fed each call.
   */
  readonly bakeWeights: boolean;
  /**
   * Keys and values of prompts seen before, keyed by token prefix, for the continuous batches on
   * this runner (undefined: off). Cleared whenever the parameters change.
   */
  prefixCache: PrefixCache | undefined;

  constructor(config: ModelConfig, params: Params, device: Device = 'cpu', options: RunnerOptions = {}) {
    this.config = config;
    this.device = device;
    this.bakeWeights = options.bakeWeights ?? true;
    this.pool = options.sessions ?? new SessionPool();
    this.ownsPool = options.sessions === undefined;
    this.frozen = options.frozen ?? false;
    this.label = options.label ?? 'the policy';
    this.dtype = options.dtype ?? 'float32';
    this.computeDtype = this.dtype;
    this.setPrefixCache(options.prefixCacheBytes ?? PREFIX_CACHE_BYTES);
    this.setParams(params);
  }

  /**
   * Bound the prefix cache to `bytes` of keys and values (rounded down to whole positions), or
   * turn it off with 0. Drops what was cached.
   */
  setPrefixCache(bytes: number): void {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new Error(`prefix cache size must be a number of bytes >= 0, got ${bytes}`);
    }
    const tokens = Math.floor(bytes / kvBytesPerToken(this.config));
    this.prefixCache = tokens > 0 ? new PrefixCache(this.config, tokens) : undefined;
  }

  /** Replace the parameters (and reset nothing else: moments stay, like loading weights mid-run). */
  setParams(params: Params): void {
    checkParams(this.config, params);
    for (const s of paramSpecs(this.config)) {
      this.params.set(s.name, new ort.Tensor('float32', params.get(s.name)!, s.shape));
    }
    this.version++;
    this.baseVersion++;
    this.prefixCache?.clear();
  }

  /** Current parameters as host arrays (views of the ORT tensors' data, not copies). */
  getParams(): Params {
    const out: Params = new Map();
    for (const [k, t] of this.params) out.set(k, t.data as Float32Array);
    return out;
  }

  getOptimizerState(): { m: Params; v: Params } | undefined {
    if (this.m.size === 0) return undefined;
    const pick = (src: Map<string, ort.Tensor>) => {
      const out: Params = new Map();
      for (const [k, t] of src) out.set(k, t.data as Float32Array);
      return out;
    };
    return { m: pick(this.m), v: pick(this.v) };
  }

  setOptimizerState(state: { m: Params; v: Params }, step: number): void {
    for (const s of trainableSpecs(this.config)) {
      for (const moments of [state.m, state.v]) {
        if (moments.get(s.name)?.length !== elementCount(s.shape)) {
          throw new Error(`optimizer state: '${s.name}' is missing or not of shape [${s.shape}]`);
        }
      }
      this.m.set(s.name, new ort.Tensor('float32', state.m.get(s.name)!, s.shape));
      this.v.set(s.name, new ort.Tensor('float32', state.v.get(s.name)!, s.shape));
    }
    this.step = step;
  }

  /** The precision the graphs really run in (float32 after a half graph would not load). */
  get runningDtype(): PolicyDtype {
    return this.computeDtype;
  }

  /** The device sessions really run on (after a CUDA fallback), once a session exists. */
  get runningOn(): Device | undefined {
    return this.pool.device;
  }

  private session(key: string, build: () => Uint8Array): Promise<ort.InferenceSession> {
    const sessions = this.pool.sessions;
    let s = sessions.get(key);
    if (!s) {
      s = createSession(build(), this.pool.device ?? this.device).then(
        (r) => {
          this.pool.device = r.device;
          return r.session;
        },
        (e: unknown) => {
          sessions.delete(key); // let the next call try again instead of failing forever
          throw e;
        },
      );
      sessions.set(key, s);
    }
    return s;
  }

  /** The LoRA config in graph keys: runners with equal adapters' shapes share a graph. */
  private get loraKey(): string {
    return this.config.lora ? JSON.stringify(this.config.lora) : '';
  }

  private paramFeeds(): Record<string, ort.Tensor> {
    return Object.fromEntries(this.params);
  }

  /**
   * The session of an inference graph and the parameter feeds it needs: with baked weights, a
   * session for the current parameter version (older versions of the graph are released).
   */
  private async inference(
    kind: string,
    build: (weights: Params | undefined, dtype: FloatType) => Uint8Array,
  ): Promise<{ session: ort.InferenceSession; feeds: Record<string, ort.Tensor> }> {
    const dtype = this.computeDtype;
    if (dtype === 'float32') return this.inferenceIn(kind, (w) => build(w, 'float32'));
    try {
      return await this.inferenceIn(`${kind}:${dtype}`, (w) => build(w, dtype));
    } catch (e) {
      // A kernel missing for the half type on this device: float32 from here on, said once.
      warnDtypeFallback(dtype, this.pool.device ?? this.device, e);
      this.computeDtype = 'float32';
      return this.inferenceIn(kind, (w) => build(w, 'float32'));
    }
  }

  private async inferenceIn(
    kind: string,
    build: (weights?: Params) => Uint8Array,
  ): Promise<{ session: ort.InferenceSession; feeds: Record<string, ort.Tensor> }> {
    if (!this.bakeWeights)
      return {
        session: await this.session(`${kind}${this.loraKey}`, () => build()),
        feeds: this.paramFeeds(),
      };
    if (this.config.lora) {
      // Only the frozen base is baked; the adapters are fed, so an update rebuilds nothing and
      // every adapter of this base (sharing the pool) runs the same session.
      const key = `${kind}${this.loraKey}#base${this.baseVersion}`;
      const base: Params = new Map();
      const adapters: Record<string, ort.Tensor> = {};
      for (const s of paramSpecs(this.config)) {
        const t = this.params.get(s.name)!;
        if (s.frozen) base.set(s.name, t.data as Float32Array);
        else adapters[s.name] = t;
      }
      return { session: await this.session(key, () => build(base)), feeds: adapters };
    }
    const key = `${kind}@${this.version}`;
    for (const [k, s] of this.pool.sessions) {
      if (k.startsWith(`${kind}@`) && k !== key) {
        this.pool.sessions.delete(k);
        // A graph that failed to build has nothing to release.
        s.then((x) => x.release()).catch(() => {});
      }
    }
    return { session: await this.session(key, () => build(this.getParams())), feeds: {} };
  }

  // --- checks: bad input fails here with a message, not deep inside ONNX Runtime ----------------

  checkTokens(rows: number[][], what = 'row'): void {
    const V = this.config.vocabSize;
    rows.forEach((r, i) => {
      if (r.length === 0) throw new Error(`${what} ${i} is empty; expected at least one token`);
      if (r.length > this.config.contextLength) {
        throw new Error(
          `${what} ${i} has ${r.length} tokens, more than the context length ${this.config.contextLength}`,
        );
      }
      r.forEach((t, j) => {
        if (!Number.isInteger(t) || t < 0 || t >= V) {
          throw new Error(
            `${what} ${i}: token id ${t} at position ${j} is out of range; expected an integer in [0, ${V - 1}]`,
          );
        }
      });
    });
  }

  /**
   * Prefixes: one per row (or undefined), valid token ids, prefix and row within the context, and
   * no flag (loss mask, wanted score) on a prefixed row's first token: that token is predicted by
   * the prefix's last one, which neither graph scores.
   */
  checkPrefixes(
    rows: number[][],
    prefixes: readonly (readonly number[] | undefined)[],
    what: string,
    flags?: readonly (readonly number[] | undefined)[],
  ): void {
    prefixes.forEach((p, i) => {
      if (p && p.length > 0 && (flags?.[i]?.[0] ?? 0) !== 0)
        throw new Error(
          `${what} ${i} continues a prefix and flags its first token; end the prefix before the row's first scored token`,
        );
    });
    if (prefixes.length !== rows.length)
      throw new Error(
        `${prefixes.length} prefixes for ${rows.length} ${what}s; expected one (or undefined) per ${what}`,
      );
    this.checkTokens(
      prefixes.flatMap((p) => (p && p.length > 0 ? [[...p]] : [])),
      `${what} prefix`,
    );
    prefixes.forEach((p, i) => {
      const n = (p?.length ?? 0) + rows[i]!.length;
      if (n > this.config.contextLength)
        throw new Error(
          `${what} ${i} with its prefix has ${n} tokens, more than the context length ${this.config.contextLength}`,
        );
    });
  }

  // --- inference -----------------------------------------------------------------------------------

  /** Full logits [rows, seq, vocab] for right-padded rows (tests, export checks). */
  async logits(rows: number[][]): Promise<{ data: Float32Array; seq: number }> {
    this.checkTokens(rows);
    const seq = Math.max(...rows.map((r) => r.length));
    const ids = rows.flatMap((r) => [...r, ...new Array(seq - r.length).fill(0)]);
    const { session, feeds } = await this.inference('logits', (w, dtype) =>
      buildLogitsGraph(this.config, dtype, w).toOnnx(),
    );
    const out = await session.run({ ...feeds, ids: i64(ids, [rows.length, seq]) });
    return { data: out.logits!.data as Float32Array, seq };
  }

  /**
   * Teacher-forced log-probs: for each row, log p(tokens[t] | tokens[< t]) for t = 1..len-1 (entry 0
   * is 0: the first token has no context). Rows are right-padded into one batch. With `wanted`
   * (one flag array per row, aligned with its tokens), only the tokens whose flag is non-zero are
   * scored and the others read 0: the head and its [rows, seq, vocab] log-softmax then run on those
   * positions only (the update reads the response tokens' log-probs, a tenth of a windowed row).
   * With `temperature` the log-probs and entropy are those of softmax(logits / temperature).
   */
  async score(
    rows: number[][],
    wanted?: readonly (readonly number[])[],
    prefixes?: readonly (readonly number[] | undefined)[],
    temperature = 1,
  ): Promise<{ logprobs: Float32Array[]; entropy: Float32Array[] }> {
    this.checkTokens(rows);
    if (prefixes) this.checkPrefixes(rows, prefixes, 'row', wanted);
    const shared = prefixes && prefixFeeds(prefixes);
    if (wanted) {
      if (wanted.length !== rows.length)
        throw new Error(`score: ${wanted.length} flag arrays for ${rows.length} rows; expected one per row`);
      wanted.forEach((w, i) => {
        if (w.length !== rows[i]!.length)
          throw new Error(
            `score: row ${i}'s flags have ${w.length} entries; expected ${rows[i]!.length} (one per token)`,
          );
      });
    }
    const seq = Math.max(...rows.map((r) => r.length)) - 1;
    if (seq < 1)
      return {
        logprobs: rows.map((r) => new Float32Array(r.length)),
        entropy: rows.map((r) => new Float32Array(r.length)),
      };
    const ids = new Array<number>(rows.length * seq).fill(0);
    rows.forEach((r, b) => {
      for (let t = 0; t < r.length - 1; t++) ids[b * seq + t] = r[t]!;
    });
    // Positions t (predicting token t + 1) to score, per row: all of them, or the wanted ones.
    const picked = rows.map((r, b) => {
      const at: number[] = [];
      for (let t = 0; t < r.length - 1; t++) if (!wanted || wanted[b]![t + 1] !== 0) at.push(t);
      return at;
    });
    const sel = Math.max(1, ...picked.map((a) => a.length));
    const select = new Array<number>(rows.length * sel).fill(0);
    const targets = new Array<number>(rows.length * sel).fill(0);
    picked.forEach((at, b) => {
      for (let j = 0; j < sel; j++) select[b * sel + j] = b * seq + (at[j] ?? 0);
      at.forEach((t, j) => {
        targets[b * sel + j] = rows[b]![t + 1]!;
      });
    });
    if (!(temperature > 0)) throw new Error(`score: temperature ${temperature}; expected a number above 0`);
    const kind = `score${wanted ? '-select' : ''}${shared ? '-prefixed' : ''}${temperature === 1 ? '' : `@${temperature}`}`;
    const { session, feeds } = await this.inference(kind, (w, dtype) =>
      buildScoreGraph(
        this.config,
        dtype,
        w,
        wanted !== undefined,
        shared !== undefined,
        temperature,
      ).toOnnx(),
    );
    const out = await session.run({
      ...feeds,
      ...shared,
      ids: i64(ids, [rows.length, seq]),
      targets: i64(targets, [rows.length, wanted ? sel : seq]),
      ...(wanted ? { select: i64(select, [rows.length, sel]) } : {}),
    });
    const lp = out.logprobs!.data as Float32Array;
    const ent = out.entropy!.data as Float32Array;
    const cut = (src: Float32Array, r: number[], b: number) => {
      const a = new Float32Array(r.length);
      picked[b]!.forEach((t, j) => {
        a[t + 1] = src[b * (wanted ? sel : seq) + j]!;
      });
      return a;
    };
    return { logprobs: rows.map((r, b) => cut(lp, r, b)), entropy: rows.map((r, b) => cut(ent, r, b)) };
  }

  /**
   * Run left-padded prompts through the prefill graph. Returns each row's next-token logits and
   * a cache with room for `capacity` positions (default: the context length). Padding sits on the
   * left so every row's next token has the same index.
   */
  async prefill(
    prompts: number[][],
    capacity = this.config.contextLength,
  ): Promise<{ logits: Float32Array[]; cache: KvCache }> {
    this.checkTokens(prompts, 'prompt');
    const B = prompts.length;
    const T = Math.max(...prompts.map((p) => p.length));
    for (const p of prompts) this.work.prefilledTokens += p.length;
    if (capacity < T || capacity > this.config.contextLength) {
      throw new Error(
        `prefill: capacity ${capacity} must be between the prompt length ${T} and the context length ${this.config.contextLength}`,
      );
    }
    const pads = prompts.map((p) => T - p.length);
    const ids: number[] = [];
    const positions: number[] = [];
    const bias = new Float32Array(B * T * T);
    prompts.forEach((p, b) => {
      const pad = pads[b]!;
      for (let t = 0; t < T; t++) {
        ids.push(t < pad ? 0 : p[t - pad]!);
        positions.push(Math.max(0, t - pad));
        for (let k = 0; k < T; k++) {
          // Query t sees key k when k <= t and k is not padding. A padding query sees itself only,
          // so its softmax row stays finite (its output is never used).
          const visible = k <= t && (k >= pad || k === t);
          bias[(b * T + t) * T + k] = visible ? 0 : MASKED;
        }
      }
    });
    const { session, feeds } = await this.inference('prefill', (w, dtype) =>
      buildPrefillGraph(this.config, dtype, w).toOnnx(),
    );
    const out = await session.run({
      ...feeds,
      ids: i64(ids, [B, T]),
      positions: i64(positions, [B, T]),
      bias: new ort.Tensor('float32', bias, [B, 1, T, T]),
    });
    const V = this.config.vocabSize;
    const logits = out.logits!.data as Float32Array;
    const H = kvHeads(this.config);
    const hs = headSize(this.config);
    const cache: KvCache = { k: [], v: [], batch: B, capacity, length: T, pads };
    for (let l = 0; l < this.config.layers; l++) {
      for (const kind of ['k', 'v'] as const) {
        const src = out[`present.${l}.${kind}`]!.data as Float32Array; // [B, H, T, hs]
        const dst = new Float32Array(B * H * capacity * hs);
        for (let bh = 0; bh < B * H; bh++)
          dst.set(src.subarray(bh * T * hs, (bh + 1) * T * hs), bh * capacity * hs);
        cache[kind].push(dst);
      }
    }
    return { logits: prompts.map((_, b) => logits.subarray(b * V, (b + 1) * V)), cache };
  }

  /**
   * One decode step: each row's next token at its position, attending to the cache and itself.
   * Appends the token's keys/values to the cache (in place) and returns the next logits per row.
   */
  async decode(tokens: number[], cache: KvCache): Promise<Float32Array[]> {
    const B = cache.batch;
    if (tokens.length !== B) throw new Error(`decode: got ${tokens.length} tokens for a batch of ${B} rows`);
    this.work.decodedTokens += B;
    if (cache.length >= cache.capacity) {
      throw new Error(
        `decode: the cache is full (${cache.capacity} positions); prefill with a larger capacity`,
      );
    }
    this.checkTokens([tokens], 'decode tokens');
    const cap = cache.capacity;
    const bias = new Float32Array(B * cap).fill(MASKED);
    for (let b = 0; b < B; b++) bias.fill(0, b * cap + cache.pads[b]!, b * cap + cache.length);
    const H = kvHeads(this.config);
    const hs = headSize(this.config);
    const { session, feeds: paramFeeds } = await this.inference('decode', (w, dtype) =>
      buildDecodeGraph(this.config, dtype, w).toOnnx(),
    );
    const feeds: Record<string, ort.Tensor> = {
      ...paramFeeds,
      ids: i64(tokens, [B, 1]),
      positions: i64(
        tokens.map((_, b) => cache.length - cache.pads[b]!),
        [B, 1],
      ),
      bias: new ort.Tensor('float32', bias, [B, 1, 1, cap]),
    };
    for (let l = 0; l < this.config.layers; l++) {
      feeds[`past.${l}.k`] = new ort.Tensor('float32', cache.k[l]!, [B, H, cap, hs]);
      feeds[`past.${l}.v`] = new ort.Tensor('float32', cache.v[l]!, [B, H, cap, hs]);
    }
    const out = await session.run(feeds);
    for (let l = 0; l < this.config.layers; l++) {
      for (const kind of ['k', 'v'] as const) {
        const src = out[`present.${l}.${kind}`]!.data as Float32Array; // [B, H, 1, hs]
        const dst = cache[kind][l]!;
        for (let bh = 0; bh < B * H; bh++) {
          dst.set(src.subarray(bh * hs, (bh + 1) * hs), (bh * cap + cache.length) * hs);
        }
      }
    }
    cache.length++;
    const V = this.config.vocabSize;
    const logits = out.logits!.data as Float32Array;
    return tokens.map((_, b) => logits.subarray(b * V, (b + 1) * V));
  }

  /**
   * Prefill prompt suffixes after what their slots already hold (a cached prefix, or nothing):
   * rows `first`..`first + suffixes.length - 1` of `slots`, whose suffixes are left-padded into one
   * batch of the extend graph. Appends the suffixes' keys/values to the slots and returns each
   * row's next-token logits.
   */
  async extend(slots: SlotCache, first: number, suffixes: number[][]): Promise<Float32Array[]> {
    this.checkTokens(suffixes, 'prompt suffix');
    const J = suffixes.length;
    for (const x of suffixes) this.work.prefilledTokens += x.length;
    const S = Math.max(...suffixes.map((s) => s.length));
    const cap = slots.capacity;
    const ctx = this.config.contextLength;
    const ids = new BigInt64Array(J * S);
    const positions = new BigInt64Array(J * S);
    const bias = new Float32Array(J * cap).fill(MASKED);
    const pad = new Float32Array(J * S);
    suffixes.forEach((suffix, j) => {
      const start = slots.lengths[first + j]!;
      if (start + suffix.length > cap) {
        throw new Error(`extend: row ${j} needs ${start + suffix.length} positions, its slot has ${cap}`);
      }
      const p = S - suffix.length;
      bias.fill(0, j * cap, j * cap + start);
      pad.fill(MASKED, j * S, j * S + p);
      for (let t = 0; t < S; t++) {
        ids[j * S + t] = BigInt(t < p ? 0 : suffix[t - p]!);
        positions[j * S + t] = BigInt(Math.min(ctx - 1, start + Math.max(0, t - p)));
      }
    });
    const H = kvHeads(this.config);
    const hs = headSize(this.config);
    let feeds: Record<string, ort.Tensor>;
    let session: ort.InferenceSession;
    if (suffixes.every((_, j) => slots.lengths[first + j] === 0)) {
      // Nothing cached for any row: the plain prefill graph, which does not attend to the empty
      // slot positions (the extend graph would, masked, at a cost that grows with the capacity).
      const causal = new Float32Array(J * S * S);
      suffixes.forEach((suffix, j) => {
        const p = S - suffix.length;
        for (let t = 0; t < S; t++) {
          for (let k = 0; k < S; k++) {
            const visible = k <= t && (k >= p || k === t);
            causal[(j * S + t) * S + k] = visible ? 0 : MASKED;
          }
        }
      });
      const prefill = await this.inference('prefill', (w, dtype) =>
        buildPrefillGraph(this.config, dtype, w).toOnnx(),
      );
      session = prefill.session;
      feeds = {
        ...prefill.feeds,
        ids: new ort.Tensor('int64', ids, [J, S]),
        positions: new ort.Tensor('int64', positions, [J, S]),
        bias: new ort.Tensor('float32', causal, [J, 1, S, S]),
      };
    } else {
      const extend = await this.inference('extend', (w, dtype) =>
        buildExtendGraph(this.config, dtype, w).toOnnx(),
      );
      session = extend.session;
      feeds = {
        ...extend.feeds,
        ids: new ort.Tensor('int64', ids, [J, S]),
        positions: new ort.Tensor('int64', positions, [J, S]),
        bias: new ort.Tensor('float32', bias, [J, 1, 1, cap]),
        pad: new ort.Tensor('float32', pad, [J, 1, 1, S]),
      };
      for (let l = 0; l < this.config.layers; l++) {
        feeds[`past.${l}.k`] = new ort.Tensor('float32', slots.view('k', l, first, J), [J, H, cap, hs]);
        feeds[`past.${l}.v`] = new ort.Tensor('float32', slots.view('v', l, first, J), [J, H, cap, hs]);
      }
    }
    const out = await session.run(feeds);
    for (let l = 0; l < this.config.layers; l++) {
      for (const kind of ['k', 'v'] as const) {
        const src = out[`present.${l}.${kind}`]!.data as Float32Array; // [J, H, S, hs]
        const dst = slots[kind][l]!;
        suffixes.forEach((suffix, j) => {
          const p = S - suffix.length;
          const at = slots.lengths[first + j]!;
          for (let h = 0; h < H; h++) {
            const from = ((j * H + h) * S + p) * hs;
            dst.set(src.subarray(from, from + suffix.length * hs), (((first + j) * H + h) * cap + at) * hs);
          }
        });
      }
    }
    suffixes.forEach((suffix, j) => {
      slots.lengths[first + j]! += suffix.length;
    });
    const V = this.config.vocabSize;
    const logits = out.logits!.data as Float32Array;
    return suffixes.map((_, j) => logits.subarray(j * V, (j + 1) * V));
  }

  /**
   * One decode step of the running batch: token b goes to slot b at the slot's own length and
   * attends to that slot's positions and itself. Appends its keys/values (in place) and returns
   * each row's next logits. `promptTokens` of the tokens are prompt tokens (a prompt's last token,
   * fed by the step instead of a prefill), counted in `work` as prefilled, not decoded.
   */
  async decodeSlots(slots: SlotCache, tokens: number[], promptTokens = 0): Promise<Float32Array[]> {
    const B = slots.rows;
    if (tokens.length !== B) throw new Error(`decode: got ${tokens.length} tokens for ${B} rows`);
    this.checkTokens([tokens], 'decode tokens');
    this.work.decodedTokens += B - promptTokens;
    this.work.prefilledTokens += promptTokens;
    const cap = slots.capacity;
    const bias = new Float32Array(B * cap).fill(MASKED);
    const positions = new BigInt64Array(B);
    for (let b = 0; b < B; b++) {
      const n = slots.lengths[b]!;
      if (n >= cap) throw new Error(`decode: slot ${b} is full (${cap} positions)`);
      bias.fill(0, b * cap, b * cap + n);
      positions[b] = BigInt(n);
    }
    const H = kvHeads(this.config);
    const hs = headSize(this.config);
    const { session, feeds: paramFeeds } = await this.inference('decode', (w, dtype) =>
      buildDecodeGraph(this.config, dtype, w).toOnnx(),
    );
    const feeds: Record<string, ort.Tensor> = {
      ...paramFeeds,
      ids: i64(tokens, [B, 1]),
      positions: new ort.Tensor('int64', positions, [B, 1]),
      bias: new ort.Tensor('float32', bias, [B, 1, 1, cap]),
    };
    for (let l = 0; l < this.config.layers; l++) {
      feeds[`past.${l}.k`] = new ort.Tensor('float32', slots.view('k', l, 0, B), [B, H, cap, hs]);
      feeds[`past.${l}.v`] = new ort.Tensor('float32', slots.view('v', l, 0, B), [B, H, cap, hs]);
    }
    const out = await session.run(feeds);
    for (let l = 0; l < this.config.layers; l++) {
      for (const kind of ['k', 'v'] as const) {
        const src = out[`present.${l}.${kind}`]!.data as Float32Array; // [B, H, 1, hs]
        const dst = slots[kind][l]!;
        // An element loop: B * H runs of headSize floats, too short for subarray + set, which
        // allocate two views per run (3072 a step at 32 rows of the small preset).
        for (let b = 0; b < B; b++) {
          const at = slots.lengths[b]!;
          for (let h = 0; h < H; h++) {
            const from = (b * H + h) * hs;
            const to = ((b * H + h) * cap + at) * hs;
            for (let i = 0; i < hs; i++) dst[to + i] = src[from + i]!;
          }
        }
      }
    }
    for (let b = 0; b < B; b++) slots.lengths[b]!++;
    const V = this.config.vocabSize;
    const logits = out.logits!.data as Float32Array;
    return tokens.map((_, b) => logits.subarray(b * V, (b + 1) * V));
  }

  // --- training ------------------------------------------------------------------------------------

  private ensureMoments(): void {
    if (this.m.size > 0) return;
    for (const s of trainableSpecs(this.config)) {
      this.m.set(s.name, new ort.Tensor('float32', new Float32Array(elementCount(s.shape)), s.shape));
      this.v.set(s.name, new ort.Tensor('float32', new Float32Array(elementCount(s.shape)), s.shape));
    }
  }

  /**
   * Pack rows into the train graph's inputs: ids [batch, seq], and the masked positions' targets
   * (next tokens) and per-token terms [batch, sel] with their flat indices in `select`.
   */
  packBatch(batch: TokenBatch, cfg: LossConfig): Record<string, ort.Tensor> {
    if (batch.length === 0) throw new Error('update: the batch is empty; expected at least one row');
    this.checkTokens(
      batch.map((r) => r.tokens),
      'batch row',
    );
    const needed = tokenInputs(cfg.kind);
    const B = batch.length;
    const seq = Math.max(...batch.map((r) => r.tokens.length)) - 1;
    if (seq < 1) throw new Error('update: every row has a single token; expected at least two per row');
    // The positions the loss reads (mask on the token predicted there), padded to the row with
    // the most; padding picks position 0 of its row with mask 0.
    const picked = batch.map((row) => {
      const at: number[] = [];
      for (let t = 0; t < row.tokens.length - 1; t++) if ((row.mask?.[t + 1] ?? 0) !== 0) at.push(t);
      return at;
    });
    const sel = Math.max(1, ...picked.map((a) => a.length));
    const ids = new BigInt64Array(B * seq);
    const select = new BigInt64Array(B * sel);
    const targets = new BigInt64Array(B * sel);
    const floats: Record<string, Float32Array> = {};
    for (const n of needed) floats[n] = new Float32Array(B * sel);
    batch.forEach((row, b) => {
      for (const n of needed) {
        const arr = row[n as keyof TokenRow] as number[] | undefined;
        if (!arr) throw new Error(`update: batch row ${b} has no '${n}'; the '${cfg.kind}' loss needs it`);
        if (arr.length !== row.tokens.length) {
          throw new Error(
            `update: batch row ${b}: '${n}' has ${arr.length} entries; expected ${row.tokens.length} (one per token)`,
          );
        }
      }
      for (let t = 0; t < row.tokens.length - 1; t++) ids[b * seq + t] = BigInt(row.tokens[t]!);
      select.fill(BigInt(b * seq), b * sel, (b + 1) * sel);
      picked[b]!.forEach((t, j) => {
        const i = b * sel + j;
        select[i] = BigInt(b * seq + t);
        targets[i] = BigInt(row.tokens[t + 1]!);
        for (const n of needed) floats[n]![i] = (row[n as keyof TokenRow] as number[])[t + 1]!;
      });
    });
    const feeds: Record<string, ort.Tensor> = {
      ids: new ort.Tensor('int64', ids, [B, seq]),
      select: new ort.Tensor('int64', select, [B, sel]),
      targets: new ort.Tensor('int64', targets, [B, sel]),
    };
    const prefixes = batch.map((r) => r.prefix);
    this.checkPrefixes(
      batch.map((r) => r.tokens),
      prefixes,
      'batch row',
      batch.map((r) => r.mask),
    );
    Object.assign(feeds, prefixFeeds(prefixes));
    for (const n of needed) feeds[n] = new ort.Tensor('float32', floats[n]!, [B, sel]);
    return feeds;
  }

  /** One optimizer step on a batch: forward, loss, backward, clip, AdamW, in one session.run. */
  async update(batch: TokenBatch, cfg: LossConfig): Promise<UpdateMetrics> {
    if (this.frozen) {
      throw new Error(`update: ${this.label} is frozen; train a trainable adapter instead`);
    }
    const feeds = this.packBatch(batch, cfg);
    this.ensureMoments();
    const { learningRate, ...baked } = cfg;
    const prefixed = feeds.prefixIds !== undefined;
    const trainSession = (dtype: PolicyDtype) => {
      const precision = dtype === 'float32' ? undefined : dtype;
      return this.session(
        `train${precision ?? ''}${prefixed ? '-prefixed' : ''}${this.loraKey}:${JSON.stringify(baked)}`,
        () => buildTrainGraph(this.config, cfg, 'float32', precision, prefixed).toOnnx(),
      );
    };
    let s: ort.InferenceSession;
    const dtype = this.computeDtype;
    try {
      s = await trainSession(dtype);
    } catch (e) {
      if (dtype === 'float32') throw e;
      warnDtypeFallback(dtype, this.pool.device ?? this.device, e);
      this.computeDtype = 'float32';
      s = await trainSession('float32');
    }
    const scaled = this.computeDtype === 'float16';
    if (scaled) feeds.lossScale = new ort.Tensor('float32', Float32Array.of(this.lossScale), []);
    for (const [k, t] of this.params) feeds[k] = t;
    for (const [k, t] of this.m) feeds[`m.${k}`] = t;
    for (const [k, t] of this.v) feeds[`v.${k}`] = t;
    feeds.lr = new ort.Tensor('float32', Float32Array.of(learningRate), []);
    feeds.step = new ort.Tensor('float32', Float32Array.of(this.step), []);
    const out = await s.run(feeds);
    for (const k of this.m.keys()) {
      this.params.set(k, out[`new.${k}`] as ort.Tensor);
      this.m.set(k, out[`new.m.${k}`] as ort.Tensor);
      this.v.set(k, out[`new.v.${k}`] as ort.Tensor);
    }
    this.step = (out['new.step']!.data as Float32Array)[0]!;
    this.version++;
    this.prefixCache?.clear();
    const metrics = {} as UpdateMetrics;
    for (const name of METRICS) metrics[name] = (out[name]!.data as Float32Array)[0]!;
    metrics.skipped = Boolean((out.skipped!.data as Uint8Array)[0]);
    if (scaled) {
      this.goodSteps = metrics.skipped ? 0 : this.goodSteps + 1;
      if (metrics.skipped) this.lossScale = Math.max(1, this.lossScale / 2);
      else if (this.goodSteps >= LOSS_SCALE_GROWTH) {
        this.lossScale *= 2;
        this.goodSteps = 0;
      }
    }
    metrics.tokens = (feeds.mask!.data as Float32Array).reduce((a, b) => a + b, 0);
    return metrics;
  }

  /** Release the sessions, unless they belong to a shared pool (its owner releases them). */
  async dispose(): Promise<void> {
    if (this.ownsPool) await this.pool.dispose();
  }
}
