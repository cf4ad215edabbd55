/**
 * The store as the rest of stepwise sees it: one interface, two backends. `SqliteStore` (one
 * file, the default) and `PgStore` (a PostgreSQL database, for runs spread over machines) both
 * implement it, synchronously, so the trainer, viewer and CLI do not know which one they hold.
 * `openStore(location)` picks the backend from the location (see store.ts).
 */
import type { CheckReport } from './check.ts';
import type {
  GroupAdvantage,
  MetricRow,
  ResumePoint,
  TrainingRow,
  TrajectoryFilter,
  TrajectoryMatch,
} from './queries.ts';
import type {
  AdvantageRecord,
  CheckpointInfo,
  GroupInfo,
  IterationInfo,
  IterationInput,
  Json,
  MetricPoint,
  RunInfo,
  RunStatus,
  StepDetail,
  TrajectoryRef,
} from './types.ts';
import type { WriteOptions } from './writer.ts';

/** Which engine holds a store. */
export type StoreBackend = 'sqlite' | 'postgres';

/** An advantage to add to a stored step, named by the step's keys. */
export type StepAdvantage = { groupId: string; trajectoryId: string; stepIndex: number } & AdvantageRecord;

/** Every read of the store. Each sees whole iterations only (an iteration is one transaction). */
export interface StoreReader {
  runs(): RunInfo[];
  run(runId: string): RunInfo | undefined;
  /** The last iteration of a run that was written whole, or undefined. */
  lastCompleteIteration(runId: string): number | undefined;
  /** Where a resumed run starts: the next iteration and the newest checkpoint at or before the last complete one. */
  resumePoint(runId: string): ResumePoint;
  iterations(runId: string): IterationInfo[];
  groups(runId: string, iteration: number): GroupInfo[];
  /** A trajectory's steps in order, with tool calls and advantages; throws when it does not exist. */
  trajectory(ref: TrajectoryRef): StepDetail[];
  /** The steps of one iteration in write order; with `estimator`, each with its stored advantage. */
  trainingRows(runId: string, iteration: number, estimator?: string): TrainingRow[];
  metricNames(runId: string): string[];
  metrics(runId: string): MetricRow[];
  metricMax(runId: string, name: string): number | undefined;
  metricSeries(runId: string, name: string): MetricPoint[];
  findTrajectories(runId: string, filter: TrajectoryFilter): TrajectoryMatch[];
  taskKinds(runId: string): Array<{ taskType: string | null; split: string }>;
  groupAdvantages(ref: { runId: string; iteration: number; groupId: string }): GroupAdvantage[];
  checkpoints(runId: string): CheckpointInfo[];
  /** Every step (of all runs, one run or one iteration) with tool calls and advantages, in write order. */
  allSteps(filter?: { runId?: string; iteration?: number }): Iterable<StepDetail>;
}

/** An open store: the reads, the writes, `check`, transactions and `close`. */
export interface TrajectoryStore extends StoreReader {
  readonly backend: StoreBackend;
  /** Where it is: a file path, or a PostgreSQL URL without its password. */
  readonly path: string;
  readonly readonly: boolean;
  createRun(runId: string, config?: Json, status?: RunStatus): void;
  setRunStatus(runId: string, status: RunStatus): void;
  /** Writes one whole iteration in one transaction; throws (writing nothing) on a bad input. */
  writeIteration(runId: string, input: IterationInput, options?: WriteOptions): void;
  /** Adds or replaces one estimator's advantages of stored steps, all or nothing. */
  writeAdvantages(runId: string, iteration: number, rows: readonly StepAdvantage[]): void;
  /** Adds or replaces metrics of an iteration (e.g. an evaluation after the update). */
  writeMetrics(runId: string, iteration: number, metrics: Record<string, number>): void;
  /** Records where the weights of an iteration were saved (resumePoint returns it). */
  addCheckpoint(runId: string, iteration: number, path: string, info?: Json): void;
  /**
   * Runs `body` in one transaction: its writes commit together or not at all, and its reads see
   * one snapshot of a store being written (the viewer answers each request inside one). Nests.
   */
  transaction<T>(body: () => T): T;
  /** The store's integrity and invariants (`stepwise store check`). */
  check(): CheckReport;
  close(): void;
}
