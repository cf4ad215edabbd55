/**
 * One part of the learning benchmark (`npm run bench -- --suite learning [--only <part>]`): it
 * trains one SFT checkpoint, then every method of the part from that same checkpoint with the same
 * environment-step budget, for each seed, and reports final evaluations and curves.
 */

export type LearningPartName = 'household' | 'search' | 'agentflow';

export interface LearningContext {
  /** Seeds of the RL runs (the SFT checkpoint is shared by all of them). */
  seeds: number[];
  /**
   * A scratch folder for the part's stores and checkpoints (outside the repo). It may hold the
   * runs of an earlier, killed benchmark: a part resumes them (`train(..., { resume: true })`).
   */
  dir: string;
  log: (line: string) => void;
}

/** A learning curve: an evaluation metric against environment steps used so far. */
export interface LearningCurve {
  method: string;
  seed: number;
  metric: string;
  points: { envSteps: number; value: number }[];
}

export interface LearningPartResult {
  /**
   * The metrics of this part, one value per seed (the JSON stores their mean and the
   * per-seed values): household_grpo_unseen, household_gigpo_unseen, household_hgpo_unseen,
   * household_best_unseen, search_grpo_f1, search_igpo_f1, agentflow_sft_acc, agentflow_flowgrpo_acc.
   */
  metrics: Record<string, number[]>;
  /** The table: one row per method, each column's per-seed values (success, f1, exact_match...). */
  table: { method: string; columns: Record<string, number[]> }[];
  curves: LearningCurve[];
  /** Markdown: conditions (model, budget, SFT result), and where a target is missed, the diagnosis. */
  notes: string;
  /** CPU seconds (process.cpuUsage) the part used. */
  cpuSeconds: number;
}

export interface LearningPart {
  name: LearningPartName;
  run(ctx: LearningContext): Promise<LearningPartResult>;
}
