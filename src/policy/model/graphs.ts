/**
 * The graphs the runtime runs, all from the one `transformer`:
 *
 *   score    ids, targets [batch, seq] -> per-token log-probs (and entropies) of the targets
 *   prefill  left-padded prompts -> last-position logits + keys/values of every layer
 *   decode   one token per row + past keys/values -> logits + keys/values grown by one
 *   extend   several tokens per row + past keys/values (a cached prefix) -> last logits + their keys/values
 *   train    score's forward + the loss + grad + clip + AdamW, with a non-finite guard (train.ts)
 *
 * Parameters are graph inputs named as in paramSpecs, so one session serves every update; the
 * runtime keeps them as ORT tensors between calls. The inference graphs can instead bake the
 * current weights in (`weights`), which ONNX Runtime then pre-packs: faster per call, rebuilt
 * after each update.
 *
 * `dtype` is the compute precision. 'float16' and 'bfloat16' (a `policy.dtype` run) keep every
 * float input and output in float32 (parameters fed as inputs, biases, past and present
 * keys/values, logits) and cast at the edges, so the runtime's buffers and sampling do not change
 * with the precision. Baked weights are stored in the half
 * type (half the memory on the device); norm gains and biases stay float32 (see `inFloat32` in
 * transformer.ts).
 */
import {
  add,
  cast,
  concat,
  type Dim,
  equal,
  exp,
  Graph,
  gatherElements,
  isHalf,
  less,
  logSoftmax,
  matmul,
  mul,
  neg,
  reduceSum,
  reshape,
  slice,
  squeeze,
  type Tensor,
  unsqueeze,
  where,
} from '../graph/index.ts';
import { headSize, kvHeads, type ModelConfig } from './config.ts';
import { isNormParam, type Params, paramSpecs } from './params.ts';
import {
  arangePositions,
  causalBias,
  type LayerCache,
  MASKED,
  type ParamTensors,
  type TransformerInputs,
  transformer,
} from './transformer.ts';

/** Compute precision of a graph (float64: gradient checks; the half types: see the top). */
export type FloatType = 'float32' | 'float64' | 'float16' | 'bfloat16';

/** The dtype of a graph's float inputs and outputs: float32 when it computes in a half type. */
export function ioDtype(dtype: FloatType): 'float32' | 'float64' {
  return isHalf(dtype) ? 'float32' : (dtype as 'float32' | 'float64');
}

/** The dtype a parameter is computed with: norm parameters stay float32 in a half graph. */
function paramDtype(name: string, dtype: FloatType): FloatType {
  return isHalf(dtype) && isNormParam(name) ? 'float32' : dtype;
}

/** A float input of the graph's I/O dtype, cast to `dtype` for the computation. */
function floatInput(g: Graph, name: string, dtype: FloatType, shape: Parameters<Graph['input']>[2]): Tensor {
  return cast(g.input(name, ioDtype(dtype), shape), dtype);
}

/** Declare every parameter as a graph input (name = parameter name). */
export function paramInputs(g: Graph, c: ModelConfig, dtype: FloatType = 'float32'): ParamTensors {
  const params: ParamTensors = new Map();
  for (const spec of paramSpecs(c))
    params.set(spec.name, floatInput(g, spec.name, paramDtype(spec.name, dtype), spec.shape));
  return params;
}

/**
 * Bake parameter values into the graph as initializers (a standalone model needs no weight
 * inputs). Parameters missing from `weights` stay inputs: a LoRA runner bakes the frozen base and
 * feeds the adapters.
 */
export function paramConstants(
  g: Graph,
  c: ModelConfig,
  weights: Params,
  dtype: FloatType = 'float32',
): ParamTensors {
  const params: ParamTensors = new Map();
  for (const spec of paramSpecs(c)) {
    const w = weights.get(spec.name);
    const type = paramDtype(spec.name, dtype);
    params.set(
      spec.name,
      w
        ? g.constant(w, isHalf(type) ? type : 'float32', spec.shape)
        : floatInput(g, spec.name, type, spec.shape),
    );
  }
  return params;
}

export interface TokenScores {
  /** [batch, seq] log p(targets[b, t] | ids[b, 0..t]). */
  logprobs: Tensor;
  /** [batch, seq] entropy of the next-token distribution at each position. */
  entropy: Tensor;
}

