// The credit-assignment estimators, by name. Each is a pure function of step rows and options;
// see ALGORITHMS.md for their definitions.
import type { z } from 'zod';
import { flowGrpo } from './flow-grpo.ts';
import { gigpo } from './gigpo.ts';
import { grpo } from './grpo.ts';
import { hgpo } from './hgpo.ts';
import { igpo } from './igpo.ts';
import { rloo } from './rloo.ts';
import {
  type BaseDiagnostics,
  type EstimatorName,
  flowGrpoOptionsSchema,
  gigpoOptionsSchema,
  grpoOptionsSchema,
  hgpoOptionsSchema,
  igpoOptionsSchema,
  rlooOptionsSchema,
  type StepRow,
} from './types.ts';

export { similarityRatio } from './difflib.ts';
export { type FlowGrpoDetails, flowGrpo } from './flow-grpo.ts';
export { type GigpoDetails, type GigpoDiagnostics, gigpo } from './gigpo.ts';
export { type GrpoDetails, grpo } from './grpo.ts';
export { type HgpoDetails, type HgpoDiagnostics, hgpo } from './hgpo.ts';
export { type IgpoDetails, type IgpoDiagnostics, igpo } from './igpo.ts';
export { type RlooDetails, rloo } from './rloo.ts';
export * from './types.ts';

/** Columns of per-row details: a number per row, or one such column per HGPO level. */
export type DetailColumns = Record<string, Float64Array | Int32Array | Float64Array[] | Int32Array[]>;

/** An estimator with its options schema, for callers that pick one by name (CLI, trainer). */
export interface Estimator {
  name: EstimatorName;
  options: z.ZodType<Record<string, unknown>, Record<string, unknown>>;
  run(
    rows: readonly StepRow[],
    options?: Record<string, unknown>,
  ): { advantages: Float64Array; details: DetailColumns; diagnostics: BaseDiagnostics };
}

export const estimators: Record<EstimatorName, Estimator> = {
  grpo: { name: 'grpo', options: grpoOptionsSchema, run: grpo },
  gigpo: { name: 'gigpo', options: gigpoOptionsSchema, run: gigpo },
  hgpo: { name: 'hgpo', options: hgpoOptionsSchema, run: hgpo },
  igpo: { name: 'igpo', options: igpoOptionsSchema, run: igpo },
  'flow-grpo': { name: 'flow-grpo', options: flowGrpoOptionsSchema, run: flowGrpo },
  rloo: { name: 'rloo', options: rlooOptionsSchema, run: rloo },
};
