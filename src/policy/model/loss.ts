/**
 * The policy loss of ALGORITHMS.md ("The policy loss") and the SFT loss, as graph nodes over
 * per-token tensors. Kept apart from the transformer so tests can feed log-probs worked by hand.
 */
import { z } from 'zod';
import {
  add,
  cast,
  clip,
  div,
  exp,
  greater,
  less,
  maximum,
  minimum,
  mul,
  neg,
  reduceSum,
  sub,
  type Tensor,
  where,
} from '../graph/index.ts';

/** How per-token losses become one number (ALGORITHMS.md "Aggregation"). */
export const LossAgg = z.enum(['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean']);
export type LossAgg = z.infer<typeof LossAgg>;

/** What `Policy.update` optimizes, and how. Defaults are ALGORITHMS.md's. */
export const LossConfig = z.object({
  /** 'rl': the clipped policy-gradient loss; 'sft': masked cross-entropy on the masked tokens. */
  kind: z.enum(['rl', 'sft']).default('rl'),
  clipLow: z.number().min(0).default(0.2),
  clipHigh: z.number().min(0).default(0.2),
  /** Dual clip: for A < 0 the loss is at most -A * clipC. */
  clipC: z.number().min(1).default(3),
  klCoef: z.number().min(0).default(0.01),
  entropyCoef: z.number().min(0).default(0.001),
  lossAgg: LossAgg.default('token-mean'),
  learningRate: z.number().positive().default(3e-4),
  weightDecay: z.number().min(0).default(0.01),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  adamEps: z.number().positive().default(1e-8),
  /** Global gradient-norm clip. */
  maxGradNorm: z.number().positive().default(1.0),
  /**
   * The temperature the policy's log-probs and entropy are taken at: logits / temperature before
   * the softmax. The trainer sets it to the rollout's sampling temperature (`ppo.logprobs`), so the
   * gradient is that of the distribution the tokens were drawn from, as verl's actor does.
   */
  temperature: z.number().positive().default(1),
});
export type LossConfig = z.infer<typeof LossConfig>;

/**
 * Per-token inputs of the loss, all [batch, seq] and aligned: entry (b, t) is about the token the
 * model predicts at position t. `mask` is 1 on tokens that count (response tokens), 0 elsewhere.
 */
export interface TokenTerms {
  logprobs: Tensor;
  mask: Tensor;
  /** Entropy of the model's next-token distribution at each position. */
  entropy: Tensor;
  advantages?: Tensor;
  oldLogprobs?: Tensor;
  refLogprobs?: Tensor;
}

/** The scalar loss to differentiate and the metrics to report (token means over the mask). */
export interface LossTerms {
  loss: Tensor;
  kl: Tensor;
  entropy: Tensor;
  clipFraction: Tensor;
}

/** max(x, 1): a batch without any masked token gives a zero loss, not 0/0. */
const atLeastOne = (x: Tensor) => maximum(x, 1);

/** Masked mean over all tokens: sum(x * mask) / max(sum(mask), 1). */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  return div(reduceSum(mul(x, mask)), atLeastOne(reduceSum(mask)));
}

/**
 * Aggregate a per-token loss [batch, seq]. The two `seq-mean` modes average over the rows that
 * have at least one masked token, so padding rows do not dilute the mean.
 */
export function aggregate(perToken: Tensor, mask: Tensor, mode: LossAgg): Tensor {
  if (mode === 'token-mean') return maskedMean(perToken, mask);
  const rowSum = reduceSum(mul(perToken, mask), -1); // [batch]
  const rowTokens = reduceSum(mask, -1);
  const rowHasTokens = cast(greater(rowTokens, 0), mask.dtype);
  const perRow = mode === 'seq-mean-token-sum' ? rowSum : div(rowSum, atLeastOne(rowTokens));
  return div(reduceSum(mul(perRow, rowHasTokens)), atLeastOne(reduceSum(rowHasTokens)));
}

/**
 * The RL loss per token:
 *   ratio = exp(lp - lp_old)
 *   l = max(-A ratio, -A clip(ratio, 1 - clipLow, 1 + clipHigh)); if A < 0: l = min(l, -A clipC)
 *   kl = clamp(exp(d) - d - 1, -10, 10) with d = lp_ref - lp
 *   total = l + klCoef kl - entropyCoef entropy, aggregated with lossAgg.
 */
export function policyLoss(terms: TokenTerms, cfg: LossConfig): LossTerms {
  const { logprobs: lp, mask, entropy } = terms;
  const A = terms.advantages;
  const old = terms.oldLogprobs;
  const ref = terms.refLogprobs;
  if (!A || !old || !ref) throw new Error('policyLoss: advantages, oldLogprobs and refLogprobs are required');
  const ratio = exp(sub(lp, old));
  const unclipped = mul(neg(A), ratio);
  const clipped = mul(neg(A), clip(ratio, 1 - cfg.clipLow, 1 + cfg.clipHigh));
  const pg = maximum(unclipped, clipped);
  const dual = where(less(A, 0), minimum(pg, mul(neg(A), cfg.clipC)), pg);
  const d = sub(ref, lp);
  const kl = clip(sub(sub(exp(d), d), 1), -10, 10);
  let perToken = dual;
  if (cfg.klCoef > 0) perToken = add(perToken, mul(kl, cfg.klCoef));
  if (cfg.entropyCoef > 0) perToken = sub(perToken, mul(entropy, cfg.entropyCoef));
  // A token is "clipped" when the clipped term won the max strictly (PPO's usual clip fraction).
  const wasClipped = cast(greater(clipped, unclipped), mask.dtype);
  return {
    loss: aggregate(perToken, mask, cfg.lossAgg),
    kl: maskedMean(kl, mask),
    entropy: maskedMean(entropy, mask),
    clipFraction: maskedMean(wasClipped, mask),
  };
}

/** SFT: masked cross-entropy, -lp on the masked tokens, aggregated with lossAgg. */
export function sftLoss(terms: TokenTerms, cfg: LossConfig): LossTerms {
  const { logprobs: lp, mask, entropy } = terms;
  const zero = mul(reduceSum(mask), 0);
  return {
    loss: aggregate(neg(lp), mask, cfg.lossAgg),
    kl: zero,
    entropy: maskedMean(entropy, mask),
    clipFraction: zero,
  };
}

export function lossTerms(terms: TokenTerms, cfg: LossConfig): LossTerms {
  return cfg.kind === 'rl' ? policyLoss(terms, cfg) : sftLoss(terms, cfg);
}
