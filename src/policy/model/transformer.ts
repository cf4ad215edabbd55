/**
 * The transformer of config.ts, written once against the graph builder. Every graph (train step,
 * scoring, prefill, one-token decode, the exported inference model) calls `transformer` with the
 * same parameters; they differ only in where positions, the attention bias and past keys/values
 * come from.
 */
import {
  add,
  concat,
  type Dim,
  type Graph,
  gather,
  gelu,
  layerNorm,
  matmul,
  mul,
  reshape,
  rmsNorm,
  slice,
  softmax,
  sub,
  type Tensor,
  transpose,
  transposeLast,
  unsqueeze,
} from '../graph/index.ts';
import type { ModelConfig } from './config.ts';

/** Parameter tensors of one graph by name (graph inputs, or constants when weights are baked in). */
export type ParamTensors = Map<string, Tensor>;

/** Keys and values of one layer: [batch, heads, keys, headSize]. */
export interface LayerCache {
  k: Tensor;
  v: Tensor;
}

export interface TransformerInputs {
  /** int64 [batch, seq] token ids. */
  ids: Tensor;
  /** int64 [batch | 1, seq] position of each token (0 at a row's first real token). */
  positions: Tensor;
  /**
   * float [batch | 1, 1, seq, keys] added to the attention scores: 0 where a query may look at a
   * key, a large negative number where it may not (the future, padding).
   */
  bias: Tensor;
  /** Keys/values of earlier tokens per layer (decode); their keys come before this call's. */
  past?: LayerCache[];
  /**
   * With `past` and more than one new token (prefill-with-past): float [batch | 1, 1, seq, seq]
   * added to the scores of this call's own keys (causal + padding); `bias` then covers the past
   * keys only, [batch, 1, 1 | seq, keys].
   */
  selfBias?: Tensor;
}

export interface TransformerOutputs {
  /** float [batch, seq, vocab]. */
  logits: Tensor;
  /** Keys/values per layer including this call's tokens (past + new): the next step's `past`. */
  presents: LayerCache[];
}

export const NORM_EPS = 1e-5;
/** Added to scores the attention must not see. Finite, so a fully masked row stays NaN-free. */
export const MASKED = -1e9;

function p(params: ParamTensors, name: string): Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`transformer: parameter '${name}' is missing`);
  return t;
}

/** The config's norm over the last axis: LayerNorm (gain, bias) or RMSNorm (gain). */
export function norm(c: ModelConfig, params: ParamTensors, prefix: string, x: Tensor): Tensor {
  const gain = p(params, `${prefix}.gain`);
  if (c.norm === 'rmsnorm') return rmsNorm(x, gain, NORM_EPS);
  return layerNorm(x, gain, p(params, `${prefix}.bias`), NORM_EPS);
}

/**
 * Rotary position embedding (GPT-NeoX "rotate half" form) on [batch, heads, seq, headSize]. The
 * cos/sin tables are constants of the graph, looked up by position.
 */
function rope(c: ModelConfig, x: Tensor, positions: Tensor): Tensor {
  const g = x.graph;
  const hs = c.width / c.heads;
  const half = hs / 2;
  const cos = new Float32Array(c.contextLength * half);
  const sin = new Float32Array(c.contextLength * half);
  for (let pos = 0; pos < c.contextLength; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos / 10000 ** ((2 * i) / hs);
      cos[pos * half + i] = Math.cos(angle);
      sin[pos * half + i] = Math.sin(angle);
    }
  }
  const dtype = x.dtype;
  // [batch|1, seq, half] -> [batch|1, 1, seq, half] to broadcast over heads.
  const at = (table: Float32Array) =>
    unsqueeze(gather(g.constant(table, dtype, [c.contextLength, half]), positions), 1);
  const cosP = at(cos);
  const sinP = at(sin);
  const x1 = slice(x, -1, 0, half);
  const x2 = slice(x, -1, half);
  return concat([sub(mul(x1, cosP), mul(x2, sinP)), add(mul(x1, sinP), mul(x2, cosP))], -1);
}

/** [batch, seq, width] -> [batch, heads, seq, headSize]. */
function splitHeads(c: ModelConfig, x: Tensor): Tensor {
  const [b, t] = x.shape;
  return transpose(reshape(x, [b!, t!, c.heads, c.width / c.heads]), [0, 2, 1, 3]);
}

