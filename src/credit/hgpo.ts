import type { z } from 'zod';
import { episodeAdvantage } from './grpo.ts';
import {
  baseDiagnostics,
  discountedReturns,
  EPS,
  envRewards,
  episodeReturns,
  episodeScores,
  indexBatch,
  internAnchors,
  invalidRows,
  keyStats,
  normalize,
  PairIds,
} from './shared.ts';
import {
  type BaseDiagnostics,
  type CreditResult,
  type HgpoOptions,
  hgpoOptionsSchema,
  type StepRow,
} from './types.ts';

export interface HgpoDetails {
  [column: string]: Float64Array | Float64Array[] | Int32Array[];
  /** R_t: the discounted step return, after the invalid-action penalty. */
  return: Float64Array;
  /**
   * `level[k][i]`: row i's item a_k at level k (k = 0 is the base group, when on); NaN when the
   * row has no level-k group of two or more members. An item equal to 0 is dropped from A.
   */
  level: Float64Array[];
  /** `levelGroupSize[k][i]`: members of row i's level-k group (0 when the row has no level k). */
  levelGroupSize: Int32Array[];
}

export interface HgpoDiagnostics extends BaseDiagnostics {
  /** `levelCoverage[k]`: share of rows with a level-k group of two or more members (k = 1 .. H+1). */
  levelCoverage: number[];
  /** `levelGroups[k]`: number of level-k groups kept (two or more members). */
  levelGroups: number[];
  /** Share of rows left with no item (A = 0). */
  noItemShare: number;
}

/**
 * HGPO: Hierarchy-of-Groups Policy Optimization (He et al., "Hierarchy-of-Groups Policy
 * Optimization for Long-Horizon Agentic Tasks", arXiv:2602.22817). A step joins, for every
 * k = 1 .. min(H+1, s+1), the level-k group of rows of its group whose last k anchors are equal;
 * groups of one are dropped; in each kept group R_t is normalized (std_p), giving items a_k;
 * `A = sum(w_k a_k) / (sum(w_k) + eps)` over the non-zero items, `w_k = (k+1)^alpha`; 0 if none.
 *
 * Options (ALGORITHMS.md defaults): `history` H (2), `alpha` (1), `baseGroup` (false: when on,
 * GiGPO's episode advantage joins as a k = 0 item of weight 1), `mode` ('mean_std_norm'),
 * `gamma` (0.95), `penalty` (true) with `penaltyCoef` (0.1).
 */
export function hgpo(
  rows: readonly StepRow[],
  options: z.input<typeof hgpoOptionsSchema> = {},
): CreditResult<HgpoDetails, HgpoDiagnostics> {
  const opts: HgpoOptions = hgpoOptionsSchema.parse(options);
  const batch = indexBatch(rows);
  const { n, order, trajectoryStart } = batch;
  const reward = envRewards(batch);
  const invalid = invalidRows(batch);
  const coef = opts.penalty ? opts.penaltyCoef : 0;
  const trajectoryReturn = episodeReturns(batch, reward);
  const returns = discountedReturns(batch, reward, invalid, opts.gamma, coef);
  const levels = opts.history + 1;

  // Level-k keys built incrementally: the tuple of the last k anchors of step s is the level-(k-1)
  // tuple of step s-1 followed by anchor s, so key_k(s) = id(key_{k-1}(s-1), anchor_s), all integers.
  const anchors = internAnchors(batch);
  const key: Int32Array[] = [];
  const ids: PairIds[] = [];
  for (let k = 0; k <= levels; k++) {
    key.push(new Int32Array(k === 0 ? 0 : n).fill(-1));
    ids.push(new PairIds(anchors.count));
  }
  for (let t = 0; t < batch.nTrajectories; t++) {
    for (let p = trajectoryStart[t]; p < trajectoryStart[t + 1]; p++) {
      const i = order[p];
      const a = anchors.id[i];
      key[1][i] = ids[1].id(batch.rowGroup[i], a);
      const prev = p > trajectoryStart[t] ? order[p - 1] : -1;
      for (let k = 2; k <= levels && prev >= 0 && key[k - 1][prev] >= 0; k++) {
        key[k][i] = ids[k].id(key[k - 1][prev], a);
      }
    }
  }

  const level: Float64Array[] = [];
  const levelGroupSize: Int32Array[] = [];
  const num = new Float64Array(n);
  const den = new Float64Array(n);
  const levelCoverage: number[] = [0];
  const levelGroups: number[] = [0];

  // k = 0: the base group (GiGPO's episode advantage), weight 1.
  const base = new Float64Array(n).fill(Number.NaN);
  const baseSize = new Int32Array(n);
  if (opts.baseGroup) {
    const score = episodeScores(batch, trajectoryReturn, invalid, coef);
    base.set(episodeAdvantage(batch, trajectoryReturn, score, opts.mode, 'steps'));
    const groupRows = new Int32Array(batch.nGroups);
    for (let i = 0; i < n; i++) groupRows[batch.rowGroup[i]]++;
    for (let i = 0; i < n; i++) {
      baseSize[i] = groupRows[batch.rowGroup[i]];
      if (base[i] !== 0) {
        num[i] += base[i];
        den[i] += 1;
      }
    }
    levelCoverage[0] = 1;
    levelGroups[0] = batch.nGroups;
  }
  level.push(base);
  levelGroupSize.push(baseSize);

  for (let k = 1; k <= levels; k++) {
    const stats = keyStats(returns, key[k], ids[k].size, 0);
    const items = new Float64Array(n).fill(Number.NaN);
    const sizes = new Int32Array(n);
    const w = (k + 1) ** opts.alpha;
    let covered = 0;
    for (let i = 0; i < n; i++) {
      const g = key[k][i];
      if (g < 0) continue;
      const size = stats.count[g];
      sizes[i] = size;
      if (size < 2) continue;
      covered++;
      const a = normalize(returns[i], stats.mean[g], stats.std[g], opts.mode);
      items[i] = a;
      if (a !== 0) {
        num[i] += w * a;
        den[i] += w;
      }
    }
    let kept = 0;
    for (let g = 0; g < ids[k].size; g++) if (stats.count[g] >= 2) kept++;
    level.push(items);
    levelGroupSize.push(sizes);
    levelCoverage.push(n === 0 ? 0 : covered / n);
    levelGroups.push(kept);
  }

  const advantages = new Float64Array(n);
  let noItem = 0;
  for (let i = 0; i < n; i++) {
    if (den[i] === 0) noItem++;
    else advantages[i] = num[i] / (den[i] + EPS);
  }
  return {
    estimator: 'hgpo',
    advantages,
    details: { return: returns, level, levelGroupSize },
    diagnostics: {
      ...(baseDiagnostics(batch, trajectoryReturn, advantages) satisfies BaseDiagnostics),
      levelCoverage,
      levelGroups,
      noItemShare: n === 0 ? 0 : noItem / n,
    },
  };
}
