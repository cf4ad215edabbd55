/**
 * The trajectory store's own types. src/store imports nothing of stepwise's other folders
 * (DESIGN.md), so the step row and the tool-call record are defined here, with the field names
 * of ALGORITHMS.md's step rows and of src/tools' AuditRecord, so that values pass between the
 * areas unchanged.
 */

import type { Json } from '../util/json.ts';

export type { Json };

/**
 * The raw observation a step's decision was made on. Text for most envs; structured anchors are
 * kept as JSON and compared by deep equality by the estimators.
 */
export type Anchor = string | Json;

/** Why a tool call failed; the same words as src/tools' ToolErrorKind. */
export type ToolErrorKind =
  | 'bad_arguments'
  | 'timeout'
  | 'memory'
  | 'tool_error'
  | 'policy_denied'
  | 'aborted';

/** One tool call as the audit trail records it (the fields of src/tools' AuditRecord). */
export interface ToolCallRecord {
  tool: string;
  /** The arguments as the agent gave them (JSON text). */
  arguments: string;
  startedAt: number;
  durationMs: number;
  ok: boolean;
  errorKind?: ToolErrorKind;
  truncated: boolean;
  outputChars: number;
}

/** One estimator's output for a step, with the details that explain it (GiGPO parts, HGPO levels...). */
export interface AdvantageRecord {
  estimator: string;
  value: number;
  details?: Json;
}

export type RunStatus = 'running' | 'finished' | 'failed' | 'stopped';

// --- what a writer hands in -------------------------------------------------------------------

/** One agent decision, as written. Token arrays may be typed arrays or plain number arrays. */
export interface StepInput {
  stepIndex: number;
  /** The agent that made the decision ('agent' for single-agent loops; 'planner', 'executor'...). */
  role: string;
  anchor: Anchor;
  promptText: string;
  promptTokens: Int32Array | readonly number[];
  responseText: string;
  responseTokens: Int32Array | readonly number[];
  /** Behaviour log-probs, one per response token. */
  responseLogprobs: Float32Array | readonly number[];
  envReward: number;
  valid: boolean;
  done: boolean;
  /** Per-step extras (IGPO's valueBefore, outcomeReward, answered...). Keys must not shadow row fields. */
  extras?: Record<string, Json>;
  toolCalls?: readonly ToolCallRecord[];
  advantages?: readonly AdvantageRecord[];
}

/** One rollout of a task until done or a limit. */
export interface TrajectoryInput {
  trajectoryId: string;
  /** How it ended, in the env's words ('won', 'lost', 'turn_limit', 'answered'...). */
  outcome: string;
  won: boolean;
  /** Sum of envReward over the trajectory; computed from the steps when left out. */
  episodeReturn?: number;
  steps: readonly StepInput[];
}

/** The G trajectories rolled out from one task and seed in one iteration. */
export interface GroupInput {
  groupId: string;
  taskId: string;
  taskType?: string;
  seed: number;
  split: string;
  trajectories: readonly TrajectoryInput[];
}

/** Everything one iteration produced; written in one transaction. */
export interface IterationInput {
  iteration: number;
  groups: readonly GroupInput[];
  /** Metrics of this iteration (loss, KL, success rate...), written in the same transaction. */
  metrics?: Record<string, number>;
}

// --- what the queries return ------------------------------------------------------------------

export interface RunInfo {
  runId: string;
  config: Json;
  status: RunStatus;
  createdAt: number;
  updatedAt: number;
  /** Number of complete iterations stored. */
  iterations: number;
  lastIteration: number | undefined;
}

export interface IterationInfo {
  iteration: number;
  createdAt: number;
  groups: number;
  trajectories: number;
  steps: number;
  /** Share of trajectories won. */
  successRate: number;
  meanReturn: number;
  meanLength: number;
}

export interface TrajectoryInfo {
  trajectoryId: string;
  outcome: string;
  won: boolean;
  length: number;
  episodeReturn: number;
}

export interface GroupInfo {
  groupId: string;
  taskId: string;
  taskType: string | null;
  seed: number;
  split: string;
  trajectories: TrajectoryInfo[];
}

/**
 * One step row as read back: ALGORITHMS.md's fields plus the texts, tokens and run coordinates.
 * This is the unit of `store export` lines and of training batches.
 */
export interface StoredStepRow {
  runId: string;
  iteration: number;
  groupId: string;
  taskId: string;
  taskType: string | null;
  seed: number;
  split: string;
  trajectoryId: string;
  outcome: string;
  won: boolean;
  episodeReturn: number;
  stepIndex: number;
  role: string;
  anchor: Anchor;
  promptText: string;
  promptTokens: Int32Array;
  responseText: string;
  responseTokens: Int32Array;
  responseLogprobs: Float32Array;
  envReward: number;
  valid: boolean;
  done: boolean;
  extras: Record<string, Json>;
}

/** A step row with what the viewer shows beside it. */
export interface StepDetail extends StoredStepRow {
  toolCalls: ToolCallRecord[];
  advantages: AdvantageRecord[];
}

/** Where a trajectory lives: the keys a writer gave it. */
export interface TrajectoryRef {
  runId: string;
  iteration: number;
  groupId: string;
  trajectoryId: string;
}

export interface MetricPoint {
  iteration: number;
  value: number;
}

export interface CheckpointInfo {
  runId: string;
  iteration: number;
  path: string;
  createdAt: number;
  info: Json;
}
