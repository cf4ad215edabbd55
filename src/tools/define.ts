/**
 * `defineTool` turns a plain async function into a `Tool` that keeps the interface's promises:
 * arguments are validated against the zod schema, failures (bad arguments, throws, timeouts,
 * aborts) come back as error results instead of exceptions, output is cut to the limit, and
 * every result carries its duration.
 */
import type { z } from 'zod';
import { withDeadline } from '../util/deadline.ts';
import { fieldIssues } from '../util/zod.ts';
import type { Tool, ToolContext, ToolErrorKind, ToolLimits, ToolResult } from './types.ts';

export const DEFAULT_LIMITS: ToolLimits = { timeMs: 10_000, outputChars: 8_000 };

/** Thrown inside a tool's `run` to report a failure of a given kind (default 'tool_error'). */
export class ToolFailure extends Error {
  constructor(
    message: string,
    readonly kind: ToolErrorKind = 'tool_error',
    /** Output produced before the failure (say, what the code printed before it timed out). */
    readonly output = '',
  ) {
    super(message);
    this.name = 'ToolFailure';
  }
}

export interface ToolSpec<S extends z.ZodType> {
  name: string;
  description: string;
  schema: S;
  limits?: Partial<ToolLimits>;
  /**
   * Does the work and returns the output text. `ctx.signal` fires when the time limit passes
   * or the caller aborts; tools that can stop early should listen to it. A tool that cannot be
   * interrupted is still answered on time: its late result is dropped.
   */
  run(input: z.output<S>, ctx: Required<ToolContext> & { limits: ToolLimits }): Promise<string>;
  reset?(): Promise<void>;
  close?(): Promise<void>;
}

export function defineTool<S extends z.ZodType>(spec: ToolSpec<S>): Tool<S> {
  const limits: ToolLimits = { ...DEFAULT_LIMITS, ...spec.limits };
  return {
    name: spec.name,
    description: spec.description,
    schema: spec.schema,
    limits,
    reset: spec.reset,
    close: spec.close,
    async execute(input, ctx = {}) {
      const started = performance.now();
      const parsed = spec.schema.safeParse(input);
      if (!parsed.success) {
        return errorResult('bad_arguments', describeZodError(spec.name, parsed.error), started);
      }
      return runWithDeadline(limits, ctx.signal, started, (signal) =>
        spec.run(parsed.data, { signal, limits }),
      );
    },
  };
}

/**
 * Runs `work` under the time limit and the caller's signal (`withDeadline`), so the caller gets an
 * answer within the limit even if `work` ignores its signal; every outcome is a `ToolResult`.
 */
export async function runWithDeadline(
  limits: ToolLimits,
  callerSignal: AbortSignal | undefined,
  started: number,
  work: (signal: AbortSignal) => Promise<string>,
): Promise<ToolResult> {
  if (callerSignal?.aborted) return errorResult('aborted', 'the call was aborted before it started', started);
  try {
    const output = await withDeadline(
      limits.timeMs,
      work,
      callerSignal,
      () => new ToolFailure(`timed out after ${limits.timeMs} ms`, 'timeout'),
    );
    return finishResult(output, limits.outputChars, started);
  } catch (err) {
    if (callerSignal?.aborted && err === callerSignal.reason) {
      return errorResult('aborted', 'the call was aborted', started);
    }
    return failureResult(err, limits.outputChars, started);
  }
}

/** Cut `text` to `maxChars`, saying how much was dropped so the agent knows the output is partial. */
export function truncate(text: string, maxChars: number): { text: string; truncated: boolean } {
  if (text.length <= maxChars) return { text, truncated: false };
  const note = `\n... [output truncated: ${text.length - maxChars} more characters]`;
  // A limit too small to hold the note gets a plain cut.
  if (note.length * 2 > maxChars) return { text: text.slice(0, maxChars), truncated: true };
  return { text: text.slice(0, maxChars - note.length) + note, truncated: true };
}

export function finishResult(output: string, maxChars: number, started: number): ToolResult {
  const { text, truncated } = truncate(output, maxChars);
  return { ok: true, output: text, durationMs: performance.now() - started, truncated };
}

export function errorResult(
  kind: ToolErrorKind,
  error: string,
  started: number,
  output = '',
  maxChars = Number.POSITIVE_INFINITY,
): ToolResult {
  const { text, truncated } = truncate(output, maxChars);
  return {
    ok: false,
    output: text,
    error,
    errorKind: kind,
    durationMs: performance.now() - started,
    truncated,
  };
}

function failureResult(err: unknown, maxChars: number, started: number): ToolResult {
  if (err instanceof ToolFailure) return errorResult(err.kind, err.message, started, err.output, maxChars);
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return errorResult('tool_error', message, started);
}

/**
 * "python: argument `code`: expected string, received number" — every zod issue, joined by '; '.
 * Agents read it as a tool's error, so it names each bad argument the way the prompts name tools.
 */
export function describeZodError(tool: string, error: z.ZodError): string {
  return fieldIssues(error)
    .map(({ field, message }) => `${tool}: ${field ? `argument \`${field}\`` : 'arguments'}: ${message}`)
    .join('; ');
}

/** The text an agent reads for a result: the output, or the error and what was printed before it. */
export function observationText(result: ToolResult): string {
  if (result.ok) return result.output;
  const head = `Error (${result.errorKind ?? 'tool_error'}): ${result.error ?? 'failed'}`;
  return result.output ? `${head}\n${result.output}` : head;
}
