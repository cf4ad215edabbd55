/**
 * The credit module's types: the step row it reads, each estimator's options (zod schemas whose
 * defaults are ALGORITHMS.md's), and the result every estimator returns.
 */
import { z } from 'zod';

/** A JSON value: what a structured anchor may be. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * The raw observation a step's decision was made on, without history: text, or a structured
 * value (compared by deep equality).
 */
export type Anchor = JsonValue;

/**
 * One agent decision, with ALGORITHMS.md's field names. Only active steps have rows.
 * Rows of a trajectory are ordered by `stepIndex`; the batch itself may be in any order.
 */
export interface StepRow {
  /** The task instance: all G rollouts of a group start from the same seed and state. */
  groupId: string | number;
  /** The rollout; unique inside its group. */
  trajectoryId: string | number;
  /** Position of the step in its trajectory (ascending; gaps allowed). */
  stepIndex: number;
  anchor: Anchor;
  /** Reward the environment returned for this step. */
  envReward: number;
  /** The response was well formed. */
  valid: boolean;
  /** Sum of `envReward` over the trajectory; derived from the rows when absent. */
  episodeReturn?: number;
  /** IGPO: v_t, mean log-prob of the ground-truth answer before this turn (every turn). */
  valueBefore?: number;
  /** IGPO: the answer turn's F1; Flow-GRPO: the trajectory's final outcome (1 correct, else 0). */
  outcomeReward?: number;
  /** IGPO: this turn gave the final answer (the trajectory's last turn). */
  answered?: boolean;
  /** Agent name (planner, executor, ...), informational. */
  role?: string;
  /**
   * Run and iteration, as a store export writes them: a group is the G rollouts of one task in
   * one iteration, so rows of different runs or iterations never share a group even when their
   * groupIds are equal (the store keeps groupIds unique per iteration only).
   */
  runId?: string;
  iteration?: number;
}

const id = z.union([z.string(), z.number().finite()]);

/**
 * A step row as read from JSON (the CLI, a store export). Extra fields are kept, so that a row
 * passes through `stepwise credit` unchanged apart from the fields it adds.
 */
export const stepRowSchema = z.looseObject({
  groupId: id,
  trajectoryId: id,
  stepIndex: z.number().int().nonnegative(),
  anchor: z.json(),
  envReward: z.number().finite(),
  valid: z.boolean(),
  episodeReturn: z.number().finite().optional(),
  valueBefore: z.number().finite().optional(),
  outcomeReward: z.number().finite().optional(),
  answered: z.boolean().optional(),
  role: z.string().optional(),
  runId: z.string().optional(),
  iteration: z.number().int().nonnegative().optional(),
});

export const estimatorNames = ['grpo', 'gigpo', 'hgpo', 'igpo', 'flow-grpo', 'rloo'] as const;
export type EstimatorName = (typeof estimatorNames)[number];

/** `mean_norm`: x - mean; `mean_std_norm`: (x - mean) / (std + eps). */
export const normModeSchema = z.enum(['mean_norm', 'mean_std_norm']);
export type NormMode = z.infer<typeof normModeSchema>;

const gamma = (d: number) => z.number().min(0).max(1).default(d);
/**
 * Where the invalid-action penalty goes. 'in-return' (the references' rule, ALGORITHMS.md): into
 * R_t and S before the group normalization. 'after-normalization' (stepwise's deviation, see
 * docs/ARCHITECTURE.md): R_t and S stay the env's, and `coef` is subtracted from the finished
 * advantage of invalid rows; so in a group where nobody succeeded the valid rows get 0, not the
 * positive advantage the normalized penalty would hand them.
 */
export const penaltyPlacementSchema = z.enum(['in-return', 'after-normalization']);
export type PenaltyPlacement = z.infer<typeof penaltyPlacementSchema>;

const penalty = {
  /** Invalid-action penalty on (subtracted from R_t and S of rows with `valid = false`). */
  penalty: z.boolean().default(true),
  penaltyCoef: z.number().nonnegative().default(0.1),
  penaltyPlacement: penaltyPlacementSchema.default('in-return'),
};

export const grpoOptionsSchema = z.strictObject({
  mode: normModeSchema.default('mean_std_norm'),
  /** Statistics over every step row's score (reference) or over trajectories, each once. */
  statistics: z.enum(['steps', 'trajectories']).default('steps'),
  ...penalty,
});