/**
 * Shared prompt prefixes of a train or score graph (issue 13): rows that begin with the same
 * tokens (the G rollouts of a task at one step) carry only their suffix in `ids`, and the prefix
 * runs once per batch instead of once per row.
 */
export interface PrefixInputs {
  /** int64 [prefixes, prefixLen]: the prefixes' tokens, right-padded. */
  ids: Tensor;
  /** int64 [batch]: the prefix each row extends (any index when its `length` is 0). */
  of: Tensor;
  /** int64 [batch]: the length of that prefix; 0 for a row without one. */
  length: Tensor;
}

/** The graph inputs prefixIds, prefixOf and prefixLength (see `PrefixInputs`). */
export function prefixInputs(g: Graph): PrefixInputs {
  return {
    ids: g.input('prefixIds', 'int64', ['prefixes', 'prefixLen']),
    of: g.input('prefixOf', 'int64', ['batch']),
    length: g.input('prefixLength', 'int64', ['batch']),
  };
}

/** int64 [n] holding 0..n-1. */
function arange(g: Graph, n: Dim): Tensor {
  const end = g.emit('Squeeze', [g.dim(n)], {}, { dtype: 'int64', shape: [] });
  return g.emit(
    'Range',
    [g.scalar(0, 'int64'), end, g.scalar(1, 'int64')],
    {},
    { dtype: 'int64', shape: [n] },
  );
}

/**
 * Positions, attention bias and per-row prefix keys/values for rows that extend shared prefixes.
 * The prefixes go through the transformer once (causal, positions from 0; their head is never
 * computed: nothing reads it). Each layer's prefix keys/values are picked per row with a one-hot
 * MatMul, whose gradient sums the rows' gradients into their prefix. A row's positions continue
 * after its prefix, and its token at position p sees the prefix keys below the prefix's length
 * (padding beyond it is masked) and its own keys up to p: exactly the keys the token sees when the
 * whole row goes through alone, so log-probs, loss and gradients are the whole rows'.
 */
function prefixedLayout(
  c: ModelConfig,
  params: ParamTensors,
  ids: Tensor,
  prefix: PrefixInputs,
  train: boolean,
): { positions: Tensor; bias: Tensor; perRow: LayerCache[] } {
  const g = ids.graph;
  const dtype = params.get('tokenEmbedding')!.dtype as FloatType;
  const [batch, seq] = ids.shape as [Dim, Dim];
  const [count, prefixLen] = prefix.ids.shape as [Dim, Dim];
  const prefixPositions = arangePositions(g, prefix.ids);
  const { presents } = g.scope('prefix', () =>
    transformer(c, params, {
      ids: prefix.ids,
      positions: prefixPositions,
      bias: causalBias(g, prefixPositions, ioDtype(dtype)),
      train,
    }),
  );
  const oneHot = cast(equal(unsqueeze(prefix.of, 1), unsqueeze(arange(g, count), 0)), dtype); // [batch, prefixes]
  const pick = (t: Tensor) => {
    const [, heads, , hs] = t.shape as Dim[];
    return reshape(matmul(oneHot, reshape(t, [count, -1])), [batch, heads!, prefixLen, hs!]);
  };
  const perRow = presents.map((kv) => ({ k: pick(kv.k), v: pick(kv.v) }));

  // Positions decide visibility: a key is visible where its position is at most the query's.
  const length = unsqueeze(prefix.length, 1); // [batch, 1]
  const positions = add(length, unsqueeze(arange(g, seq), 0)); // [batch, seq]
  const prefixKeys = unsqueeze(arange(g, prefixLen), 0); // [1, prefixLen]
  // A prefix's padding gets a position no query reaches.
  const unseen = g.scalar(2 ** 40, 'int64');
  const keyPositions = concat([where(less(prefixKeys, length), prefixKeys, unseen), positions], 1);
  const hidden = less(unsqueeze(positions, 2), unsqueeze(keyPositions, 1)); // [batch, seq, keys]
  // Data, not a function of the parameters: emitted without a gradient, as `causalBias`.
  const biasDtype = ioDtype(dtype);
  const bias = g.emit(
    'Where',
    [hidden, g.scalar(MASKED, biasDtype), g.scalar(0, biasDtype)],
    {},
    { dtype: biasDtype, shape: hidden.shape },
  );
  // A short row behind a long prefix is padded to the batch's longest row, so its padding can sit
  // past the context; those positions are masked above, but the position table (learned
  // positions) still looks them up: clamp them into it. Real tokens are within the context (the
  // runner checks), so they keep their positions.
  const lastPosition = g.scalar(c.contextLength - 1, 'int64');
  const inTable = g.emit('Min', [positions, lastPosition], {}, { dtype: 'int64', shape: positions.shape });
  return { positions: inTable, bias: unsqueeze(bias, 1), perRow };
}

