/** Reductions and the softmax family, each with its vector-Jacobian rule. */
import { record } from '../autodiff.ts';
import { type Dim, dimEquals, normAxis, productOf, type Shape, shapeEquals } from '../dims.ts';
import type { Tensor } from '../graph.ts';
import { cast, div, equal, exp, mul, sub } from './elementwise.ts';

function axesOf(op: string, x: Tensor, axes?: number | number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = (typeof axes === 'number' ? [axes] : axes).map((a) => normAxis(op, a, x.rank));
  if (new Set(list).size !== list.length) throw new Error(`${op}: repeated axis in [${axes}]`);
  return list.sort((a, b) => a - b);
}

function reducedShape(x: Tensor, axes: number[], keepdims: boolean): Dim[] {
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

function emitReduce(onnxOp: string, x: Tensor, axes: number[], keepdims: boolean): Tensor {
  const g = x.graph;
  return g.emit(
    onnxOp,
    [x, g.constant(axes, 'int64')],
    { keepdims: keepdims ? 1 : 0 },
    {
      dtype: x.dtype,
      shape: reducedShape(x, axes, keepdims),
    },
  );
}

/** dy of a reduction, reshaped back to rank of x with 1s on the reduced axes. */
function keepDims(dy: Tensor, x: Tensor, axes: number[], keepdims: boolean): Tensor {
  if (keepdims || axes.length === 0) return dy;
  const g = x.graph;
  return g.emit(
    'Unsqueeze',
    [dy, g.constant(axes, 'int64')],
    {},
    {
      dtype: dy.dtype,
      shape: reducedShape(x, axes, true),
    },
  );
}

/** Broadcasts t (whose shape broadcasts to like's) to exactly like's shape. */
export function expandLike(t: Tensor, like: Tensor): Tensor {
  if (shapeEquals(t.shape, like.shape)) return t;
  const g = t.graph;
  return g.emit('Expand', [t, g.shapeOf(like)], {}, { dtype: t.dtype, shape: like.shape });
}

/**
 * Sums a broadcast gradient back to an input's shape: over the leading axes the input lacked and
 * over the axes where the input had size 1. Static: the axes are known when the graph is built.
 */
export function unbroadcast(dx: Tensor, shape: Shape): Tensor {
  if (shapeEquals(dx.shape, shape)) return dx;
  const lead = dx.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dx.rank; i++) {
    if (i < lead || (dimEquals(shape[i - lead]!, 1) && !dimEquals(dx.shape[i]!, 1))) axes.push(i);
  }
  const g = dx.graph;
  let r = axes.length ? emitReduce('ReduceSum', dx, axes, true) : dx;
  if (lead > 0) {
    const leading = Array.from({ length: lead }, (_, i) => i);
    r = g.emit('Squeeze', [r, g.constant(leading, 'int64')], {}, { dtype: r.dtype, shape });
  }
  return r;
}

export interface ReduceOptions {
  keepdims?: boolean;
}

/** Sum over `axes` (all axes when omitted). */
export function reduceSum(
  x: Tensor,
  axes?: number | number[],
  { keepdims = false }: ReduceOptions = {},
): Tensor {
  const ax = axesOf('reduceSum', x, axes);
  const y = emitReduce('ReduceSum', x, ax, keepdims);
  return record(y, 'reduceSum', [x], (dy) => [expandLike(keepDims(dy, x, ax, keepdims), x)]);
}

/** Number of elements reduced over, as a scalar of x's dtype (a constant when static). */
function countOf(x: Tensor, axes: number[]): Tensor {
  const n = productOf(axes.map((a) => x.shape[a]!));
  const g = x.graph;
  if (typeof n === 'number') return g.scalar(n, x.dtype);
  return cast(g.emit('Squeeze', [g.dim(n)], {}, { dtype: 'int64', shape: [] }), x.dtype);
}

/** Mean over `axes` (all axes when omitted). */
export function reduceMean(
  x: Tensor,
  axes?: number | number[],
  { keepdims = false }: ReduceOptions = {},
): Tensor {
  const ax = axesOf('reduceMean', x, axes);
  const y = emitReduce('ReduceMean', x, ax, keepdims);
  return record(y, 'reduceMean', [x], (dy) => [
    expandLike(div(keepDims(dy, x, ax, keepdims), countOf(x, ax)), x),
  ]);
}

/** Max over `axes`; the gradient is shared equally among tied maxima. */
export function reduceMax(
  x: Tensor,
  axes?: number | number[],
  { keepdims = false }: ReduceOptions = {},
): Tensor {
  const ax = axesOf('reduceMax', x, axes);
  const y = emitReduce('ReduceMax', x, ax, keepdims);
  return record(y, 'reduceMax', [x], (dy) => {
    const isMax = cast(equal(x, keepDims(y, x, ax, keepdims)), x.dtype);
    const ties = emitReduce('ReduceSum', isMax, ax, true);
    return [mul(isMax, div(keepDims(dy, x, ax, keepdims), ties))];
  });
}

/** Softmax along one axis. */
export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('softmax', axis, x.rank);
  const y = x.graph.emit('Softmax', [x], { axis: a }, { dtype: x.dtype, shape: x.shape });
  // dx = y * (dy - sum(dy * y))
  return record(y, 'softmax', [x], (dy) => [mul(y, sub(dy, emitReduce('ReduceSum', mul(dy, y), [a], true)))]);
}

/** Log-softmax along one axis. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('logSoftmax', axis, x.rank);
  const y = x.graph.emit('LogSoftmax', [x], { axis: a }, { dtype: x.dtype, shape: x.shape });
  // dx = dy - softmax(x) * sum(dy)
  return record(y, 'logSoftmax', [x], (dy) => [sub(dy, mul(exp(y), emitReduce('ReduceSum', dy, [a], true)))]);
}
