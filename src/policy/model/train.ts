/**
 * The train-step graph: forward, loss, backward, global-norm clip, AdamW and the non-finite guard
 * in one ONNX graph, so one session.run is one optimizer step.
 *
 * Inputs   ids                            int64 [batch, seq]
 *          prefixIds, prefixOf, prefixLength    int64 (only with shared prefixes, see PrefixInputs)
 *          select                         int64 [batch, sel]  (flat indices b x seq + t of the positions
 *                                                              the loss reads: the masked ones, padded)
 *          targets                        int64 [batch, sel]  (the token after ids at each selected position)
 *          mask                           float [batch, sel]  (1 on tokens that count, 0 on padding)
 *          advantages, oldLogprobs, refLogprobs   float [batch, sel]   (RL only)
 *          lr, step                       float scalars        (step = updates applied so far)
 *          <param>, m.<param>, v.<param>  parameters and AdamW moments
 *          lossScale                      float scalar         (float16 precision only)
 * Outputs  new.<param>, new.m.<param>, new.v.<param>, new.step
 *          loss, kl, entropy, clipFraction, gradNorm (float scalars), skipped (bool scalar)
 *
 * With a half `precision` (mixed precision): parameters, moments and every input stay float32 (the
 * master weights); the forward and backward run on half copies of them (norms, softmaxes, logits
 * and the loss in float32, as in the inference graphs), and the gradients come back to float32
 * through the casts. float16 scales the loss by `lossScale` (see `trainStep`); bfloat16 has
 * float32's range and needs no scaling.
 */
import { cast, Graph, stopGradient, type Tensor, trainStep } from '../graph/index.ts';
import type { ModelConfig } from './config.ts';
import { type FloatType, paramInputs, prefixInputs, scoreTokens } from './graphs.ts';
import { type LossConfig, lossTerms } from './loss.ts';
import { isNormParam, trainableSpecs } from './params.ts';

export const METRICS = ['loss', 'kl', 'entropy', 'clipFraction', 'gradNorm'] as const;
export type MetricName = (typeof METRICS)[number];

/** Names of the per-token float inputs a loss kind needs (besides ids and targets). */
export function tokenInputs(kind: LossConfig['kind']): string[] {
  return kind === 'rl' ? ['mask', 'advantages', 'oldLogprobs', 'refLogprobs'] : ['mask'];
}

/**
 * With `prefixed`, rows extend shared prompt prefixes: the inputs prefixIds [prefixes, prefixLen],
 * prefixOf and prefixLength [batch] (see `PrefixInputs`), `ids` holds each row's suffix and
 * `select` indexes into it.
 */
export function buildTrainGraph(
  c: ModelConfig,
  cfg: LossConfig,
  dtype: FloatType = 'float32',
  precision?: 'float16' | 'bfloat16',
  prefixed = false,
): Graph {
  const g = new Graph(`train-${cfg.kind}${prefixed ? '-prefixed' : ''}`);
  const ids = g.input('ids', 'int64', ['batch', 'seq']);
  // Logits only where the loss looks: every per-token term is over the selected positions, so the
  // loss, its aggregations (masked means, per-row sums) and the gradients are those of the full
  // [batch, seq] layout without the masked-out positions' zero terms.
  const select = g.input('select', 'int64', ['batch', 'sel']);
  const targets = g.input('targets', 'int64', ['batch', 'sel']);
  const prefix = prefixed ? prefixInputs(g) : undefined;
  const perToken: Record<string, Tensor> = {};
  for (const name of tokenInputs(cfg.kind)) perToken[name] = g.input(name, dtype, ['batch', 'sel']);
  const lr = g.input('lr', dtype, []);
  const step = g.input('step', dtype, []);
  // With LoRA the base weights are inputs only: no gradient, no moments, no new values.
  const specs = trainableSpecs(c);
  const params = paramInputs(g, c, dtype);
  const m = specs.map((s) => g.input(`m.${s.name}`, dtype, s.shape));
  const v = specs.map((s) => g.input(`v.${s.name}`, dtype, s.shape));

  const compute = precision
    ? new Map([...params].map(([k, p]) => [k, isNormParam(k) ? p : cast(p, precision)]))
    : params;
  const lossScale = precision === 'float16' ? g.input('lossScale', dtype, []) : undefined;
  const scores = scoreTokens(c, compute, ids, targets, true, select, prefix, cfg.temperature);
  // The entropy enters the gradient only through the RL bonus; otherwise it is a metric.
  const entropy = cfg.kind === 'rl' && cfg.entropyCoef > 0 ? scores.entropy : stopGradient(scores.entropy);
  const terms = lossTerms(
    {
      logprobs: scores.logprobs,
      entropy,
      mask: perToken.mask!,
      advantages: perToken.advantages,
      oldLogprobs: perToken.oldLogprobs,
      refLogprobs: perToken.refLogprobs,
    },
    cfg,
  );
  const paramList = specs.map((s) => params.get(s.name)!);
  const out = trainStep({
    loss: terms.loss,
    params: paramList,
    m,
    v,
    step,
    lr,
    maxGradNorm: cfg.maxGradNorm,
    lossScale,
    decay: specs.map((s) => s.decay),
    config: { beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.adamEps, weightDecay: cfg.weightDecay },
  });
  specs.forEach((s, i) => {
    g.output(`new.${s.name}`, out.params[i]!);
    g.output(`new.m.${s.name}`, out.m[i]!);
    g.output(`new.v.${s.name}`, out.v[i]!);
  });
  g.output('new.step', out.step);
  g.output('loss', terms.loss);
  g.output('kl', terms.kl);
  g.output('entropy', terms.entropy);
  g.output('clipFraction', terms.clipFraction);
  g.output('gradNorm', out.gradNorm);
  g.output('skipped', out.skipped);
  return g;
}