/**
 * Causal multi-head attention with one fused QKV projection. All heads go through one batched
 * MatMul ([batch, heads, seq, hs] @ [batch, heads, hs, keys]) rather than a loop over heads.
 */
function attention(
  c: ModelConfig,
  params: ParamTensors,
  l: number,
  x: Tensor,
  inputs: TransformerInputs,
): { y: Tensor; cache: LayerCache } {
  const [b, t] = x.shape;
  const hs = c.width / c.heads;
  const qkv = matmul(x, p(params, `layers.${l}.qkv`)); // [b, t, 3 * width]
  // Scale q before the product: fewer multiplies than scaling the [.., seq, keys] scores.
  let q = splitHeads(c, mul(slice(qkv, -1, 0, c.width), 1 / Math.sqrt(hs)));
  let k = splitHeads(c, slice(qkv, -1, c.width, 2 * c.width));
  const v = splitHeads(c, slice(qkv, -1, 2 * c.width));
  if (c.positions === 'rope') {
    q = rope(c, q, inputs.positions);
    k = rope(c, k, inputs.positions);
  }
  const past = inputs.past?.[l];
  const heads = past
    ? inputs.selfBias
      ? attendWithPast(q, k, v, past, inputs.bias, inputs.selfBias)
      : attendWithCache(q, k, v, past, inputs.bias)
    : matmul(softmax(addBias(matmul(q, transposeLast(k)), inputs.bias), -1), v); // [b, heads, t, hs]
  const merged = reshape(transpose(heads, [0, 2, 1, 3]), [b!, t!, c.width]);
  // With a cache, only this step's keys/values come out: the caller appends them to its buffer.
  return { y: matmul(merged, p(params, `layers.${l}.attnOut`)), cache: { k, v } };
}

/**
 * One new token (t = 1) attending to `keys` cached positions and to itself, without joining the
 * cache and the new key into one tensor: the cache is read in place by two MatMuls and only the
 * [.., keys + 1] score row is concatenated. So a decode step never copies the cache, and the
 * caller keeps it in a preallocated host buffer (slots the bias masks may hold anything).
 * Inference only (never differentiated), so the nodes are emitted with their shapes directly.
 */
function attendWithCache(q: Tensor, k: Tensor, v: Tensor, past: LayerCache, bias: Tensor): Tensor {
  const g = q.graph;
  const [b, h, t, hs] = q.shape as Dim[];
  const keys = past.k.shape[2]!;
  const node = (op: string, inputs: Tensor[], last: Dim, attrs: Record<string, number | number[]> = {}) =>
    g.emit(op, inputs, attrs, { dtype: q.dtype, shape: [b!, h!, t!, last] });
  const i64 = (x: number) => g.constant([x], 'int64');
  const lastAxis = (x: Tensor, start: number, end: number, size: Dim) =>
    node('Slice', [x, i64(start), i64(end), i64(3)], size);

  const kT = g.emit(
    'Transpose',
    [past.k],
    { perm: [0, 1, 3, 2] },
    { dtype: q.dtype, shape: [b!, h!, hs!, keys] },
  );
  const pastScores = node('Add', [node('MatMul', [q, kT], keys), bias], keys); // [b, h, 1, keys]
  const selfScore = node('ReduceSum', [node('Mul', [q, k], hs!), i64(-1)], 1); // [b, h, 1, 1]
  const scores = node('Concat', [pastScores, selfScore], `${keys}+1`, { axis: -1 });
  const probs = node('Softmax', [scores], `${keys}+1`, { axis: -1 });
  const fromPast = node('MatMul', [lastAxis(probs, 0, -1, keys), past.v], hs!);
  const fromSelf = node('Mul', [lastAxis(probs, -1, 2 ** 62, 1), v], hs!);
  return node('Add', [fromPast, fromSelf], hs!);
}

/**
 * Several new tokens (t >= 1) attending to `keys` cached positions and, causally, to each other:
 * the prefill of a prompt's suffix whose prefix is already cached. As in `attendWithCache`, the
 * cache is read in place (two score MatMuls, one concatenated score row per query, two value
 * MatMuls), so the caller's buffer is never copied. Inference only.
 */
