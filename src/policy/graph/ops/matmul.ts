/** Matrix product with numpy batch broadcasting. */
import { record } from '../autodiff.ts';
import { broadcastShapes, type Dim, dimEquals, formatShape, type Shape } from '../dims.ts';
import type { Tensor } from '../graph.ts';
import { unbroadcast } from './reduce.ts';
import { reshape, transposeLast } from './shape.ts';

export interface MatmulOptions {
  /**
   * Multiply by b's transpose over its last two axes (b is [..., n, k]): attention scores q @ k^T,
   * a head tied to an embedding table. The gradients then need no transposes of their own, which
   * ONNX Runtime folds into its GEMM calls.
   */
  transposeB?: boolean;
}

/**
 * a [..., m, k] @ b [..., k, n] -> [..., m, n]; the batch dims broadcast. Both inputs need rank >= 2
 * (unsqueeze a vector first).
 */
export function matmul(a: Tensor, b: Tensor, { transposeB = false }: MatmulOptions = {}): Tensor {
  const g = a.graph;
  // The effective right operand; a plain node without a gradient rule: the rule below is for b.
  const bt = transposeB
    ? g.emit('Transpose', [b], { perm: lastTwoSwapped(b.rank) }, { dtype: b.dtype, shape: swapLast(b.shape) })
    : b;
  if (
    a.rank < 2 ||
    b.rank < 2 ||
    a.dtype !== b.dtype ||
    !dimEquals(a.shape[a.rank - 1]!, bt.shape[bt.rank - 2]!)
  ) {
    const want = transposeB ? 'b [..., n, k] (transposeB)' : 'b [..., k, n]';
    throw new Error(
      `matmul: expected a [..., m, k] and ${want} of one dtype, got ${a.dtype}${formatShape(a.shape)} and ${b.dtype}${formatShape(b.shape)}`,
    );
  }
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, a.shape[a.rank - 2]!, bt.shape[bt.rank - 1]!];
  const y = g.emit('MatMul', [a, bt], {}, { dtype: a.dtype, shape });
  return record(y, 'matmul', [a, b], (dy, needs) => [
    // dL/da = dy @ bt^T, and bt^T is b itself when transposeB.
    needs[0] ? unbroadcast(matmul(dy, b, { transposeB: !transposeB }), a.shape) : undefined,
    // dL/dbt = a^T @ dy; with transposeB, dL/db is its transpose, dy^T @ a.
    needs[1] ? (transposeB ? weightGrad(dy, a, b.shape) : weightGrad(a, dy, b.shape)) : undefined,
  ]);
}

function lastTwoSwapped(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [rank - 1, rank - 2];
  return perm;
}

function swapLast(shape: Shape): Dim[] {
  const s = [...shape];
  [s[s.length - 2], s[s.length - 1]] = [s[s.length - 1]!, s[s.length - 2]!];
  return s;
}

/**
 * u^T @ w summed down to `shape` (a weight gradient). When the result is a plain matrix and u, w
 * carry batch dims (a linear layer on [B, T, D]), the batch folds into the rows first: one
 * [k, B*T] @ [B*T, n] product instead of B of them plus a sum.
 */
function weightGrad(u: Tensor, w: Tensor, shape: Shape): Tensor {
  if (shape.length === 2 && u.rank > 2 && w.rank === u.rank) {
    return matmul(
      transposeLast(reshape(u, [-1, u.shape[u.rank - 1]!])),
      reshape(w, [-1, w.shape[w.rank - 1]!]),
    );
  }
  return unbroadcast(matmul(transposeLast(u), w), shape);
}
