/**
 * Pieces every estimator shares, written once: indexing a batch into groups and trajectories,
 * the discounted return, the invalid-action penalty, group statistics and normalization.
 *
 * Everything works on typed arrays indexed by row, group or trajectory number, so that a batch
 * of a million rows costs a handful of arrays rather than a million small objects.
 */
import {
  type Anchor,
  type BaseDiagnostics,
  CreditInputError,
  type JsonValue,
  type NormMode,
  type StepRow,
  type Summary,
} from './types.ts';

/** ALGORITHMS.md's eps, added to the standard deviation before dividing. */
export const EPS = 1e-6;

/** A batch of rows indexed by group and trajectory; row i is `rows[i]` of the input. */
export interface Batch {
  rows: readonly StepRow[];
  n: number;
  nGroups: number;
  nTrajectories: number;
  /** Group number of each row (numbered in order of first appearance). */
  rowGroup: Int32Array;
  /** Trajectory number of each row. */
  rowTrajectory: Int32Array;
  /** Group number of each trajectory. */
  trajectoryGroup: Int32Array;
  /** Rows of trajectory t in step order: `order[trajectoryStart[t] .. trajectoryStart[t + 1])`. */
  order: Int32Array;
  trajectoryStart: Int32Array;
}

/**
 * Index rows by group (groupId, within its run and iteration when given) and by trajectory
 * (trajectoryId within its group), and order each trajectory by stepIndex. Fails on a duplicate
 * stepIndex or a missing id.
 */
export function indexBatch(rows: readonly StepRow[]): Batch {
  const n = rows.length;
  const rowGroup = new Int32Array(n);
  const rowTrajectory = new Int32Array(n);
  const groupNumber = new Map<string | number, number>();
  const trajectoryNumber: Array<Map<string | number, number>> = [];
  const trajectoryGroup: number[] = [];
  const trajectoryCount: number[] = [];
  // Rows of a trajectory usually come together: remember the last one to skip the lookups.
  let last: StepRow | undefined;
  let lastG = -1;
  let lastT = -1;
  for (let i = 0; i < n; i++) {
    const row = rows[i];
    if (
      last !== undefined &&
      row.groupId === last.groupId &&
      row.trajectoryId === last.trajectoryId &&
      row.iteration === last.iteration &&
      row.runId === last.runId
    ) {
      rowGroup[i] = lastG;
      rowTrajectory[i] = lastT;
      trajectoryCount[lastT]++;
      continue;
    }
    checkId(row.groupId, i, 'groupId');
    checkId(row.trajectoryId, i, 'trajectoryId');
    // A group is one task in one iteration of one run (see StepRow.runId).
    const gid =
      row.runId === undefined && row.iteration === undefined
        ? row.groupId
        : `${row.runId ?? ''}\u0000${row.iteration ?? ''}\u0000${typeof row.groupId}:${row.groupId}`;
    let g = groupNumber.get(gid);
    if (g === undefined) {
      g = groupNumber.size;
      groupNumber.set(gid, g);
      trajectoryNumber.push(new Map());
    }
    const inGroup = trajectoryNumber[g];
    let t = inGroup.get(row.trajectoryId);
    if (t === undefined) {
      t = trajectoryGroup.length;
      inGroup.set(row.trajectoryId, t);
      trajectoryGroup.push(g);
      trajectoryCount.push(0);
    }
    trajectoryCount[t]++;
    rowGroup[i] = g;
    rowTrajectory[i] = t;
    last = row;
    lastG = g;
    lastT = t;
  }
  const nTrajectories = trajectoryGroup.length;
  // Counting sort of rows by trajectory (stable: input order inside a trajectory) ...
  const trajectoryStart = new Int32Array(nTrajectories + 1);
  for (let t = 0; t < nTrajectories; t++) trajectoryStart[t + 1] = trajectoryStart[t] + trajectoryCount[t];
  const fill = trajectoryStart.slice(0, nTrajectories);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[fill[rowTrajectory[i]]++] = i;
  // ... then by stepIndex inside each trajectory (already sorted in the usual case).
  for (let t = 0; t < nTrajectories; t++) {
    const lo = trajectoryStart[t];
    const hi = trajectoryStart[t + 1];
    let sorted = true;
    for (let p = lo; p < hi; p++) {
      const s = rows[order[p]].stepIndex;
      if (!Number.isInteger(s) || s < 0) {
        throw new CreditInputError(order[p], 'stepIndex', `expected an integer >= 0, got ${String(s)}`);
      }
      if (p > lo && s <= rows[order[p - 1]].stepIndex) sorted = false;
    }
    if (!sorted) {
      const slice = Array.from(order.subarray(lo, hi)).sort(
        (a, b) => rows[a].stepIndex - rows[b].stepIndex || a - b,
      );
      order.set(slice, lo);
      for (let p = lo + 1; p < hi; p++) {
        if (rows[order[p]].stepIndex === rows[order[p - 1]].stepIndex) {
          const r = rows[order[p]];
          throw new CreditInputError(
            order[p],
            'stepIndex',
            `duplicate stepIndex ${r.stepIndex} in trajectory ${String(r.trajectoryId)} of group ${String(r.groupId)} (also on row ${order[p - 1]})`,
          );
        }
      }
    }
  }
  return {
    rows,
    n,
    nGroups: groupNumber.size,
    nTrajectories,
    rowGroup,
    rowTrajectory,
    trajectoryGroup: Int32Array.from(trajectoryGroup),
    order,
    trajectoryStart,
  };
}