function attendWithPast(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  past: LayerCache,
  bias: Tensor,
  selfBias: Tensor,
): Tensor {
  const g = q.graph;
  const [b, h, t, hs] = q.shape as Dim[];
  const keys = past.k.shape[2]!;
  const node = (op: string, inputs: Tensor[], last: Dim, attrs: Record<string, number | number[]> = {}) =>
    g.emit(op, inputs, attrs, { dtype: q.dtype, shape: [b!, h!, t!, last] });
  const keysT = (x: Tensor, n: Dim) =>
    g.emit('Transpose', [x], { perm: [0, 1, 3, 2] }, { dtype: q.dtype, shape: [b!, h!, hs!, n] });
  const axis3 = g.constant([3], 'int64');
  const pastScores = node('Add', [node('MatMul', [q, keysT(past.k, keys)], keys), bias], keys);
  const selfScores = node('Add', [node('MatMul', [q, keysT(k, t!)], t!), selfBias], t!);
  const probs = node(
    'Softmax',
    [node('Concat', [pastScores, selfScores], `${keys}+${t}`, { axis: -1 })],
    `${keys}+${t}`,
    { axis: -1 },
  );
  const toPast = node('Slice', [probs, g.constant([0], 'int64'), g.dim(keys), axis3], keys);
  const toSelf = node('Slice', [probs, g.dim(keys), g.constant([2 ** 62], 'int64'), axis3], t!);
  return node('Add', [node('MatMul', [toPast, past.v], hs!), node('MatMul', [toSelf, v], hs!)], hs!);
}

/** scores + bias (the bias is data: it takes no gradient). */
function addBias(scores: Tensor, bias: Tensor): Tensor {
  return add(scores, bias);
}

/** The whole model: token ids -> logits, plus each layer's keys/values for a KV cache. */
export function transformer(
  c: ModelConfig,
  params: ParamTensors,
  inputs: TransformerInputs,
): TransformerOutputs {
  const embedding = p(params, 'tokenEmbedding');
  let x = gather(embedding, inputs.ids); // [b, t, width]
  if (c.positions === 'learned') x = add(x, gather(p(params, 'positionEmbedding'), inputs.positions));
  const presents: LayerCache[] = [];
  for (let l = 0; l < c.layers; l++) {
    const a = attention(c, params, l, norm(c, params, `layers.${l}.attnNorm`, x), inputs);
    presents.push(a.cache);
    x = add(x, a.y);
    const h = gelu(matmul(norm(c, params, `layers.${l}.mlpNorm`, x), p(params, `layers.${l}.mlpIn`)));
    x = add(x, matmul(h, p(params, `layers.${l}.mlpOut`)));
  }
  // The head is tied to the embedding: logits = x @ embedding^T.
  const logits = matmul(norm(c, params, 'finalNorm', x), transposeLast(embedding));
  return { logits, presents };
}

/** int64 [1, seq] holding 0..seq-1: positions of right-padded rows, computed inside the graph. */
export function arangePositions(g: Graph, seqOf: Tensor): Tensor {
  const seq = g.emit('Squeeze', [g.dim(seqOf.shape[1]!)], {}, { dtype: 'int64', shape: [] });
  const range = g.emit(
    'Range',
    [g.scalar(0, 'int64'), seq, g.scalar(1, 'int64')],
    {},
    {
      dtype: 'int64',
      shape: [seqOf.shape[1]!],
    },
  );
  return unsqueeze(range, 0);
}

/**
 * float [1, 1, seq, seq] causal bias (0 on and below the diagonal, MASKED above), computed inside
 * the graph from the positions so a train or score call sends no mask.
 */
export function causalBias(g: Graph, positions: Tensor, dtype: 'float32' | 'float64'): Tensor {
  const t = positions.shape[1]!;
  const rows = g.emit(
    'Unsqueeze',
    [positions, g.constant([2], 'int64')],
    {},
    { dtype: 'int64', shape: [1, t, 1] },
  );
  const cols = g.emit(
    'Unsqueeze',
    [positions, g.constant([1], 'int64')],
    {},
    { dtype: 'int64', shape: [1, 1, t] },
  );
  const future = g.emit('Less', [rows, cols], {}, { dtype: 'bool', shape: [1, t, t] });
  const bias = g.emit(
    'Where',
    [future, g.scalar(MASKED, dtype), g.scalar(0, dtype)],
    {},
    { dtype, shape: [1, t, t] },
  );
  return g.emit('Unsqueeze', [bias, g.constant([1], 'int64')], {}, { dtype, shape: [1, 1, t, t] });
}