/**
 * Teacher-forced log-probs of `targets` for right-padded rows (positions 0..seq-1, causal mask
 * built in the graph). Shared by the score graph and the train step. With `select` (int64
 * [batch, k], flat indices row x seq + position, see `TransformerInputs.select`) only those
 * positions are scored: `targets` and the outputs are then [batch, k]. With `prefix`, each row
 * of `ids` continues its shared prefix (`prefixedLayout`). With `temperature` (default 1) the
 * log-probs and entropy are those of softmax(logits / temperature).
 */
export function scoreTokens(
  c: ModelConfig,
  params: ParamTensors,
  ids: Tensor,
  targets: Tensor,
  train = false,
  select?: Tensor,
  prefix?: PrefixInputs,
  temperature = 1,
): TokenScores {
  const g = ids.graph;
  const dtype = params.get('tokenEmbedding')!.dtype as FloatType;
  let layout: TransformerInputs;
  if (prefix) {
    const { positions, bias, perRow } = prefixedLayout(c, params, ids, prefix, train);
    layout = { ids, positions, bias, train, select, prefix: perRow };
  } else {
    const positions = arangePositions(g, ids);
    layout = { ids, positions, bias: causalBias(g, positions, ioDtype(dtype)), train, select };
  }
  const { logits } = transformer(c, params, layout);
  const logp = logSoftmax(temperature === 1 ? logits : mul(logits, 1 / temperature), -1);
  const logprobs = squeeze(gatherElements(logp, unsqueeze(targets, -1), -1), -1);
  const entropy = neg(reduceSum(mul(exp(logp), logp), -1));
  return { logprobs, entropy };
}

/**
 * The score graph: inputs ids, targets (int64 [batch, seq]) + parameters; outputs logprobs,
 * entropy. With `select`, an int64 [batch, sel] input of flat positions (see `scoreTokens`) and
 * targets and outputs [batch, sel].
 */
export function buildScoreGraph(
  c: ModelConfig,
  dtype: FloatType = 'float32',
  weights?: Params,
  select = false,
  prefixed = false,
  temperature = 1,
): Graph {
  const g = new Graph(`score${select ? '-select' : ''}${prefixed ? '-prefixed' : ''}`);
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  const picked = select ? g.input('select', 'int64', ['batch', 'sel']) : undefined;
  const targets = g.input('targets', 'int64', ['batch', select ? 'sel' : 'seq']);
  const prefix = prefixed ? prefixInputs(g) : undefined;
  const params = weights ? paramConstants(g, c, weights, dtype) : paramInputs(g, c, dtype);
  const { logprobs, entropy } = scoreTokens(c, params, ids, targets, false, picked, prefix, temperature);
  g.output('logprobs', logprobs);
  g.output('entropy', entropy);
  return g;
}

/** past.{l}.k / past.{l}.v [batch, kvHeads, keys, headSize] per layer. */
function pastInputs(g: Graph, c: ModelConfig, dtype: FloatType): LayerCache[] {
  const shape = ['batch', kvHeads(c), 'keys', headSize(c)];
  const past: LayerCache[] = [];
  for (let l = 0; l < c.layers; l++) {
    past.push({
      k: floatInput(g, `past.${l}.k`, dtype, shape),
      v: floatInput(g, `past.${l}.v`, dtype, shape),
    });
  }
  return past;
}

/** present.{l}.k / .v outputs, in float32 from a half graph (the runtime's cache is float32). */
function cacheOutputs(g: Graph, presents: LayerCache[]): void {
  presents.forEach((kv, l) => {
    const out = (t: Tensor) => (isHalf(t.dtype) ? cast(t, 'float32') : t);
    g.output(`present.${l}.k`, out(kv.k));
    g.output(`present.${l}.v`, out(kv.v));
  });
}

/**
 * The prefill graph for left-padded prompts. Inputs: ids, positions (int64 [batch, seq]), bias
 * (float [batch, 1, seq, seq], causal + padding) + parameters. Outputs: logits of the last position
 * [batch, vocab] and present.{l}.k / present.{l}.v [batch, heads, seq, headSize].
 */