function checkId(v: unknown, row: number, field: string): void {
  if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) return;
  throw new CreditInputError(
    row,
    field,
    `expected a string or a number, got ${JSON.stringify(v) ?? 'nothing'}`,
  );
}

/** A finite number field of a row, or a CreditInputError naming it. */
export function numberField(rows: readonly StepRow[], i: number, field: keyof StepRow): number {
  const v = rows[i][field];
  if (v === undefined) throw new CreditInputError(i, field, 'missing; expected a finite number');
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new CreditInputError(i, field, `expected a finite number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The env rewards, checked to be numbers. */
export function envRewards(batch: Batch): Float64Array {
  const out = new Float64Array(batch.n);
  for (let i = 0; i < batch.n; i++) out[i] = numberField(batch.rows, i, 'envReward');
  return out;
}

/** Which rows are invalid (`valid === false`), checked to be booleans. */
export function invalidRows(batch: Batch): Uint8Array {
  const out = new Uint8Array(batch.n);
  for (let i = 0; i < batch.n; i++) {
    const v = batch.rows[i].valid;
    if (v === false) out[i] = 1;
    else if (v !== true)
      throw new CreditInputError(i, 'valid', `expected true or false, got ${JSON.stringify(v)}`);
  }
  return out;
}

/**
 * Discounted step return per row: `R_t = envReward_t + gamma * R_{t+1}` backwards over each
 * trajectory, then the invalid-action penalty (`coef`, 0 for none) subtracted from invalid rows
 * only, after discounting, so it does not reach earlier steps.
 */
export function discountedReturns(
  batch: Batch,
  reward: Float64Array,
  invalid: Uint8Array,
  gamma: number,
  coef: number,
): Float64Array {
  const out = new Float64Array(batch.n);
  const { order, trajectoryStart } = batch;
  for (let t = 0; t < batch.nTrajectories; t++) {
    let next = 0;
    for (let p = trajectoryStart[t + 1] - 1; p >= trajectoryStart[t]; p--) {
      const i = order[p];
      next = reward[i] + gamma * next;
      out[i] = invalid[i] ? next - coef : next;
    }
  }
  return out;
}

/**
 * Each trajectory's episodeReturn: the rows' `episodeReturn` when given (rows of a trajectory
 * must agree), else the sum of its env rewards.
 */
export function episodeReturns(batch: Batch, reward: Float64Array): Float64Array {
  const out = new Float64Array(batch.nTrajectories);
  const { rows, order, trajectoryStart } = batch;
  for (let t = 0; t < batch.nTrajectories; t++) {
    let sum = 0;
    let given: number | undefined;
    let givenRow = -1;
    for (let p = trajectoryStart[t]; p < trajectoryStart[t + 1]; p++) {
      const i = order[p];
      sum += reward[i];
      if (rows[i].episodeReturn === undefined) continue;
      const v = numberField(rows, i, 'episodeReturn');
      if (given === undefined) {
        given = v;
        givenRow = i;
      } else if (v !== given) {
        throw new CreditInputError(
          i,
          'episodeReturn',
          `${v} differs from ${given} on row ${givenRow} of the same trajectory; expected one value per trajectory`,
        );
      }
    }
    out[t] = given ?? sum;
  }
  return out;
}

/**
 * The invalid-action penalty's coefficient for each place it may go: `inReturn` enters R_t and S
 * (the references' rule), `after` is subtracted from the finished advantage (`penaltyAfter`).
 */
export function penaltyCoefs(opts: { penalty: boolean; penaltyCoef: number; penaltyPlacement: string }): {
  inReturn: number;
  after: number;
} {
  const coef = opts.penalty ? opts.penaltyCoef : 0;
  return opts.penaltyPlacement === 'after-normalization'
    ? { inReturn: 0, after: coef }
    : { inReturn: coef, after: 0 };
}

/**
 * `advantages[i] -= coef` on invalid rows, in place: the penalty placed after normalization.
 * Returns what was taken off each row (the `penalty` detail, so the details still add up to A).
 */
export function penaltyAfter(advantages: Float64Array, invalid: Uint8Array, coef: number): Float64Array {
  const penalty = new Float64Array(advantages.length);
  if (coef !== 0)
    for (let i = 0; i < advantages.length; i++)
      if (invalid[i]) {
        advantages[i] -= coef;
        penalty[i] = coef;
      }
  return penalty;
}

/** Episode score per row: `S = episodeReturn`, minus `coef` on invalid rows. */
export function episodeScores(
  batch: Batch,
  trajectoryReturn: Float64Array,
  invalid: Uint8Array,
  coef: number,
) {
  const out = new Float64Array(batch.n);
  for (let i = 0; i < batch.n; i++) {
    const s = trajectoryReturn[batch.rowTrajectory[i]];
    out[i] = invalid[i] ? s - coef : s;
  }
  return out;
}

/** Count, mean and standard deviation of values by key; two passes for accuracy. */
export interface KeyStats {
  count: Int32Array;
  mean: Float64Array;
  std: Float64Array;
  /** Sum of squared deviations from the mean (for estimators that define their own variance). */
  sumSq: Float64Array;
}

/**
 * Statistics of `values[i]` grouped by `key[i]` (0 .. nKeys-1; negative keys are skipped).
 * `ddof` 1 gives std_s (divide by n-1), 0 gives std_p (divide by n); a key with fewer than
 * ddof+1 values gets std 0.
 */
export function keyStats(values: Float64Array, key: Int32Array, nKeys: number, ddof: 0 | 1): KeyStats {
  const count = new Int32Array(nKeys);
  const mean = new Float64Array(nKeys);
  const std = new Float64Array(nKeys);
  const len = values.length;
  for (let i = 0; i < len; i++) {
    const k = key[i];
    if (k < 0) continue;
    count[k]++;
    mean[k] += values[i];
  }
  for (let k = 0; k < nKeys; k++) if (count[k] > 0) mean[k] /= count[k];
  for (let i = 0; i < len; i++) {
    const k = key[i];
    if (k < 0) continue;
    const d = values[i] - mean[k];
    std[k] += d * d;
  }
  const sumSq = std.slice();
  for (let k = 0; k < nKeys; k++) std[k] = count[k] > ddof ? Math.sqrt(std[k] / (count[k] - ddof)) : 0;
  return { count, mean, std, sumSq };
}

/** `mean_norm`: x - mean; `mean_std_norm`: (x - mean) / (std + eps). */
export function normalize(x: number, mean: number, std: number, mode: NormMode): number {
  return mode === 'mean_norm' ? x - mean : (x - mean) / (std + EPS);
}

/**
 * GRPO's normalization of each row's value by its group's statistics, where a group with a
 * single value gets mean 0 and std 1 (so the value passes through).
 */
export function normalizeByGroup(
  values: Float64Array,
  rowKey: Int32Array,
  stats: KeyStats,
  mode: NormMode,
  out = new Float64Array(values.length),
): Float64Array {
  for (let i = 0; i < values.length; i++) {
    const k = rowKey[i];
    out[i] =
      stats.count[k] <= 1
        ? normalize(values[i], 0, 1, mode)
        : normalize(values[i], stats.mean[k], stats.std[k], mode);
  }
  return out;
}

/** Count, mean, min and max, NaN values skipped. */
export function summarize(values: ArrayLike<number>): Summary {
  let count = 0;
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) continue;
    count++;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return count === 0 ? { count, mean: 0, min: 0, max: 0 } : { count, mean: sum / count, min, max };
}

/**
 * The diagnostics every estimator reports. `outcome[t]` is trajectory t's outcome (episode
 * return, or outcome reward): a group of two or more trajectories whose outcomes are all equal
 * is "uniform" and gets no episode advantage.
 */
export function baseDiagnostics(
  batch: Batch,
  outcome: Float64Array,
  advantages: Float64Array,
): BaseDiagnostics {
  const size = new Float64Array(batch.nGroups);
  const first = new Float64Array(batch.nGroups).fill(Number.NaN);
  const differs = new Uint8Array(batch.nGroups);
  for (let t = 0; t < batch.nTrajectories; t++) {
    const g = batch.trajectoryGroup[t];
    size[g]++;
    if (Number.isNaN(first[g])) first[g] = outcome[t];
    else if (first[g] !== outcome[t]) differs[g] = 1;
  }
  let uniformGroups = 0;
  for (let g = 0; g < batch.nGroups; g++) if (size[g] >= 2 && !differs[g]) uniformGroups++;
  return {
    rows: batch.n,
    groups: batch.nGroups,
    trajectories: batch.nTrajectories,
    groupSize: summarize(size),
    uniformGroups,
    advantage: summarize(advantages),
  };
}

/**
 * A string that is equal for equal anchors: the text itself, or, for a structured anchor, a
 * canonical JSON (object keys sorted) behind a NUL so that it can never equal a text anchor.
 */
export function anchorKey(anchor: Anchor): string {
  if (typeof anchor === 'string') return anchor.charCodeAt(0) === 0 ? `\u0000${anchor}` : anchor;
  return `\u0000${canonicalJson(anchor)}`;
}

function canonicalJson(v: JsonValue): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
}

/** Number each distinct anchor of the batch (exact equality); `id[i]` is row i's anchor number. */
export function internAnchors(batch: Batch): { id: Int32Array; count: number } {
  const ids = new Map<string, number>();
  const id = new Int32Array(batch.n);
  for (let i = 0; i < batch.n; i++) {
    const a = batch.rows[i].anchor;
    if (a === undefined)
      throw new CreditInputError(i, 'anchor', 'expected an anchor (text or JSON), got nothing');
    const key = anchorKey(a);
    let k = ids.get(key);
    if (k === undefined) {
      k = ids.size;
      ids.set(key, k);
    }
    id[i] = k;
  }
  return { id, count: ids.size };
}

/**
 * Number the distinct pairs (first[i], second[i]) of the rows whose `first` is >= 0, ordered by
 * `first`, then by first appearance; rows with a negative `first` get -1. Returns the count.
 *
 * A counting sort by `first` (0 .. firstRange-1), then one pass per bucket that stamps each
 * `second` value (0 .. secondRange-1) with the bucket that numbered it: O(n + firstRange +
 * secondRange) and sequential memory, where a hash table of pairs costs a cache miss per lookup
 * on a million rows. `out` may be `second` itself (each row reads its own entry before writing it).
 */
export function groupPairs(
  first: Int32Array,
  second: Int32Array,
  firstRange: number,
  secondRange: number,
  out: Int32Array = new Int32Array(first.length),
): number {
  const n = first.length;
  const start = new Int32Array(firstRange + 1);
  for (let i = 0; i < n; i++) if (first[i] >= 0) start[first[i] + 1]++;
  for (let f = 0; f < firstRange; f++) start[f + 1] += start[f];
  const sorted = new Int32Array(start[firstRange]);
  const fill = start.slice(0, firstRange);
  for (let i = 0; i < n; i++) {
    const f = first[i];
    if (f >= 0) sorted[fill[f]++] = i;
  }
  for (let i = 0; i < n; i++) if (first[i] < 0) out[i] = -1;
  const stamp = new Int32Array(secondRange).fill(-1);
  const idOf = new Int32Array(secondRange);
  let count = 0;
  for (let f = 0; f < firstRange; f++) {
    for (let p = start[f]; p < start[f + 1]; p++) {
      const i = sorted[p];
      const s = second[i];
      if (stamp[s] !== f) {
        stamp[s] = f;
        idOf[s] = count++;
      }
      out[i] = idOf[s];
    }
  }
  return count;
}
