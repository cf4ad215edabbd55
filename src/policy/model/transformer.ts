/**
 * The transformer of config.ts, written once against the graph builder. Every graph (train step,
 * scoring, prefill, one-token decode, the exported inference model) calls `transformer` with the
 * same parameters; they differ only in where positions, the attention bias and past keys/values
 * come from.
 */
import {
  add,
  cast,
  concat,
  type Dim,
  type Graph,
  gather,
  gelu,
  isHalf,
  layerNorm,
  matmul,
  mul,
  reshape,
  rmsNorm,
  sigmoid,
  slice,
  softmax,
  sub,
  type Tensor,
  transpose,
  transposeLast,
  unsqueeze,
} from '../graph/index.ts';
import { headSize, kvHeads, type LoraTarget, type ModelConfig, mlpWidth, normEps } from './config.ts';
import { loraName } from './params.ts';

/** Parameter tensors of one graph by name (graph inputs, or constants when weights are baked in). */
export type ParamTensors = Map<string, Tensor>;

/** Keys and values of one layer: [batch, kvHeads, keys, headSize]. */
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
  /** Apply the LoRA adapters' dropout (the train graph only). */
  train?: boolean;
  /**
   * int64 [batch, k]: flat indices (row x seq + position) of the positions whose logits are
   * wanted; the final norm and the head then run on those k positions of each row only, and
   * `logits` is [batch, k, vocab]. The train step needs logits only where the loss mask is on (a
   * tenth of a windowed household row), and the [rows, seq, vocab] log-softmax, entropy and their
   * gradients were a fifth of its time.
   */
  select?: Tensor;
  /**
   * Keys/values per layer of each row's shared prefix, [batch, kvHeads, prefixLen, headSize],
   * put in front of the row's own (see `prefixInputs` in graphs.ts); `bias` then covers
   * [batch, 1, seq, prefixLen + seq]. Unlike `past` this path is differentiable: the gradients of
   * every row that extends a prefix flow back into the prefix's computation.
   */
  prefix?: LayerCache[];
}

export interface TransformerOutputs {
  /** float [batch, seq, vocab] ([batch, k, vocab] with `select`). */
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

/**
 * f on x in float32, the result back in x's dtype. Half-precision graphs run norms and softmaxes
 * this way: a norm's mean of squares overflows float16 (max 65504) once activations pass ~256, and
 * bfloat16's 8-bit mantissa loses the small differences a softmax over thousands of keys (or a
 * vocabulary) sums; the MASKED bias is also -inf in float16, which turns a fully masked row into NaN.
 * Norm gains and biases stay float32 parameters for the same reason (see `isNormParam`).
 */
function inFloat32(x: Tensor, f: (x32: Tensor) => Tensor): Tensor {
  return isHalf(x.dtype) ? cast(f(cast(x, 'float32')), x.dtype) : f(x);
}

/** The dtype attention scores and biases are in: float32 in a half-precision graph (`inFloat32`). */
function scoreDtype(compute: Tensor['dtype']): Tensor['dtype'] {
  return isHalf(compute) ? 'float32' : compute;
}

/** The config's norm over the last axis: LayerNorm (gain, bias) or RMSNorm (gain). */
export function norm(c: ModelConfig, params: ParamTensors, prefix: string, x: Tensor): Tensor {
  const gain = p(params, `${prefix}.gain`);
  return inFloat32(x, (x32) =>
    c.norm === 'rmsnorm'
      ? rmsNorm(x32, gain, normEps(c))
      : layerNorm(x32, gain, p(params, `${prefix}.bias`), normEps(c)),
  );
}

/** softmax(scores + bias) over the keys, in float32 when the scores are half (`inFloat32`). */
function attentionProbs(scores: Tensor, bias: Tensor): Tensor {
  return inFloat32(scores, (s) => softmax(addBias(s, bias), -1));
}

/**
 * RoPE inverse frequencies 1 / theta^(2i / headSize), with Llama 3's scaling when configured:
 * long wavelengths divided by `factor`, short ones kept, the band between interpolated
 * (transformers' `_compute_llama3_parameters`).
 */
export function ropeFrequencies(c: ModelConfig): Float64Array {
  const hs = headSize(c);
  const theta = c.ropeTheta ?? 10000;
  const inv = new Float64Array(hs / 2);
  for (let i = 0; i < hs / 2; i++) inv[i] = 1 / theta ** ((2 * i) / hs);
  const s = c.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalContextLength / s.lowFreqFactor;
  const highWavelen = s.originalContextLength / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowWavelen) inv[i] = f / s.factor;
    else if (wavelen >= highWavelen) {
      const smooth =
        (s.originalContextLength / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
    }
  }
  return inv;
}

