/**
 * Layers built from primitive ops. They are composites on purpose: their gradients come from rules
 * that are each checked against finite differences, so there is nothing new to trust here.
 */
import { canonicalDim, type Dim, dimEquals, formatShape } from './dims.ts';
import type { Graph, Tensor } from './graph.ts';
import { add, div, lessOrEqual, mul, sqrt, sub } from './ops/elementwise.ts';
import { reduceMean } from './ops/reduce.ts';
import { squeeze, unsqueeze } from './ops/shape.ts';

function checkLastDim(op: string, x: Tensor, ...ps: Tensor[]): void {
  const d = x.shape[x.rank - 1]!;
  for (const p of ps) {
    if (p.rank !== 1 || !dimEquals(p.shape[0]!, d) || p.dtype !== x.dtype) {
      throw new Error(
        `${op}: parameters must be ${x.dtype}[${d}] to match the last dim of ${x.name} ${formatShape(x.shape)}, got ${p.dtype}${formatShape(p.shape)}`,
      );
    }
  }
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gain + bias. */
export function layerNorm(x: Tensor, gain: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  checkLastDim('layerNorm', x, gain, bias);
  const centered = sub(x, reduceMean(x, -1, { keepdims: true }));
  const variance = reduceMean(mul(centered, centered), -1, { keepdims: true });
  return add(mul(div(centered, sqrt(add(variance, eps))), gain), bias);
}

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * gain. */
export function rmsNorm(x: Tensor, gain: Tensor, eps = 1e-6): Tensor {
  checkLastDim('rmsNorm', x, gain);
  return mul(div(x, sqrt(add(reduceMean(mul(x, x), -1, { keepdims: true }), eps))), gain);
}

/**
 * bool [queries, keys], true where query i may attend to key j: j <= i + (keys - queries). With
 * queries = keys it is the lower triangle; with a KV cache of `past` keys before `queries` new ones
 * (keys = past + queries) each new token also sees the whole past. Use as
 * `where(mask, scores, -1e9)`. A constant when both sizes are static.
 */
export function causalMask(g: Graph, queries: Dim, keys: Dim = queries): Tensor {
  queries = canonicalDim(queries);
  keys = canonicalDim(keys);
  if (typeof queries === 'number' && typeof keys === 'number') {
    const data: number[] = [];
    for (let i = 0; i < queries; i++)
      for (let j = 0; j < keys; j++) data.push(j <= i + keys - queries ? 1 : 0);
    return g.constant(data, 'bool', [queries, keys]);
  }
  const range = (n: Dim) =>
    g.emit(
      'Range',
      [g.scalar(0, 'int64'), squeeze(g.dim(n), 0), g.scalar(1, 'int64')],
      {},
      {
        dtype: 'int64',
        shape: [n],
      },
    );
  const rows = add(range(queries), sub(g.dim(keys), g.dim(queries)));
  return lessOrEqual(unsqueeze(range(keys), 0), unsqueeze(rows, 1));
}
