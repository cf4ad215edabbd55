/** Matrix product with numpy batch broadcasting. */
import { record } from '../autodiff.ts';
import { broadcastShapes, dimEquals, formatShape } from '../dims.ts';
import type { Tensor } from '../graph.ts';
import { unbroadcast } from './reduce.ts';
import { reshape, transposeLast } from './shape.ts';

/**
 * a [..., m, k] @ b [..., k, n] -> [..., m, n]; the batch dims broadcast. Both inputs need rank >= 2
 * (unsqueeze a vector first).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (
    a.rank < 2 ||
    b.rank < 2 ||
    a.dtype !== b.dtype ||
    !dimEquals(a.shape[a.rank - 1]!, b.shape[b.rank - 2]!)
  ) {
    throw new Error(
      `matmul: expected a [..., m, k] and b [..., k, n] of one dtype, got ${a.dtype}${formatShape(a.shape)} and ${b.dtype}${formatShape(b.shape)}`,
    );
  }
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!];
  const y = a.graph.emit('MatMul', [a, b], {}, { dtype: a.dtype, shape });
  return record(y, 'matmul', [a, b], (dy, needs) => [
    needs[0] ? unbroadcast(matmul(dy, transposeLast(b)), a.shape) : undefined,
    needs[1] ? weightGrad(a, b, dy) : undefined,
  ]);
}

/**
 * dL/db = a^T @ dy. When b is a plain matrix shared by a batch of a (a linear layer on [B, T, D]),
 * fold the batch into the rows first: one [k, B*T] @ [B*T, n] product instead of B of them plus a sum.
 */
function weightGrad(a: Tensor, b: Tensor, dy: Tensor): Tensor {
  if (b.rank === 2 && a.rank > 2) {
    const k = a.shape[a.rank - 1]!;
    const n = dy.shape[dy.rank - 1]!;
    return matmul(transposeLast(reshape(a, [-1, k])), reshape(dy, [-1, n]));
  }
  return unbroadcast(matmul(transposeLast(a), dy), b.shape);
}
