/** Flow-GRPO: every planner turn carries its trajectory's outcome, normalized over the group. */
import type { z } from 'zod';
import { baseDiagnostics, indexBatch, keyStats, normalizeByGroup } from './shared.ts';
import {
  CreditInputError,
  type CreditResult,
  type FlowGrpoOptions,
  flowGrpoOptionsSchema,
  type StepRow,
} from './types.ts';

export interface FlowGrpoDetails {
  [column: string]: Float64Array;
  /** R: the trajectory's final outcome reward, carried by each of its samples. */
  outcome: Float64Array;
}

/**
 * Flow-GRPO: in-the-flow planner training of AgentFlow (Li et al., "In-the-Flow Agentic System
 * Optimization for Effective Planning and Tool Use", arXiv:2510.05592). Every planner turn is one
 * sample carrying its trajectory's final outcome R; `A = (R - mean) / (std_s + eps)` within the
 * group (all turns of the G rollouts of one question); no discounting; a group with a single value
 * gets mean 0 and std 1.
 *
 * Input: `outcomeReward` on at least one row of each trajectory (rows that carry it must agree).
 * Options: `normalizeOver` ('turns', as the reference code: a trajectory with 3 turns counts 3
 * times; 'trajectories', as the paper writes it: over the G trajectory rewards).
 */
export function flowGrpo(
  rows: readonly StepRow[],
  options: z.input<typeof flowGrpoOptionsSchema> = {},
): CreditResult<FlowGrpoDetails> {
  const opts: FlowGrpoOptions = flowGrpoOptionsSchema.parse(options);
  const batch = indexBatch(rows);
  const { order, trajectoryStart } = batch;
  const trajectoryOutcome = new Float64Array(batch.nTrajectories);
  for (let t = 0; t < batch.nTrajectories; t++) {
    let seen = -1;
    for (let p = trajectoryStart[t]; p < trajectoryStart[t + 1]; p++) {
      const i = order[p];
      const r = rows[i].outcomeReward;
      if (r === undefined) continue;
      if (typeof r !== 'number' || !Number.isFinite(r)) {
        throw new CreditInputError(i, 'outcomeReward', `expected a finite number, got ${JSON.stringify(r)}`);
      }
      if (seen >= 0 && r !== trajectoryOutcome[t]) {
        throw new CreditInputError(
          i,
          'outcomeReward',
          `${r} differs from ${trajectoryOutcome[t]} on row ${seen} of the same trajectory; expected one outcome per trajectory`,
        );
      }
      trajectoryOutcome[t] = r;
      seen = i;
    }
    if (seen < 0) {
      const last = order[trajectoryStart[t + 1] - 1];
      throw new CreditInputError(
        last,
        'outcomeReward',
        "missing: Flow-GRPO needs the trajectory's final outcome on at least one of its rows",
      );
    }
  }
  const outcome = new Float64Array(batch.n);
  for (let i = 0; i < batch.n; i++) outcome[i] = trajectoryOutcome[batch.rowTrajectory[i]];
  const stats =
    opts.normalizeOver === 'turns'
      ? keyStats(outcome, batch.rowGroup, batch.nGroups, 1)
      : keyStats(trajectoryOutcome, batch.trajectoryGroup, batch.nGroups, 1);
  const advantages = normalizeByGroup(outcome, batch.rowGroup, stats, 'mean_std_norm');
  return {
    estimator: 'flow-grpo',
    advantages,
    details: { outcome },
    diagnostics: baseDiagnostics(batch, trajectoryOutcome, advantages),
  };
}
