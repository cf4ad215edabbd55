/**
 * What an estimator's per-row details mean, written once beside the estimators: `rowDetails` (row
 * i of the detail columns as the plain object that is stored and printed), each estimator's
 * `DetailSchema` (labelled fields, per-level items, the peer rows that share a group) that a
 * viewer renders without knowing any estimator, and `currentDetails`, which reads details stored
 * by an older stepwise in today's shape.
 */
import type { DetailColumns, EstimatorName } from './types.ts';

/** A row's details as a plain object: numbers, per-level lists; null = not applicable. */
export type RowDetails = Record<string, number | null | Array<number | null>>;

/** Row i of the detail columns as a plain object (NaN, "not applicable", becomes null). */
export function rowDetails(details: DetailColumns, i: number): RowDetails {
  const out: RowDetails = {};
  const value = (v: number) => (Number.isNaN(v) ? null : v);
  for (const [name, column] of Object.entries(details)) {
    // per level: a column per row, or one number for every row (HGPO's weights); a column of a
    // level that does not exist (HGPO's base group when off) is empty: null
    out[name] = Array.isArray(column)
      ? column.map((c) => (typeof c === 'number' ? value(c) : i < c.length ? value(c[i]) : null))
      : value(column[i]);
  }
  return out;
}

/** One number of a row's details, labelled. */
export interface DetailField {
  key: string;
  /** What it is, in words. */
  label: string;
  /** Its symbol; what follows '_' is a subscript ("A_E", "v_t+1"). */
  symbol?: string;
  /** Decimals to show, when the default would hide what matters (small gains). */
  digits?: number;
  /** Not stored on the row: the detail of this name on the next step of the trajectory. */
  fromNextStep?: string;
}

/**
 * Per-level items (a hierarchy of groups): `value[k]` is the row's item at level k, `size[k]` the
 * members of its level-k group, `weight[k]` the level's weight (null: the level is not used in
 * this run). An item counts toward the advantage when it exists and is not 0.
 */
export interface DetailLevels {
  value: string;
  size: string;
  weight: string;
  /** Name of level 0 when it is used. */
  baseName: string;
}

/** The rows of the same group that a row's advantage was measured against. */
export interface DetailPeers {
  title: string;
  /**
   * The peers share this detail's value (GiGPO's step-group number); a row that does not carry it
   * (stored before it existed) matches on its anchor. Absent: every row of the group.
   */
  sameAs?: string;
  /** The row itself is one of the peers. */
  includeSelf: boolean;
  /** What a row is called in the list ("step", "turn"). */
  unit: string;
  /** Each peer's details shown beside its advantage. */
  fields: DetailField[];
  /** Shown when the row has no peer. */
  none?: string;
  /** The mean of this detail over the peers. */
  mean?: DetailField;
}

/** How an estimator's row details explain its advantage. */
export interface DetailSchema {
  fields: DetailField[];
  levels?: DetailLevels;
  peers?: DetailPeers;
}

const R_t: DetailField = { key: 'return', label: 'discounted return', symbol: 'R_t' };
const score: DetailField = { key: 'score', label: 'episode score', symbol: 'S' };
const penalty: DetailField = {
  key: 'penalty',
  label: 'invalid-action penalty, taken off after normalization',
};
const outcome: DetailField = { key: 'outcome', label: 'shared outcome', symbol: 'R' };

/** Each estimator's details, as its function in this folder returns them. */
export const detailSchemas: Record<EstimatorName, DetailSchema> = {
  grpo: { fields: [score, penalty] },
  gigpo: {
    fields: [
      { key: 'episode', label: 'episode part', symbol: 'A_E' },
      { key: 'step', label: 'step part', symbol: 'A_S' },
      R_t,
      { key: 'stepGroupSize', label: 'step-group size' },
      penalty,
    ],
    peers: {
      title: 'Step group (same anchor in the other rollouts)',
      sameAs: 'stepGroup',
      includeSelf: false,
      unit: 'step',
      fields: [
        { key: 'return', label: '', symbol: 'R_t' },
        { key: 'step', label: '', symbol: 'A_S' },
      ],
      none: 'alone (A_S = 0)',
    },
  },
  hgpo: {
    fields: [R_t, penalty],
    levels: { value: 'level', size: 'levelGroupSize', weight: 'levelWeight', baseName: '0 (base)' },
  },
  igpo: {
    fields: [
      { key: 'value', label: 'value before', symbol: 'v_t' },
      { key: 'valueAfter', label: 'value after', symbol: 'v_t+1', fromNextStep: 'value' },
      { key: 'gain', label: 'information gain', digits: 6 },
      { key: 'reward', label: 'reward', symbol: 'r_t', digits: 6 },
      { key: 'normalizedReward', label: 'normalized reward', symbol: 'r̂_t' },
    ],
  },
  'flow-grpo': {
    fields: [outcome],
    peers: {
      title: "The group's turn samples",
      includeSelf: true,
      unit: 'turn',
      fields: [{ key: 'outcome', label: '', symbol: 'R' }],
      mean: { key: 'outcome', label: 'mean outcome', symbol: 'R' },
    },
  },
  rloo: {
    fields: [score, { key: 'baseline', label: "mean return of the group's other trajectories" }, penalty],
  },
};

/** The schema of an estimator by name; undefined for a name this folder does not know. */
export function detailSchema(estimator: string): DetailSchema | undefined {
  return Object.hasOwn(detailSchemas, estimator) ? detailSchemas[estimator as EstimatorName] : undefined;
}

type Stored = { [key: string]: unknown };

/**
 * Details as an older stepwise stored them, in today's shape. HGPO's rows carried `alpha` (added
 * by the trainer) instead of their level weights: w_0 = 1 where the base group has members,
 * w_k = (k+1)^alpha.
 */
export function currentDetails(estimator: string, details: Stored): Stored {
  if (estimator !== 'hgpo' || details.levelWeight !== undefined || !Array.isArray(details.level)) {
    return details;
  }
  const { alpha: stored, ...rest } = details;
  const alpha = typeof stored === 'number' ? stored : 1;
  const sizes = Array.isArray(details.levelGroupSize) ? details.levelGroupSize : [];
  const base = typeof sizes[0] === 'number' && sizes[0] > 0;
  return {
    ...rest,
    levelWeight: details.level.map((_, k) => (k === 0 ? (base ? 1 : null) : (k + 1) ** alpha)),
  };
}
