/**
 * The credit-assignment estimators: pure functions from step rows to advantages, as
 * ALGORITHMS.md defines them. This file is the module's public surface.
 */

export {
  currentDetails,
  type DetailField,
  type DetailLevels,
  type DetailPeers,
  type DetailSchema,
  detailSchema,
  detailSchemas,
  type RowDetails,
  rowDetails,
} from './details.ts';
export { codePointLength, similarityRatio } from './difflib.ts';
export { type Estimator, estimators } from './estimators.ts';
export { type FlowGrpoDetails, flowGrpo } from './flow-grpo.ts';
export { type GigpoDetails, type GigpoDiagnostics, gigpo } from './gigpo.ts';
export { type GrpoDetails, grpo } from './grpo.ts';
export { type HgpoDetails, type HgpoDiagnostics, hgpo } from './hgpo.ts';
export { type IgpoDetails, type IgpoDiagnostics, igpo } from './igpo.ts';
export { CreditLineError, creditJsonl } from './jsonl.ts';
export { type RlooDetails, rloo } from './rloo.ts';
export * from './types.ts';
