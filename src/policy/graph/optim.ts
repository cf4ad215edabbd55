/**
 * The optimizer as graph nodes, so one session.run does forward, backward and update: global-norm
 * gradient clipping, AdamW (bias-corrected, decoupled weight decay, as in PyTorch's AdamW), and a
 * guard that keeps parameters and state unchanged when the loss or the gradient is not finite.
 * Parameters and optimizer state are graph inputs; their updated values are graph outputs.
 */
import { z } from 'zod';
import { grad } from './autodiff.ts';
import type { Tensor } from './graph.ts';
import { add, addN, and, div, finite, minimum, mul, pow, sqrt, sub, where } from './ops/elementwise.ts';
import { reduceSum } from './ops/reduce.ts';

export const AdamWConfig = z.object({
  lr: z.number().positive().default(3e-4),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  eps: z.number().positive().default(1e-8),
  /** Decoupled: p <- p * (1 - lr * weightDecay) before the Adam step. */
  weightDecay: z.number().min(0).default(0.01),
});
export type AdamWConfig = z.infer<typeof AdamWConfig>;

/** sqrt(sum of squares of every element of every tensor), a float scalar. */
export function globalNorm(ts: Tensor[]): Tensor {
  return sqrt(addN(ts.map((t) => reduceSum(mul(t, t)))));
}

/**
 * Scales all gradients by min(1, maxNorm / (norm + 1e-6)) so their global norm is at most maxNorm
 * (the PyTorch clip_grad_norm_ rule). Returns the clipped gradients and the norm before clipping.
 */
export function clipByGlobalNorm(grads: Tensor[], maxNorm: number): { grads: Tensor[]; norm: Tensor } {
  const norm = globalNorm(grads);
  const scale = minimum(div(maxNorm, add(norm, 1e-6)), 1);
  return { grads: grads.map((g) => mul(g, scale)), norm };
}

/** bool scalar: every element of every tensor is finite. */
export function allFinite(ts: Tensor[]): Tensor {
  return ts.map((t) => reduceAll(finite(t))).reduce((a, b) => and(a, b));
}

function reduceAll(mask: Tensor): Tensor {
  if (mask.rank === 0) return mask;
  // ONNX has no ReduceAll: count the false entries instead.
  const g = mask.graph;
  const bad = g.emit('Not', [mask], {}, { dtype: 'bool', shape: mask.shape });
  const n = reduceSum(g.emit('Cast', [bad], { to: 1 }, { dtype: 'float32', shape: mask.shape }));
  return g.emit('Equal', [n, g.scalar(0, 'float32')], {}, { dtype: 'bool', shape: [] });
}

export interface AdamWArgs {
  params: Tensor[];
  grads: Tensor[];
  /** First and second moment estimates, one per parameter, shaped like it. */
  m: Tensor[];
  v: Tensor[];
  /** Scalar (params' dtype): the number of updates applied so far. */
  step: Tensor;
  /** A scalar tensor (for schedules fed at run time) or a number; overrides config.lr. */
  lr?: Tensor | number;
  config?: Partial<AdamWConfig>;
  /** Per parameter: apply weight decay (default: all). */
  decay?: boolean[];
  /** bool scalar; where false the outputs equal the inputs (the non-finite guard). */
  apply?: Tensor;
}

export interface AdamWResult {
  params: Tensor[];
  m: Tensor[];
  v: Tensor[];
  step: Tensor;
}

/** One AdamW update, as nodes. */
export function adamw(args: AdamWArgs): AdamWResult {
  const cfg = AdamWConfig.parse(args.config ?? {});
  const { params, grads, m, v, step, apply } = args;
  if (grads.length !== params.length || m.length !== params.length || v.length !== params.length) {
    throw new Error(
      `adamw: got ${params.length} params, ${grads.length} grads, ${m.length} m and ${v.length} v; expected one of each per parameter`,
    );
  }
  const lrValue = args.lr ?? cfg.lr;
  const lr = typeof lrValue === 'number' ? step.graph.scalar(lrValue, step.dtype) : lrValue;
  const t = add(step, 1);
  // Bias corrections folded into two scalars, as PyTorch does:
  // p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  const stepSize = div(lr, sub(1, pow(cfg.beta1, t)));
  const invSqrtBc2 = div(1, sqrt(sub(1, pow(cfg.beta2, t))));
  const guard = (next: Tensor, prev: Tensor) => (apply ? where(apply, next, prev) : next);
  const out: AdamWResult = { params: [], m: [], v: [], step: guard(t, step) };
  params.forEach((p, i) => {
    const g = grads[i]!;
    const m1 = add(mul(m[i]!, cfg.beta1), mul(g, 1 - cfg.beta1));
    const v1 = add(mul(v[i]!, cfg.beta2), mul(mul(g, g), 1 - cfg.beta2));
    const decay = (args.decay?.[i] ?? true) && cfg.weightDecay > 0;
    const decayed = decay ? mul(p, sub(1, mul(lr, cfg.weightDecay))) : p;
    const update = div(mul(m1, stepSize), add(mul(sqrt(v1), invSqrtBc2), cfg.eps));
    out.params.push(guard(sub(decayed, update), p));
    out.m.push(guard(m1, m[i]!));
    out.v.push(guard(v1, v[i]!));
  });
  return out;
}

export interface TrainStepArgs extends Omit<AdamWArgs, 'grads' | 'apply'> {
  loss: Tensor;
  /** Global-norm clip threshold (ALGORITHMS.md default 1.0); omit for no clipping. */
  maxGradNorm?: number;
}

export interface TrainStepResult extends AdamWResult {
  /** Global gradient norm before clipping. */
  gradNorm: Tensor;
  /** bool scalar: true when the loss or a gradient was not finite and nothing was updated. */
  skipped: Tensor;
}

/**
 * grad + clip + non-finite guard + AdamW: everything after the loss in a train-step graph. When the
 * loss or the gradient norm is NaN or Inf, parameters, moments and step come out unchanged and
 * `skipped` is true.
 */
export function trainStep(args: TrainStepArgs): TrainStepResult {
  const grads = grad(args.loss, args.params);
  const clipped =
    args.maxGradNorm === undefined
      ? { grads, norm: globalNorm(grads) }
      : clipByGlobalNorm(grads, args.maxGradNorm);
  const ok = allFinite([args.loss, clipped.norm]);
  const g = args.loss.graph;
  const skipped = g.emit('Not', [ok], {}, { dtype: 'bool', shape: [] });
  return { ...adamw({ ...args, grads: clipped.grads, apply: ok }), gradNorm: clipped.norm, skipped };
}
