/**
 * Reverse-mode autodiff over the graph, micrograd style: every op attaches a GradFn to its output
 * (see ops/), and `grad` walks from the loss back to the requested tensors, emitting the backward
 * nodes into the same graph so that one session.run computes loss and gradients together.
 */
import { formatShape, isStatic, shapeEquals } from './dims.ts';
import { type GradFn, isFloat, type Tensor } from './graph.ts';
import type { DType } from './node.ts';

/** Attaches a backward rule to an op's output and returns the output. */
export function record(y: Tensor, op: string, inputs: Tensor[], backward: GradFn['backward']): Tensor {
  y.gradFn = { op, inputs, backward };
  return y;
}

/** Tensors reachable from `root` through GradFn inputs, inputs before the tensors using them. */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: transformer graphs are deep enough to make recursion risky.
  const stack: { t: Tensor; expanded: boolean }[] = [{ t: root, expanded: false }];
  while (stack.length) {
    const top = stack.pop()!;
    if (top.expanded) {
      order.push(top.t);
      continue;
    }
    if (seen.has(top.t)) continue;
    seen.add(top.t);
    stack.push({ t: top.t, expanded: true });
    for (const x of top.t.gradFn?.inputs ?? []) if (!seen.has(x)) stack.push({ t: x, expanded: false });
  }
  return order;
}

/**
 * Gradients of `loss` with respect to each tensor in `wrt` (same order). `loss` must be a scalar
 * unless `seed` (dL/dloss, shaped like loss) is given. A tensor the loss does not depend on gets a
 * zero gradient. Contributions of a tensor used several times are summed (one Sum node).
 */
export function grad(loss: Tensor, wrt: Tensor[], seed?: Tensor): Tensor[] {
  const g = loss.graph;
  if (!isFloat(loss.dtype)) throw new Error(`grad: loss must be float32 or float64, got ${loss.dtype}`);
  if (!seed && !(loss.rank === 0 || (isStatic(loss.shape) && loss.shape.every((d) => d === 1)))) {
    throw new Error(
      `grad: loss must be a scalar (got shape ${formatShape(loss.shape)}); pass a seed otherwise`,
    );
  }
  if (seed && (seed.dtype !== loss.dtype || !shapeEquals(seed.shape, loss.shape))) {
    throw new Error(`grad: seed ${seed} must have the loss's dtype and shape (${loss})`);
  }
  for (const w of wrt) {
    if (!isFloat(w.dtype))
      throw new Error(`grad: cannot differentiate with respect to ${w} (not a float tensor)`);
  }
  const order = topoOrder(loss);
  // A tensor needs a gradient when some tensor of `wrt` is upstream of it.
  const targets = new Set(wrt);
  const needs = new Set<Tensor>();
  for (const t of order) {
    if (targets.has(t) || (isFloat(t.dtype) && t.gradFn?.inputs.some((x) => needs.has(x)))) needs.add(t);
  }
  const pending = new Map<Tensor, Tensor[]>();
  const done = new Map<Tensor, Tensor>();
  pending.set(loss, [seed ?? g.constant(1, loss.dtype, loss.shape as number[])]);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    const parts = pending.get(t);
    if (!parts || !needs.has(t)) continue;
    const dy = accumulate(t, parts);
    done.set(t, dy);
    const fn = t.gradFn;
    if (!fn) continue;
    const need = fn.inputs.map((x) => needs.has(x));
    if (!need.some(Boolean)) continue;
    const dxs = fn.backward(dy, need);
    fn.inputs.forEach((x, k) => {
      const dx = dxs[k];
      if (!need[k] || !dx) return;
      if (dx.dtype !== x.dtype || dx.rank !== x.rank) {
        throw new Error(`grad: the rule of ${fn.op} returned ${dx} for input ${x} (internal error)`);
      }
      const list = pending.get(x);
      if (list) list.push(dx);
      else pending.set(x, [dx]);
    });
  }
  return wrt.map((w) => done.get(w) ?? zerosLike(w));
}

/**
 * Sums the gradient contributions of one tensor. When some of them are the zero-padded gradients of
 * slices that tile an axis (q, k and v cut from one projection), they become one Concat: no Pads,
 * no additions of zeros.
 */
function accumulate(t: Tensor, parts: Tensor[]): Tensor {
  if (parts.length === 1) return parts[0]!;
  const g = t.graph;
  const pads = parts.filter((p) => p.padOf && p.padOf.axis === parts.find((q) => q.padOf)!.padOf!.axis);
  if (pads.length > 1) {
    const pieces = pads.map((p) => p.padOf!).sort((a, b) => a.begin - b.begin);
    const dim = t.shape[pieces[0]!.axis];
    const tiles =
      pieces.every((p, i) => p.begin === (i === 0 ? 0 : pieces[i - 1]!.end)) && pieces.at(-1)!.end === dim;
    if (tiles) {
      const joined = g.emit(
        'Concat',
        pieces.map((p) => p.dy),
        { axis: pieces[0]!.axis },
        { dtype: t.dtype, shape: t.shape },
      );
      parts = [joined, ...parts.filter((p) => !pads.includes(p))];
      if (parts.length === 1) return joined;
    }
  }
  return g.emit('Sum', parts, {}, { dtype: t.dtype, shape: t.shape });
}

/** Zeros with t's dtype and shape (an Expand of a scalar, so no large constant is stored). */
export function zerosLike(t: Tensor, dtype: DType = t.dtype): Tensor {
  const g = t.graph;
  if (t.rank === 0) return g.scalar(0, dtype);
  return g.emit('Expand', [g.scalar(0, dtype), g.shapeOf(t)], {}, { dtype, shape: t.shape });
}