/**
 * Rotary position embedding (GPT-NeoX "rotate half" form) on [batch, heads, seq, headSize]. The
 * cos/sin tables are constants of the graph, looked up by position.
 */
function rope(c: ModelConfig, x: Tensor, positions: Tensor): Tensor {
  const g = x.graph;
  const half = headSize(c) / 2;
  const inv = ropeFrequencies(c);
  const cos = new Float32Array(c.contextLength * half);
  const sin = new Float32Array(c.contextLength * half);
  for (let pos = 0; pos < c.contextLength; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * inv[i]!;
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

/** [batch, seq, heads * headSize] -> [batch, heads, seq, headSize]. */
function splitHeads(c: ModelConfig, x: Tensor, heads: number): Tensor {
  const [b, t] = x.shape;
  return transpose(reshape(x, [b!, t!, heads, headSize(c)]), [0, 2, 1, 3]);
}

/**
 * Grouped-query attention without repeating keys and values: q [b, heads, t, hs] is viewed as
 * [b, kvHeads, group, t, hs] and k, v, the biases get a size-1 group axis, so MatMul's batch
 * broadcasting pairs each query head with its key/value head (no copy of the cache per group).
 */
function grouped(q: Tensor, kvHeads: number): Tensor {
  const [b, h, t, hs] = q.shape;
  return reshape(q, [b!, kvHeads, (h as number) / kvHeads, t!, hs!]);
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
  const hs = headSize(c);
  const kvh = kvHeads(c);
  const qWidth = c.heads * hs;
  const kvWidth = kvh * hs;
  let qkv = matmul(x, p(params, `layers.${l}.qkv`)); // [b, t, (heads + 2 kvHeads) * hs]
  if (c.qkvBias) qkv = add(qkv, p(params, `layers.${l}.qkvBias`));
  const lora = (target: LoraTarget, input: Tensor, y: Tensor) =>
    withLora(c, params, l, target, input, y, inputs);
  let q = splitHeads(c, lora('q_proj', x, slice(qkv, -1, 0, qWidth)), c.heads);
  let k = splitHeads(c, lora('k_proj', x, slice(qkv, -1, qWidth, qWidth + kvWidth)), kvh);
  const v = splitHeads(c, lora('v_proj', x, slice(qkv, -1, qWidth + kvWidth)), kvh);
  if (c.qkNorm) {
    q = inFloat32(q, (x) => rmsNorm(x, p(params, `layers.${l}.qNorm.gain`), normEps(c)));
    k = inFloat32(k, (x) => rmsNorm(x, p(params, `layers.${l}.kNorm.gain`), normEps(c)));
  }
  // Scale q before the product: fewer multiplies than scaling the [.., seq, keys] scores (RoPE is
  // linear, so scaling before it is the same).
  q = mul(q, 1 / Math.sqrt(hs));
  if (c.positions === 'rope') {
    q = rope(c, q, inputs.positions);
    k = rope(c, k, inputs.positions);
  }
  const past = inputs.past?.[l];
  // The row's own keys come out as its cache; a shared prefix's keys only join the attention.
  const shared = inputs.prefix?.[l];
  const keys = shared ? concat([shared.k, k], -2) : k;
  const values = shared ? concat([shared.v, v], -2) : v;
  let heads: Tensor; // [b, heads, t, hs]
  if (kvh === c.heads) {
    heads = past
      ? inputs.selfBias
        ? attendWithPast(q, k, v, past, inputs.bias, inputs.selfBias)
        : attendWithCache(q, k, v, past, inputs.bias)
      : matmul(attentionProbs(matmul(q, transposeLast(keys)), inputs.bias), values);
  } else {
    const q5 = grouped(q, kvh);
    const g5 = (t: Tensor) => unsqueeze(t, 2); // [b, kvHeads, 1, ..]
    const bias5 = unsqueeze(inputs.bias, 1); // [b|1, 1, 1, t|1, keys]
    const out5 = past
      ? inputs.selfBias
        ? attendWithPast(
            q5,
            g5(k),
            g5(v),
            { k: g5(past.k), v: g5(past.v) },
            bias5,
            unsqueeze(inputs.selfBias, 1),
          )
        : attendWithCache(q5, g5(k), g5(v), { k: g5(past.k), v: g5(past.v) }, bias5)
      : matmul(attentionProbs(matmul(q5, transposeLast(g5(keys))), bias5), g5(values));
    heads = reshape(out5, [b!, c.heads, t!, hs]);
  }
  const merged = reshape(transpose(heads, [0, 2, 1, 3]), [b!, t!, qWidth]);
  // With a cache, only this step's keys/values come out: the caller appends them to its buffer.
  return { y: lora('o_proj', merged, matmul(merged, p(params, `layers.${l}.attnOut`))), cache: { k, v } };
}

/**
 * y + (alpha / rank) (x A) B when `target` has a LoRA adapter, else y. In the train graph the
 * adapter's input goes through dropout (a fresh Bernoulli mask per call, scaled by 1 / (1 - p)).
 */
function withLora(
  c: ModelConfig,
  params: ParamTensors,
  l: number,
  target: LoraTarget,
  x: Tensor,
  y: Tensor,
  inputs: TransformerInputs,
): Tensor {
  const lora = c.lora;
  if (!lora?.targets.includes(target)) return y;
  let input = x;
  if (inputs.train && lora.dropout > 0) {
    const g = x.graph;
    // The draw and the compare in float32 in a half graph: ONNX Runtime's CUDA provider has no
    // bfloat16 kernel for RandomUniformLike or Less (its operator table).
    const ud = isHalf(x.dtype) ? 'float32' : x.dtype;
    const u = g.emit(
      'RandomUniformLike',
      [x],
      { dtype: ud === 'float32' ? 1 : 11 },
      { dtype: ud, shape: x.shape },
    );
    const keep = g.emit('Less', [g.scalar(lora.dropout, ud), u], {}, { dtype: 'bool', shape: x.shape });
    const mask = cast(keep, x.dtype);
    input = mul(x, mul(mask, 1 / (1 - lora.dropout)));
  }
  const delta = matmul(
    matmul(input, p(params, loraName(l, target, 'A'))),
    p(params, loraName(l, target, 'B')),
  );
  return add(y, mul(delta, lora.alpha / lora.rank));
}

/**
 * What the two cache-reading attentions emit with: nodes of shape [...lead, last] (inference only,
 * no gradient, so emitted directly), the scores' dtype (float32 in a half graph, `inFloat32`) and
 * the casts into and out of it.
 */
function cacheNodes(q: Tensor, lead: Dim[]) {
  const sd = scoreDtype(q.dtype);
  const node = (
    op: string,
    inputs: Tensor[],
    last: Dim,
    attrs: Record<string, number | number[]> = {},
    dtype = q.dtype,
  ) => q.graph.emit(op, inputs, attrs, { dtype, shape: [...lead, last] });
  return { sd, node, toScore: (x: Tensor) => cast(x, sd), toCompute: (x: Tensor) => cast(x, q.dtype) };
}

/**
 * One new token (t = 1) attending to `keys` cached positions and to itself, without joining the
 * cache and the new key into one tensor: the cache is read in place by two MatMuls and only the
 * [.., keys + 1] score row is concatenated. So a decode step never copies the cache, and the
 * caller keeps it in a preallocated host buffer (slots the bias masks may hold anything).
 * Inference only (never differentiated), so the nodes are emitted with their shapes directly.
 * Works on [b, heads, t, hs] and on grouped-query [b, kvHeads, group, t, hs] queries (k, v and
 * the cache then carry a size-1 group axis that MatMul broadcasts).
 */
function attendWithCache(q: Tensor, k: Tensor, v: Tensor, past: LayerCache, bias: Tensor): Tensor {
  const g = q.graph;
  const lead = q.shape.slice(0, -1) as Dim[]; // [b, heads, t] or [b, kvHeads, group, t]
  const hs = q.shape[q.rank - 1]!;
  const keys = past.k.shape[past.k.rank - 2]!;
  const { sd, node, toScore, toCompute } = cacheNodes(q, lead);
  const i64 = (x: number) => g.constant([x], 'int64');
  const lastAxis = (x: Tensor, start: number, end: number, size: Dim) =>
    node('Slice', [x, i64(start), i64(end), i64(-1)], size, {}, x.dtype);

  const kT = g.emit(
    'Transpose',
    [past.k],
    { perm: swapLastTwo(past.k.rank) },
    { dtype: q.dtype, shape: [...past.k.shape.slice(0, -2), hs, keys] },
  );
  // Scores, bias and softmax in float32 in a half-precision graph (`inFloat32`).
  const pastScores = node('Add', [toScore(node('MatMul', [q, kT], keys)), bias], keys, {}, sd);
  const selfScore = toScore(node('ReduceSum', [node('Mul', [q, k], hs), i64(-1)], 1)); // [.., 1, 1]
  const scores = node('Concat', [pastScores, selfScore], `${keys}+1`, { axis: -1 }, sd);
  const probs = node('Softmax', [scores], `${keys}+1`, { axis: -1 }, sd);
  const fromPast = node('MatMul', [toCompute(lastAxis(probs, 0, -1, keys)), past.v], hs);
  const fromSelf = node('Mul', [toCompute(lastAxis(probs, -1, 2 ** 62, 1)), v], hs);
  return node('Add', [fromPast, fromSelf], hs);
}

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [rank - 1, rank - 2];
  return perm;
}

/**
 * Several new tokens (t >= 1) attending to `keys` cached positions and, causally, to each other:
 * the prefill of a prompt's suffix whose prefix is already cached. As in `attendWithCache`, the
 * cache is read in place (two score MatMuls, one concatenated score row per query, two value
 * MatMuls), so the caller's buffer is never copied. Inference only; grouped queries as there.
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
  const lead = q.shape.slice(0, -1) as Dim[];
  const hs = q.shape[q.rank - 1]!;
  const t = q.shape[q.rank - 2]!;
  const keys = past.k.shape[past.k.rank - 2]!;
  const { sd, node, toScore, toCompute } = cacheNodes(q, lead);
  const keysT = (x: Tensor, n: Dim) =>
    g.emit(
      'Transpose',
      [x],
      { perm: swapLastTwo(x.rank) },
      { dtype: q.dtype, shape: [...x.shape.slice(0, -2), hs, n] },
    );
  const lastAx = g.constant([-1], 'int64');
  // Scores, biases and softmax in float32 in a half-precision graph (`inFloat32`).
  const pastScores = node(
    'Add',
    [toScore(node('MatMul', [q, keysT(past.k, keys)], keys)), bias],
    keys,
    {},
    sd,
  );
  const selfScores = node('Add', [toScore(node('MatMul', [q, keysT(k, t)], t)), selfBias], t, {}, sd);
  const probs = node(
    'Softmax',
    [node('Concat', [pastScores, selfScores], `${keys}+${t}`, { axis: -1 }, sd)],
    `${keys}+${t}`,
    { axis: -1 },
    sd,
  );
  const toPast = toCompute(
    node('Slice', [probs, g.constant([0], 'int64'), g.dim(keys), lastAx], keys, {}, sd),
  );
  const toSelf = toCompute(
    node('Slice', [probs, g.dim(keys), g.constant([2 ** 62], 'int64'), lastAx], t, {}, sd),
  );
  return node('Add', [node('MatMul', [toPast, past.v], hs), node('MatMul', [toSelf, v], hs)], hs);
}

/** scores + bias (the bias is data: it takes no gradient). */
function addBias(scores: Tensor, bias: Tensor): Tensor {
  return add(scores, bias);
}

/** GELU MLP, or SwiGLU with gate and up fused in one matrix (gate columns first). */
function mlp(c: ModelConfig, params: ParamTensors, l: number, x: Tensor, inputs: TransformerInputs): Tensor {
  const hIn = matmul(x, p(params, `layers.${l}.mlpIn`));
  const lora = (target: LoraTarget, input: Tensor, y: Tensor) =>
    withLora(c, params, l, target, input, y, inputs);
  let h: Tensor;
  if (c.activation === 'swiglu') {
    const ff = mlpWidth(c);
    const gate = lora('gate_proj', x, slice(hIn, -1, 0, ff));
    h = mul(mul(gate, sigmoid(gate)), lora('up_proj', x, slice(hIn, -1, ff)));
  } else h = gelu(hIn);
  return lora('down_proj', h, matmul(h, p(params, `layers.${l}.mlpOut`)));
}

/** The whole model: token ids -> logits, plus each layer's keys/values for a KV cache. */
export function transformer(
  c: ModelConfig,
  params: ParamTensors,
  inputs: TransformerInputs,
): TransformerOutputs {
  if (inputs.past && inputs.prefix)
    throw new Error('transformer: past keys/values (inference) and a shared prefix (training) do not mix');
  const embedding = p(params, 'tokenEmbedding');
  let x = gather(embedding, inputs.ids); // [b, t, width]
  if (c.positions === 'learned') x = add(x, gather(p(params, 'positionEmbedding'), inputs.positions));
  const presents: LayerCache[] = [];
  for (let l = 0; l < c.layers; l++) {
    const a = attention(c, params, l, norm(c, params, `layers.${l}.attnNorm`, x), inputs);
    presents.push(a.cache);
    x = add(x, a.y);
    x = add(x, mlp(c, params, l, norm(c, params, `layers.${l}.mlpNorm`, x), inputs));
  }
  // A tied head is the embedding: logits = x @ embedding^T; an untied one is stored the same way.
  const head = c.untiedHead ? p(params, 'head') : embedding;
  if (inputs.select) x = gather(reshape(x, [-1, c.width]), inputs.select);
  // The head's product in the compute dtype, its logits out in float32: log-softmax, sampling and
  // the runtime read them in float32 (`inFloat32`).
  const logits = matmul(norm(c, params, 'finalNorm', x), transposeLast(head));
  return { logits: isHalf(logits.dtype) ? cast(logits, 'float32') : logits, presents };
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
