/**
 * IGPO: the information gains of tool turns and the answer's outcome, normalized per group and
 * accumulated backwards.
 */
import type { z } from 'zod';
import { baseDiagnostics, EPS, indexBatch, keyStats, numberField, summarize } from './shared.ts';
import {
  type BaseDiagnostics,
  CreditInputError,
  type CreditResult,
  type IgpoOptions,
  igpoOptionsSchema,
  type StepRow,
  type Summary,
} from './types.ts';

export interface IgpoDetails {
  [column: string]: Float64Array;
  /** v_t: the turn's valueBefore. */
  value: Float64Array;
  /** IG_t of a tool turn (NaN on the answer turn and on turns of a trajectory without answer). */
  gain: Float64Array;
  /** r_t before normalization: IG_t, or the outcome on the last turn; NaN where dropped. */
  reward: Float64Array;
  /** rhat_t: r_t normalized in its group's pool (0 where dropped). */
  normalizedReward: Float64Array;
}

export interface IgpoDiagnostics extends BaseDiagnostics {
  /** The information gains that entered the pools. */
  gain: Summary;
  /** Trajectories that ended without an answer (their gains dropped). */
  noAnswerTrajectories: number;
  /** Final responses that got the format penalty. */
  formatPenalties: number;
}

/** Variance floor of IGPO's sigma = sqrt(var + 1e-8). */
const VAR_FLOOR = 1e-8;

/**
 * IGPO: Information Gain-based Policy Optimization (Wang et al., "Information Gain-based Policy
 * Optimization: A Simple and Effective Approach for Multi-Turn LLM Agents", arXiv:2510.14967).
 * Each tool turn t of a trajectory earns its information gain `IG_t = exp(v_{t+1}) - exp(v_t)`
 * (v = `valueBefore`), the answer turn earns its outcome (`outcomeReward`, the F1); rewards are
 * z-normalized per group (std_p, sigma = sqrt(var + 1e-8), a pool of one gets sigma 1) and
 * accumulated backwards: `Adv_t = rhat_t + gamma * Adv_{t+1}`.
 *
 * Input: `valueBefore` on every turn; `answered: true` and `outcomeReward` on the answer turn,
 * which must be the trajectory's last. A trajectory whose last turn has no `answered: true` ended
 * without an answer: its gains are dropped and only its outcome (0, or the penalty) counts.
 * Options (ALGORITHMS.md defaults): `infoGain` ('prob_diff'; 'log_prob_diff': v_{t+1} - v_t),
 * `norm` ('separate' pools for outcomes and gains; 'joint': one pool), `gamma` (1), `penalty`
 * (true) with `penaltyCoef` (2): a final response with `valid: false` gets -penaltyCoef.
 */
export function igpo(
  rows: readonly StepRow[],
  options: z.input<typeof igpoOptionsSchema> = {},
): CreditResult<IgpoDetails, IgpoDiagnostics> {
  const opts: IgpoOptions = igpoOptionsSchema.parse(options);
  const batch = indexBatch(rows);
  const { n, order, trajectoryStart } = batch;
  const value = new Float64Array(n);
  for (let i = 0; i < n; i++) value[i] = numberField(rows, i, 'valueBefore');

  const gain = new Float64Array(n).fill(Number.NaN);
  const reward = new Float64Array(n).fill(Number.NaN);
  // Pool of each reward: outcomes of group g in pool g, gains in pool nGroups + g ('separate')
  // or pool g ('joint'); -1 for a dropped gain.
  const pool = new Int32Array(n).fill(-1);
  const trajectoryOutcome = new Float64Array(batch.nTrajectories);
  let noAnswer = 0;
  let penalties = 0;
  const gainPoolOffset = opts.norm === 'separate' ? batch.nGroups : 0;
  for (let t = 0; t < batch.nTrajectories; t++) {
    const lo = trajectoryStart[t];
    const hi = trajectoryStart[t + 1];
    const g = batch.trajectoryGroup[t];
    const last = order[hi - 1];
    for (let p = lo; p < hi - 1; p++) {
      if (rows[order[p]].answered === true) {
        throw new CreditInputError(
          order[p],
          'answered',
          'true on a turn that is not the last of its trajectory; expected the answer turn to end it',
        );
      }
    }
    const answered = rows[last].answered === true;
    const malformed = rows[last].valid === false;
    let outcome: number;
    if (malformed && opts.penalty) {
      outcome = -opts.penaltyCoef;
      penalties++;
    } else if (answered) {
      outcome = numberField(rows, last, 'outcomeReward');
    } else {
      outcome = 0;
    }
    if (answered) {
      for (let p = lo; p < hi - 1; p++) {
        const i = order[p];
        const next = order[p + 1];
        gain[i] =
          opts.infoGain === 'prob_diff' ? Math.exp(value[next]) - Math.exp(value[i]) : value[next] - value[i];
        reward[i] = gain[i];
        pool[i] = gainPoolOffset + g;
      }
    } else {
      noAnswer++;
    }
    reward[last] = outcome;
    pool[last] = g;
    trajectoryOutcome[t] = outcome;
  }

  const nPools = opts.norm === 'separate' ? 2 * batch.nGroups : batch.nGroups;
  const stats = keyStats(reward, pool, nPools, 0);
  const normalizedReward = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = pool[i];
    if (k < 0) continue;
    const c = stats.count[k];
    const sigma = c <= 1 ? 1 : Math.sqrt(stats.sumSq[k] / c + VAR_FLOOR);
    normalizedReward[i] = (reward[i] - stats.mean[k]) / (sigma + EPS);
  }

  const advantages = new Float64Array(n);
  for (let t = 0; t < batch.nTrajectories; t++) {
    let next = 0;
    for (let p = trajectoryStart[t + 1] - 1; p >= trajectoryStart[t]; p--) {
      const i = order[p];
      next = normalizedReward[i] + opts.gamma * next;
      advantages[i] = next;
    }
  }
  return {
    estimator: 'igpo',
    advantages,
    details: { value, gain, reward, normalizedReward },
    diagnostics: {
      ...baseDiagnostics(batch, trajectoryOutcome, advantages),
      gain: summarize(gain),
      noAnswerTrajectories: noAnswer,
      formatPenalties: penalties,
    },
  };
}
