/** RLOO: each trajectory's score minus the mean return of the group's other trajectories. */
import type { z } from 'zod';
import {
  baseDiagnostics,
  envRewards,
  episodeReturns,
  episodeScores,
  indexBatch,
  invalidRows,
  penaltyAfter,
  penaltyCoefs,
} from './shared.ts';
import { type CreditResult, type RlooOptions, rlooOptionsSchema, type StepRow } from './types.ts';

export interface RlooDetails {
  [column: string]: Float64Array;
  /** Episode score S (episodeReturn, minus the penalty on an invalid row). */
  score: Float64Array;
  /** Taken off A after normalization on an invalid row (penaltyPlacement 'after-normalization'; else 0). */
  penalty: Float64Array;
  /** Mean episodeReturn of the other trajectories of the group (NaN when there are none). */
  baseline: Float64Array;
}

/**
 * RLOO: REINFORCE Leave-One-Out (Kool et al., "Buy 4 REINFORCE samples, get a baseline for free!",
 * 2019; Ahmadian et al., arXiv:2402.14740). Every step gets its score minus the mean episodeReturn
 * of the group's other trajectories. A group with a single trajectory has no baseline and keeps
 * its score, as verl's RLOO does. No std normalization.
 *
 * Options: `penalty` (true) with `penaltyCoef` (0.1) and `penaltyPlacement`, as for GRPO (RLOO
 * does not normalize, so both placements give the same advantages).
 */
export function rloo(
  rows: readonly StepRow[],
  options: z.input<typeof rlooOptionsSchema> = {},
): CreditResult<RlooDetails> {
  const opts: RlooOptions = rlooOptionsSchema.parse(options);
  const batch = indexBatch(rows);
  const reward = envRewards(batch);
  const invalid = invalidRows(batch);
  const trajectoryReturn = episodeReturns(batch, reward);
  const coef = penaltyCoefs(opts);
  const score = episodeScores(batch, trajectoryReturn, invalid, coef.inReturn);
  const sum = new Float64Array(batch.nGroups);
  const count = new Int32Array(batch.nGroups);
  for (let t = 0; t < batch.nTrajectories; t++) {
    sum[batch.trajectoryGroup[t]] += trajectoryReturn[t];
    count[batch.trajectoryGroup[t]]++;
  }
  const advantages = new Float64Array(batch.n);
  const baseline = new Float64Array(batch.n);
  for (let i = 0; i < batch.n; i++) {
    const g = batch.rowGroup[i];
    const t = batch.rowTrajectory[i];
    baseline[i] = count[g] > 1 ? (sum[g] - trajectoryReturn[t]) / (count[g] - 1) : Number.NaN;
    advantages[i] = count[g] > 1 ? score[i] - baseline[i] : score[i];
  }
  const penalty = penaltyAfter(advantages, invalid, coef.after);
  return {
    estimator: 'rloo',
    advantages,
    details: { score, baseline, penalty },
    diagnostics: baseDiagnostics(batch, trajectoryReturn, advantages),
  };
}
