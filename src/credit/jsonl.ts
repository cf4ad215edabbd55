/**
 * Step rows as JSON lines in, the same lines with `advantage` and `credit` added out: what
 * `stepwise credit` does, without the file system, so that it is usable (and testable) alone.
 */
import { parseOrThrow } from '../util/zod.ts';
import { rowDetails } from './details.ts';
import { estimators } from './estimators.ts';
import {
  type BaseDiagnostics,
  CreditInputError,
  type DetailColumns,
  type EstimatorName,
  type StepRow,
  stepRowSchema,
} from './types.ts';

/** A line of the input that cannot be used; `line` counts from 1. */
export class CreditLineError extends Error {
  constructor(
    readonly line: number,
    readonly field: string | undefined,
    detail: string,
  ) {
    super(`line ${line}${field === undefined ? '' : `: field '${field}'`}: ${detail}`);
    this.name = 'CreditLineError';
  }
}

/**
 * Run an estimator over JSONL text. Blank lines are skipped; every other line must be a step-row
 * object. Returns the output text (one line per input row, same order) and the diagnostics.
 * Throws a CreditLineError naming the first bad line and field; nothing is produced then.
 */
export function creditJsonl(
  text: string,
  estimator: EstimatorName,
  options: Record<string, unknown> = {},
): { output: string; diagnostics: BaseDiagnostics; rows: number } {
  const objects: Array<Record<string, unknown>> = [];
  const lineOf: number[] = [];
  const lines = text.split('\n');
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l].trim();
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new CreditLineError(l + 1, undefined, `not valid JSON (${(err as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new CreditLineError(l + 1, undefined, 'expected a JSON object (one step row per line)');
    }
    parseOrThrow(stepRowSchema, value, ({ field, message }) => {
      const missing = field !== '' && (value as Record<string, unknown>)[field] === undefined;
      return new CreditLineError(
        l + 1,
        field || undefined,
        missing ? 'missing (required in every row)' : message,
      );
    });
    objects.push(value as Record<string, unknown>);
    lineOf.push(l + 1);
  }
  let result: { advantages: Float64Array; details: DetailColumns; diagnostics: BaseDiagnostics };
  try {
    result = estimators[estimator].run(objects as unknown as StepRow[], options);
  } catch (err) {
    if (err instanceof CreditInputError) throw new CreditLineError(lineOf[err.row], err.field, err.detail);
    throw err;
  }
  const out: string[] = new Array(objects.length);
  for (let i = 0; i < objects.length; i++) {
    out[i] = JSON.stringify({
      ...objects[i],
      advantage: result.advantages[i],
      credit: rowDetails(result.details, i),
    });
  }
  return {
    output: out.length > 0 ? `${out.join('\n')}\n` : '',
    diagnostics: result.diagnostics,
    rows: objects.length,
  };
}
