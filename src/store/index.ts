/**
 * The trajectory store's public API (see store.ts for a usage sketch).
 */

export type { StepAdvantage, StoreBackend, StoreReader, TrajectoryStore } from './api.ts';
export { decodeLogprobs, decodeTokens, encodeLogprobs, encodeTokens } from './blobs.ts';
export { type CheckFinding, type CheckReport, checkStore, formatCheckReport } from './check.ts';
export {
  exportJsonl,
  type ImportOptions,
  type ImportRow,
  type ImportSummary,
  importRowSchema,
  importRows,
  parseJsonl,
  parseJsonlFile,
  stepToJson,
} from './jsonl.ts';
export { isPostgresUrl, PgStore } from './postgres/store.ts';
export type {
  GroupAdvantage,
  MetricRow,
  ResumePoint,
  TrainingRow,
  TrajectoryFilter,
  TrajectoryMatch,
} from './queries.ts';
export { migrate, migrations, SCHEMA_VERSION } from './schema.ts';
export {
  ServedLog,
  type ServedRolloutInfo,
  type ServedRolloutRow,
  type ServedStepInput,
  type ServedStepRow,
} from './served.ts';
export { type OpenOptions, openSqliteStore, openStore, SqliteStore } from './store.ts';
export type * from './types.ts';
export type { WriteOptions } from './writer.ts';
