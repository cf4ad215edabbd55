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
  const scale = clipScale(norm, maxNorm);
  return { grads: grads.map((g) => mul(g, scale)), norm };
}

function clipScale(norm: Tensor, maxNorm: number): Tensor {
  return minimum(div(maxNorm, add(norm, 1e-6)), 1);
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
  /** Scalar every gradient is multiplied by first (the global-norm clip factor). */
  gradScale?: Tensor;
}

export interface AdamWResult {
  params: Tensor[];
  m: Tensor[];
  v: Tensor[];
  step: Tensor;
}

/**
 * One AdamW update, as nodes. Written for few full-size ops per parameter (each one streams the
 * whole parameter through memory): the bias corrections, the weight decay and the guard are folded
 * into scalars. With `apply` false the scalars become identities (beta = 1, step size = 0, decay
 * factor = 1) and the gradient is replaced by 0 before it can spread a NaN, so parameters and
 * moments come out bit-for-bit unchanged at the cost of one Where per parameter.
 */
export function adamw(args: AdamWArgs): AdamWResult {
  const cfg = AdamWConfig.parse(args.config ?? {});
  const { params, grads, m, v, step, apply, gradScale } = args;
  if (grads.length !== params.length || m.length !== params.length || v.length !== params.length) {
    throw new Error(
      `adamw: got ${params.length} params, ${grads.length} grads, ${m.length} m and ${v.length} v; expected one of each per parameter`,
    );
  }
  const graph = step.graph;
  const scalar = (x: Tensor | number) => (typeof x === 'number' ? graph.scalar(x, step.dtype) : x);
  const lr = scalar(args.lr ?? cfg.lr);
  const t = add(step, 1);
  // lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  //   = [lr sqrt(1 - b2^t) / (1 - b1^t)] * m / (sqrt(v) + eps sqrt(1 - b2^t))
  const sqrtBc2 = sqrt(sub(1, pow(cfg.beta2, t)));
  const eps = mul(sqrtBc2, cfg.eps);
  const stepSize = div(mul(lr, sqrtBc2), sub(1, pow(cfg.beta1, t)));
  const decayFactor = sub(1, mul(lr, cfg.weightDecay));
  const on = (x: Tensor | number, off: number) => (apply ? where(apply, scalar(x), off) : scalar(x));
  const [b1, b2, step1, decay1] = [on(cfg.beta1, 1), on(cfg.beta2, 1), on(stepSize, 0), on(decayFactor, 1)];
  // The clip factor s enters as scalars too: m' = b1 m + (1 - b1) s g, v' = b2 v + (1 - b2) s^2 g^2.
  const scale = gradScale && on(gradScale, 1); // a NaN norm makes a NaN scale
  const c1 = scale ? mul(sub(1, b1), scale) : sub(1, b1);
  const c2 = scale ? mul(sub(1, b2), mul(scale, scale)) : sub(1, b2);
  const out: AdamWResult = { params: [], m: [], v: [], step: apply ? where(apply, t, step) : t };
  params.forEach((p, i) => {
    let g = grads[i]!;
    if (apply) g = where(apply, g, 0);
    const m1 = add(mul(m[i]!, b1), mul(g, c1));
    const v1 = add(mul(v[i]!, b2), mul(mul(g, g), c2));
    const decayed = (args.decay?.[i] ?? true) && cfg.weightDecay > 0 ? mul(p, decay1) : p;
    out.params.push(sub(decayed, mul(div(m1, add(sqrt(v1), eps)), step1)));
    out.m.push(m1);
    out.v.push(v1);
  });
  return out;
}

export interface TrainStepArgs extends Omit<AdamWArgs, 'grads' | 'apply' | 'gradScale'> {
  loss: Tensor;
  /** Global-norm clip threshold (ALGORITHMS.md default 1.0); omit for no clipping. */
  maxGradNorm?: number;
  /**
   * Scalar the loss is multiplied by before the backward pass (loss scaling for a float16
   * backward: small gradients would underflow float16 otherwise). The gradients are divided by it
   * again through AdamW's gradient scale, so the update and `gradNorm` are those of the loss.
   */
  lossScale?: Tensor;
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
  const { lossScale } = args;
  const grads = grad(lossScale ? mul(args.loss, lossScale) : args.loss, args.params);
  const norm = lossScale ? div(globalNorm(grads), lossScale) : globalNorm(grads);
  // The clip factor (and the loss scale's inverse) go into AdamW as a scalar, so neither costs a
  // pass over the gradients.
  const clip = args.maxGradNorm === undefined ? undefined : clipScale(norm, args.maxGradNorm);
  const unscale = lossScale && div(1, lossScale);
  const gradScale = clip && unscale ? mul(clip, unscale) : (clip ?? unscale);
  const ok = allFinite([args.loss, norm]);
  const g = args.loss.graph;
  const skipped = g.emit('Not', [ok], {}, { dtype: 'bool', shape: [] });
  return { ...adamw({ ...args, grads, apply: ok, gradScale }), gradNorm: norm, skipped };
}
