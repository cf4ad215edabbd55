import type { z } from 'zod';
import { codePointLength, ratioUpperBound, similarityRatio } from './difflib.ts';
import { episodeAdvantage } from './grpo.ts';
import {
  type Batch,
  baseDiagnostics,
  discountedReturns,
  envRewards,
  episodeReturns,
  episodeScores,
  groupPairs,
  indexBatch,
  internAnchors,
  invalidRows,
  keyStats,
  normalize,
  penaltyAfter,
  penaltyCoefs,
  summarize,
} from './shared.ts';
import {
  type BaseDiagnostics,
  CreditInputError,
  type CreditResult,
  type GigpoOptions,
  gigpoOptionsSchema,
  type StepRow,
  type Summary,
} from './types.ts';

export interface GigpoDetails {
  [column: string]: Float64Array | Int32Array;
  /** A_E: the episode (GRPO) part; with `penaltyPlacement: 'after-normalization'`, minus the penalty on invalid rows. */
  episode: Float64Array;
  /** A_S: the step part (0 for a row alone in its step group). */
  step: Float64Array;
  /** R_t: the discounted step return, after the invalid-action penalty. */
  return: Float64Array;
  /** Step-group number (unique across the batch). */
  stepGroup: Int32Array;
  /** Rows in the row's step group. */
  stepGroupSize: Int32Array;
}

export interface GigpoDiagnostics extends BaseDiagnostics {
  stepGroups: number;
  /** Rows per step group. */
  stepGroupSize: Summary;
  /** Share of rows whose step group has more than one row (so A_S can be non-zero). */
  nonTrivialStepShare: number;
}

/**
 * GiGPO: Group-in-Group Policy Optimization (Feng et al., "Group-in-Group Policy Optimization for
 * LLM Agent Training", arXiv:2505.10978). `A = A_E + w * A_S`: the GRPO episode advantage plus
 * the step advantage, the discounted return R_t normalized among the group's rows that share an
 * anchor (a step group).
 *
 * Options (ALGORITHMS.md defaults): `mode` ('mean_std_norm'; the reference uses 'mean_norm' for
 * WebShop-like tasks), `gamma` (0.95), `stepWeight` w (1), `similarity` (off: exact anchor
 * equality; a threshold in (0,1) clusters text anchors greedily in row order with difflib's
 * ratio, reference 0.95), `penalty` (true) with `penaltyCoef` (0.1) and `penaltyPlacement`
 * ('in-return'; 'after-normalization' subtracts coef once from A instead of from R_t and S).
 */
export function gigpo(
  rows: readonly StepRow[],
  options: z.input<typeof gigpoOptionsSchema> = {},
): CreditResult<GigpoDetails, GigpoDiagnostics> {
  const opts: GigpoOptions = gigpoOptionsSchema.parse(options);
  const batch = indexBatch(rows);
  const reward = envRewards(batch);
  const invalid = invalidRows(batch);
  const { inReturn: coef, after } = penaltyCoefs(opts);
  const trajectoryReturn = episodeReturns(batch, reward);
  const score = episodeScores(batch, trajectoryReturn, invalid, coef);
  // the scores are not a GiGPO detail: normalize them in place
  const episode = episodeAdvantage(batch, trajectoryReturn, score, opts.mode, 'steps', score);
  // A penalty placed after normalization joins the episode part, so that A = A_E + w * A_S holds.
  penaltyAfter(episode, invalid, after);
  const returns = discountedReturns(batch, reward, invalid, opts.gamma, coef);

  const { stepGroup, count } =
    opts.similarity === undefined ? exactStepGroups(batch) : similarStepGroups(batch, opts.similarity);
  const stats = keyStats(returns, stepGroup, count, 1);
  const step = new Float64Array(batch.n);
  const stepGroupSize = new Int32Array(batch.n);
  const advantages = new Float64Array(batch.n);
  let nonTrivial = 0;
  for (let i = 0; i < batch.n; i++) {
    const k = stepGroup[i];
    const size = stats.count[k];
    stepGroupSize[i] = size;
    if (size > 1) {
      step[i] = normalize(returns[i], stats.mean[k], stats.std[k], opts.mode);
      nonTrivial++;
    }
    advantages[i] = episode[i] + opts.stepWeight * step[i];
  }
  return {
    estimator: 'gigpo',
    advantages,
    details: { episode, step, return: returns, stepGroup, stepGroupSize },
    diagnostics: {
      ...baseDiagnostics(batch, trajectoryReturn, advantages),
      stepGroups: count,
      stepGroupSize: summarize(stats.count),
      nonTrivialStepShare: batch.n === 0 ? 0 : nonTrivial / batch.n,
    },
  };
}

/** Step groups of exactly equal anchors inside each group. */
export function exactStepGroups(batch: Batch): { stepGroup: Int32Array; count: number } {
  const anchors = internAnchors(batch);
  // the anchor numbers are not needed after: the step groups overwrite them
  const count = groupPairs(batch.rowGroup, anchors.id, batch.nGroups, anchors.count, anchors.id);
  return { stepGroup: anchors.id, count };
}

/**
 * Greedy clustering of text anchors inside each group, in row order: a row joins the first
 * cluster whose representative (its first member, difflib's `b`) has ratio >= threshold, else
 * starts a new cluster. Two shortcuts keep the result exact: equal texts always land in the same
 * cluster (the clusters before it are the same ones that rejected the text the first time), and
 * the length bound rules out a representative without running difflib.
 */
export function similarStepGroups(batch: Batch, threshold: number): { stepGroup: Int32Array; count: number } {
  const { rows } = batch;
  const reps: Array<Array<{ text: string; length: number; id: number }>> = [];
  const seen: Array<Map<string, number>> = [];
  const stepGroup = new Int32Array(batch.n);
  let count = 0;
  for (let i = 0; i < batch.n; i++) {
    const text = rows[i].anchor;
    if (typeof text !== 'string') {
      throw new CreditInputError(
        i,
        'anchor',
        'similarity step groups need text anchors; got a structured anchor',
      );
    }
    const g = batch.rowGroup[i];
    reps[g] ??= [];
    seen[g] ??= new Map();
    const known = seen[g].get(text);
    if (known !== undefined) {
      stepGroup[i] = known;
      continue;
    }
    const length = codePointLength(text);
    let id = -1;
    for (const rep of reps[g]) {
      if (ratioUpperBound(length, rep.length) < threshold) continue;
      if (similarityRatio(text, rep.text) >= threshold) {
        id = rep.id;
        break;
      }
    }
    if (id < 0) {
      id = count++;
      reps[g].push({ text, length, id });
    }
    seen[g].set(text, id);
    stepGroup[i] = id;
  }
  return { stepGroup, count };
}