export function buildPrefillGraph(c: ModelConfig, dtype: FloatType = 'float32', weights?: Params): Graph {
  const g = new Graph('prefill');
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  const positions = g.input('positions', 'int64', ['batch', 'seq']);
  const bias = g.input('bias', ioDtype(dtype), ['batch', 1, 'seq', 'seq']);
  const params = weights ? paramConstants(g, c, weights, dtype) : paramInputs(g, c, dtype);
  const { logits, presents } = transformer(c, params, { ids, positions, bias });
  g.output('logits', squeeze(slice(logits, 1, -1), 1));
  cacheOutputs(g, presents);
  return g;
}

/**
 * The one-token decode graph. Inputs: ids, positions (int64 [batch, 1]), bias (float
 * [batch, 1, 1, keys]: 0 on cached positions the token may see, MASKED on padding and empty
 * slots), past.{l}.k / past.{l}.v [batch, heads, keys, headSize] (a preallocated cache buffer) +
 * parameters. Outputs: logits [batch, vocab] and this token's present.{l}.k / .v
 * [batch, heads, 1, headSize], which the caller writes into its buffer.
 */
export function buildDecodeGraph(c: ModelConfig, dtype: FloatType = 'float32', weights?: Params): Graph {
  const g = new Graph('decode');
  const ids = g.input('ids', 'int64', ['batch', 1]);
  const positions = g.input('positions', 'int64', ['batch', 1]);
  const bias = g.input('bias', ioDtype(dtype), ['batch', 1, 1, 'keys']);
  const past = pastInputs(g, c, dtype);
  const params = weights ? paramConstants(g, c, weights, dtype) : paramInputs(g, c, dtype);
  const { logits, presents } = transformer(c, params, { ids, positions, bias, past });
  g.output('logits', squeeze(logits, 1));
  cacheOutputs(g, presents);
  return g;
}

/**
 * The prefill-with-past graph: a batch of prompt suffixes, left-padded to `seq`, after prefixes
 * whose keys/values are already cached (a prefix cache hit, or the turns before). Inputs: ids,
 * positions (int64 [batch, seq]; position 0 is a row's first cached token), bias (float
 * [batch, 1, 1, keys]: 0 on the row's cached positions, MASKED elsewhere), pad (float
 * [batch, 1, 1, seq]: MASKED on the row's left padding, 0 elsewhere), past.{l}.k / past.{l}.v
 * [batch, heads, keys, headSize] + parameters. Outputs: logits of the last position
 * [batch, vocab] and the suffix's present.{l}.k / .v [batch, heads, seq, headSize].
 */
export function buildExtendGraph(c: ModelConfig, dtype: FloatType = 'float32', weights?: Params): Graph {
  const g = new Graph('extend');
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  const positions = g.input('positions', 'int64', ['batch', 'seq']);
  const bias = g.input('bias', ioDtype(dtype), ['batch', 1, 1, 'keys']);
  const pad = g.input('pad', ioDtype(dtype), ['batch', 1, 1, 'seq']);
  const past = pastInputs(g, c, dtype);
  const params = weights ? paramConstants(g, c, weights, dtype) : paramInputs(g, c, dtype);
  // Causal among the suffix's own tokens, padding keys masked: a padding query sees nothing at all,
  // a finite all-MASKED row (its output is never used).
  const selfBias = add(causalBias(g, arangePositions(g, ids), ioDtype(dtype)), pad);
  const { logits, presents } = transformer(c, params, { ids, positions, bias, past, selfBias });
  g.output('logits', squeeze(slice(logits, 1, -1), 1));
  cacheOutputs(g, presents);
  return g;
}

/**
 * The full-logits graph (right-padded rows, causal): ids [batch, seq] -> logits [batch, seq, vocab].
 * Used by tests as the reference the cached decode must match and, with `weights` baked in as
 * initializers, as the exported standalone ONNX model.
 */
export function buildLogitsGraph(c: ModelConfig, dtype: FloatType = 'float32', weights?: Params): Graph {
  const g = new Graph('logits');
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  const params = weights ? paramConstants(g, c, weights, dtype) : paramInputs(g, c, dtype);
  const positions = arangePositions(g, ids);
  const bias = causalBias(g, positions, ioDtype(dtype));
  const { logits } = transformer(c, params, { ids, positions, bias });
  g.output('logits', logits);
  return g;
}