export const gigpoOptionsSchema = z.strictObject({
  mode: normModeSchema.default('mean_std_norm'),
  gamma: gamma(0.95),
  /** w in A = A_E + w * A_S. */
  stepWeight: z.number().default(1),
  /** Similarity threshold in (0,1) for text anchors (reference 0.95; 0.9 for search); off = exact. */
  similarity: z.number().gt(0).lt(1).optional(),
  ...penalty,
});

export const hgpoOptionsSchema = z.strictObject({
  mode: normModeSchema.default('mean_std_norm'),
  gamma: gamma(0.95),
  /** H: past steps visible in the prompt; levels k = 1 .. H+1. */
  history: z.number().int().nonnegative().default(2),
  /** Level weights w_k = (k+1)^alpha. */
  alpha: z.number().default(1),
  /** Add GiGPO's episode advantage as a level-0 item with weight 1. */
  baseGroup: z.boolean().default(false),
  /**
   * How the items make A: 'mean' (the reference) is the weighted mean of the non-zero items;
   * 'episode-plus' is GiGPO's rule with the hierarchy as its step term, A = A_E + the weighted
   * mean of the non-zero step-level items (k >= 1); `baseGroup` is then implied.
   */
  combine: z.enum(['mean', 'episode-plus']).default('mean'),
  ...penalty,
});

export const igpoOptionsSchema = z.strictObject({
  /** IG_t = exp(v_{t+1}) - exp(v_t) (prob_diff) or v_{t+1} - v_t (log_prob_diff). */
  infoGain: z.enum(['prob_diff', 'log_prob_diff']).default('prob_diff'),
  /** Normalize outcomes and gains in separate pools, or in one joint pool. */
  norm: z.enum(['separate', 'joint']).default('separate'),
  gamma: gamma(1),
  /** Format penalty: a malformed (valid = false) final response gets -penaltyCoef. */
  penalty: z.boolean().default(true),
  penaltyCoef: z.number().nonnegative().default(2),
});

export const flowGrpoOptionsSchema = z.strictObject({
  /** Statistics over pooled turns (reference code) or over the G trajectory rewards (paper). */
  normalizeOver: z.enum(['turns', 'trajectories']).default('turns'),
});

export const rlooOptionsSchema = z.strictObject({ ...penalty });

export type GrpoOptions = z.infer<typeof grpoOptionsSchema>;
export type GigpoOptions = z.infer<typeof gigpoOptionsSchema>;
export type HgpoOptions = z.infer<typeof hgpoOptionsSchema>;
export type IgpoOptions = z.infer<typeof igpoOptionsSchema>;
export type FlowGrpoOptions = z.infer<typeof flowGrpoOptionsSchema>;
export type RlooOptions = z.infer<typeof rlooOptionsSchema>;

/** Summary of a list of numbers (group sizes, gains, ...). */
export interface Summary {
  count: number;
  mean: number;
  min: number;
  max: number;
}

/** What every estimator reports besides advantages. */
export interface BaseDiagnostics {
  rows: number;
  groups: number;
  trajectories: number;
  /** Trajectories per group. */
  groupSize: Summary;
  /** Groups whose episode scores are all equal (they get zero episode advantage). */
  uniformGroups: number;
  /** Advantages over all rows. */
  advantage: Summary;
}

/**
 * Columns of per-row details: a number per row, or per level (HGPO) either a number per row or one
 * number for every row (the level's weight). NaN marks "not applicable to this row".
 */
export type DetailColumns = Record<
  string,
  Float64Array | Int32Array | Array<Float64Array | Int32Array | number>
>;

/**
 * An estimator's output. `advantages[i]` and every column of `details` belong to `rows[i]`
 * (input order). Details are columns (typed arrays), not one object per row, so that a million
 * rows cost a few arrays; NaN marks "not applicable to this row".
 */
export interface CreditResult<D extends DetailColumns, G extends BaseDiagnostics = BaseDiagnostics> {
  estimator: EstimatorName;
  advantages: Float64Array;
  details: D;
  diagnostics: G;
}

/** A row (or field of a row) the estimator cannot use; `row` is its index in the input. */
export class CreditInputError extends Error {
  constructor(
    readonly row: number,
    readonly field: string,
    /** What was wrong and what was expected, without the row prefix. */
    readonly detail: string,
  ) {
    super(`row ${row}: field '${field}': ${detail}`);
    this.name = 'CreditInputError';
  }
}
