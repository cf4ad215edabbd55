/**
 * GRPO: the group-relative episode advantage that every step of a trajectory shares (also GiGPO's
 * and HGPO's episode part).
 */
import type { z } from 'zod';
import {
  type Batch,
  baseDiagnostics,
  envRewards,
  episodeReturns,
  episodeScores,
  indexBatch,
  invalidRows,
  keyStats,
  normalizeByGroup,
  penaltyAfter,
  penaltyCoefs,
} from './shared.ts';
import {
  type CreditResult,
  type GrpoOptions,
  grpoOptionsSchema,
  type NormMode,
  type StepRow,
} from './types.ts';

export interface GrpoDetails {
  [column: string]: Float64Array;
  /** Episode score S: the trajectory's episodeReturn, minus the penalty on an invalid row. */
  score: Float64Array;
  /** Taken off A after normalization on an invalid row (penaltyPlacement 'after-normalization'; else 0). */
  penalty: Float64Array;
}

/**
 * The group-relative episode advantage A_E shared by GRPO, GiGPO (step 1) and HGPO's base
 * group: each row's score S normalized by its group's statistics (std_s; a group with a single
 * value gets mean 0 and std 1). `out` may be `score` itself, when the scores are not needed after.
 */
export function episodeAdvantage(
  batch: Batch,
  trajectoryReturn: Float64Array,
  score: Float64Array,
  mode: NormMode,
  statistics: 'steps' | 'trajectories',
  out = new Float64Array(batch.n),
): Float64Array {
  const stats =
    statistics === 'steps'
      ? keyStats(score, batch.rowGroup, batch.nGroups, 1)
      : keyStats(trajectoryReturn, batch.trajectoryGroup, batch.nGroups, 1);
  return normalizeByGroup(score, batch.rowGroup, stats, mode, out);
}

/**
 * GRPO: Group Relative Policy Optimization (Shao et al., DeepSeekMath, arXiv:2402.03300), in its
 * multi-turn form: every step of a trajectory gets the trajectory's outcome, normalized within its
 * group.
 *
 * Options (ALGORITHMS.md defaults): `mode` ('mean_std_norm'), `statistics` ('steps': mean and
 * std_s over the scores of all step rows of the group, as the multi-turn reference does;
 * 'trajectories': over the group's episodeReturns, each trajectory once), `penalty` (true) with
 * `penaltyCoef` (0.1): an invalid row's score is episodeReturn - coef; `penaltyPlacement`
 * ('in-return'; 'after-normalization' subtracts coef from the advantage instead, see types.ts).
 */
export function grpo(
  rows: readonly StepRow[],
  options: z.input<typeof grpoOptionsSchema> = {},
): CreditResult<GrpoDetails> {
  const opts: GrpoOptions = grpoOptionsSchema.parse(options);
  const batch = indexBatch(rows);
  const reward = envRewards(batch);
  const invalid = invalidRows(batch);
  const trajectoryReturn = episodeReturns(batch, reward);
  const coef = penaltyCoefs(opts);
  const score = episodeScores(batch, trajectoryReturn, invalid, coef.inReturn);
  const advantages = episodeAdvantage(batch, trajectoryReturn, score, opts.mode, opts.statistics);
  const penalty = penaltyAfter(advantages, invalid, coef.after);
  return {
    estimator: 'grpo',
    advantages,
    details: { score, penalty },
    diagnostics: baseDiagnostics(batch, trajectoryReturn, advantages),
  };
}
