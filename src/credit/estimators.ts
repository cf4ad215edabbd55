/**
 * Every estimator by name, with its options schema, for callers that pick one at run time.
 */
import type { z } from 'zod';
import { flowGrpo } from './flow-grpo.ts';
import { gigpo } from './gigpo.ts';
import { grpo } from './grpo.ts';
import { hgpo } from './hgpo.ts';
import { igpo } from './igpo.ts';
import { rloo } from './rloo.ts';
import {
  type BaseDiagnostics,
  type DetailColumns,
  type EstimatorName,
  flowGrpoOptionsSchema,
  gigpoOptionsSchema,
  grpoOptionsSchema,
  hgpoOptionsSchema,
  igpoOptionsSchema,
  rlooOptionsSchema,
  type StepRow,
} from './types.ts';

/** An estimator with its options schema, for callers that pick one by name (CLI, trainer). */
export interface Estimator {
  name: EstimatorName;
  /** The options schema (defaults filled in by parse). */
  options: z.ZodObject;
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
