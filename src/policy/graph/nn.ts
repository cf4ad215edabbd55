/**
 * Normalization layers and the causal mask. The norms are ops with their own vector-Jacobian rule
 * (the textbook one, a handful of full-size ops) rather than composites: through the primitive rules
 * their backward was about 25 nodes. In float32 LayerNorm's forward is ONNX's fused
 * LayerNormalization node; ONNX Runtime has no float64 kernel for it, so in float64 (gradient checks)
 * the same forward is built from primitives. The backward is one code path for both dtypes, and
 * both forwards are checked: float64 against finite differences, float32 against float64.
 */
import { record } from './autodiff.ts';
import { canonicalDim, type Dim, dimEquals, formatShape } from './dims.ts';
import type { Graph, Tensor } from './graph.ts';
import { float } from './node.ts';
import { add, div, lessOrEqual, mul, sqrt, sub } from './ops/elementwise.ts';
import { reduceMean, unbroadcast } from './ops/reduce.ts';
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

const meanLast = (t: Tensor) => reduceMean(t, -1, { keepdims: true });

/**
 * dL/dx of a normalization y = xhat * gain (+ bias), xhat = (x - mean?) * invStd, given dxhat:
 * invStd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)); RMSNorm has no mean(dxhat) term.
 */
function normInputGrad(dxhat: Tensor, xhat: Tensor, invStd: Tensor, centered: boolean): Tensor {
  let inner = sub(dxhat, mul(xhat, meanLast(mul(dxhat, xhat))));
  if (centered) inner = sub(inner, meanLast(dxhat));
  return mul(inner, invStd);
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gain + bias. */
export function layerNorm(x: Tensor, gain: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  checkLastDim('layerNorm', x, gain, bias);
  const g = x.graph;
  const stats = x.shape.map((d, i) => (i === x.rank - 1 ? 1 : d));
  let y: Tensor;
  let mean: Tensor;
  let invStd: Tensor;
  let xhat: Tensor | undefined;
  if (x.dtype === 'float32') {
    [y, mean, invStd] = g.emitMulti(
      'LayerNormalization',
      [x, gain, bias],
      { axis: -1, epsilon: float(eps) },
      [
        { dtype: x.dtype, shape: x.shape },
        { dtype: x.dtype, shape: stats },
        { dtype: x.dtype, shape: stats },
      ],
    ) as [Tensor, Tensor, Tensor];
  } else {
    mean = meanLast(x);
    const xc = sub(x, mean);
    invStd = div(1, sqrt(add(meanLast(mul(xc, xc)), eps)));
    xhat = mul(xc, invStd);
    y = add(mul(xhat, gain), bias);
  }
  return record(y, 'layerNorm', [x, gain, bias], (dy, needs) => {
    const xh = xhat ?? mul(sub(x, mean), invStd);
    return [
      needs[0] ? normInputGrad(mul(dy, gain), xh, invStd, true) : undefined,
      needs[1] ? unbroadcast(mul(dy, xh), gain.shape) : undefined,
      needs[2] ? unbroadcast(dy, bias.shape) : undefined,
    ];
  });
}

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * gain. */
export function rmsNorm(x: Tensor, gain: Tensor, eps = 1e-6): Tensor {
  checkLastDim('rmsNorm', x, gain);
  const invStd = div(1, sqrt(add(meanLast(mul(x, x)), eps)));
  const xhat = mul(x, invStd);
  const y = mul(xhat, gain);
  return record(y, 'rmsNorm', [x, gain], (dy, needs) => [
    needs[0] ? normInputGrad(mul(dy, gain), xhat, invStd, false) : undefined,
    needs[1] ? unbroadcast(mul(dy, xhat), gain.shape) : undefined,
  ]);
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
