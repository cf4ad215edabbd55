/** HGPO: items from a hierarchy of groups of shared anchor histories, averaged with level weights. */
import type { z } from 'zod';
import { episodeAdvantage } from './grpo.ts';
import {
  baseDiagnostics,
  discountedReturns,
  EPS,
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
} from './shared.ts';
import {
  type BaseDiagnostics,
  type CreditResult,
  type HgpoOptions,
  hgpoOptionsSchema,
  type StepRow,
} from './types.ts';

export interface HgpoDetails {
  [column: string]: Float64Array | Float64Array[] | Int32Array[] | number[];
  /** R_t: the discounted step return, after the invalid-action penalty. */
  return: Float64Array;
  /** Taken off A after normalization on an invalid row (penaltyPlacement 'after-normalization'; else 0). */
  penalty: Float64Array;
  /**
   * `level[k][i]`: row i's item a_k at level k; NaN when the row has no level-k group of two or
   * more members. An item equal to 0 is dropped from A. k = 0 is the base group, whose columns
   * are empty when `baseGroup` is off and `combine` is 'mean'.
   */
  level: Float64Array[];
  /** `levelGroupSize[k][i]`: members of row i's level-k group (0 when the row has no level k). */
  levelGroupSize: Int32Array[];
  /** `levelWeight[k]`: w_k = (k+1)^alpha, the same for every row; w_0 = 1, NaN when there is no base group. */
  levelWeight: number[];
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
 * GiGPO's episode advantage joins as a k = 0 item of weight 1), `combine` ('mean'; 'episode-plus'
 * is GiGPO's A_E + A_S with the hierarchy's weighted mean of its step-level items as A_S, the base
 * item then always present), `mode` ('mean_std_norm'),
 * `gamma` (0.95), `penalty` (true) with `penaltyCoef` (0.1) and `penaltyPlacement`
 * ('in-return'; 'after-normalization' subtracts coef from A instead of from R_t and S).
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
  const { inReturn: coef, after } = penaltyCoefs(opts);
  const trajectoryReturn = episodeReturns(batch, reward);
  const returns = discountedReturns(batch, reward, invalid, opts.gamma, coef);
  const levels = opts.history + 1;

  const anchors = internAnchors(batch);
  const level: Float64Array[] = [];
  const levelGroupSize: Int32Array[] = [];
  // sum(w_k a_k) over the step levels (k >= 1) accumulates in `advantages` itself; the base item
  // and sum(w_k) are added at the end from the items
  const advantages = new Float64Array(n);
  const withBase = opts.baseGroup || opts.combine === 'episode-plus';
  const weights: number[] = [1];
  const levelCoverage: number[] = [0];
  const levelGroups: number[] = [0];

  // k = 0: the base group (GiGPO's episode advantage), weight 1; empty columns when off.
  if (withBase) {
    const score = episodeScores(batch, trajectoryReturn, invalid, coef);
    const base = episodeAdvantage(batch, trajectoryReturn, score, opts.mode, 'steps', score);
    const baseSize = new Int32Array(n);
    const groupRows = new Int32Array(batch.nGroups);
    for (let i = 0; i < n; i++) groupRows[batch.rowGroup[i]]++;
    for (let i = 0; i < n; i++) baseSize[i] = groupRows[batch.rowGroup[i]];
    levelCoverage[0] = 1;
    levelGroups[0] = batch.nGroups;
    level.push(base);
    levelGroupSize.push(baseSize);
  } else {
    level.push(new Float64Array(0));
    levelGroupSize.push(new Int32Array(0));
  }

  // Levels are built one after the other, with integer keys: the tuple of the last k anchors of
  // step s is the level-(k-1) tuple of step s-1 followed by anchor s, so
  // key_k(s) = number of the pair (key_{k-1}(s-1), anchor_s). A tuple is unique (its group a
  // singleton) when the level-(k-1) tuple of s-1 (its prefix) or of s (its suffix) is: such rows
  // get key -1 without being numbered, which skips most of the deeper levels' work.
  let prevKey = new Int32Array(n);
  let prevCount = new Int32Array(0);
  let prevGroups = 0;
  let key = new Int32Array(n);
  const prefix = new Int32Array(n);
  for (let k = 1; k <= levels; k++) {
    const sizes = new Int32Array(n);
    let groups: number;
    if (k === 1) {
      groups = groupPairs(batch.rowGroup, anchors.id, batch.nGroups, anchors.count, key);
    } else {
      prefix.fill(-1);
      for (let t = 0; t < batch.nTrajectories; t++) {
        for (let p = trajectoryStart[t] + k - 1; p < trajectoryStart[t + 1]; p++) {
          const i = order[p];
          sizes[i] = 1; // the row has a level-k tuple; a singleton unless numbered below
          const before = prevKey[order[p - 1]];
          const suffix = prevKey[i];
          if (before < 0 || suffix < 0 || prevCount[before] < 2 || prevCount[suffix] < 2) continue;
          prefix[i] = before;
        }
      }
      groups = groupPairs(prefix, anchors.id, prevGroups, anchors.count, key);
    }
    const stats = keyStats(returns, key, groups, 0);
    const items = new Float64Array(n).fill(Number.NaN);
    const w = (k + 1) ** opts.alpha;
    let covered = 0;
    let kept = 0;
    for (let g = 0; g < groups; g++) if (stats.count[g] >= 2) kept++;
    for (let i = 0; i < n; i++) {
      const g = key[i];
      if (g < 0) continue;
      const size = stats.count[g];
      sizes[i] = size;
      if (size < 2) continue;
      covered++;
      const a = normalize(returns[i], stats.mean[g], stats.std[g], opts.mode);
      items[i] = a;
      if (a !== 0) advantages[i] += w * a;
    }
    level.push(items);
    levelGroupSize.push(sizes);
    weights.push(w);
    levelCoverage.push(n === 0 ? 0 : covered / n);
    levelGroups.push(kept);
    // this level's keys become the next level's prefixes and suffixes
    [prevKey, key] = [key, prevKey];
    prevCount = stats.count as Int32Array<ArrayBuffer>;
    prevGroups = groups;
  }

  let noItem = 0;
  for (let i = 0; i < n; i++) {
    let den = 0; // sum(w_k) over the step levels' items that exist (not NaN) and are not 0
    for (let k = 1; k < level.length; k++) {
      const a = level[k][i];
      if (!Number.isNaN(a) && a !== 0) den += weights[k];
    }
    const base = withBase ? level[0][i] : 0;
    if (opts.combine === 'episode-plus') {
      if (den === 0 && base === 0) noItem++;
      advantages[i] = base + (den === 0 ? 0 : advantages[i] / (den + EPS));
    } else {
      if (base !== 0) {
        advantages[i] += base;
        den += weights[0];
      }
      if (den === 0) noItem++;
      else advantages[i] /= den + EPS;
    }
  }
  const penalty = penaltyAfter(advantages, invalid, after);
  return {
    estimator: 'hgpo',
    advantages,
    details: {
      penalty,
      return: returns,
      level,
      levelGroupSize,
      levelWeight: weights.map((w, k) => (k === 0 && !withBase ? Number.NaN : w)),
    },
    diagnostics: {
      ...baseDiagnostics(batch, trajectoryReturn, advantages),
      levelCoverage,
      levelGroups,
      noItemShare: n === 0 ? 0 : noItem / n,
    },
  };
}
