/**
 * The tool interface every stepwise tool implements. Pinned early because envs, agents and the
 * store all depend on it; the tools owner may add fields but keeps these.
 */
import type { z } from 'zod';

/** Limits a tool enforces on every call. */
export interface ToolLimits {
  /** Wall-clock limit of one call, in milliseconds. */
  timeMs: number;
  /** Longest output kept, in characters; longer output is cut and `truncated` is set. */
  outputChars: number;
}

export interface ToolContext {
  /** Aborts the call; the tool returns an error result of kind 'aborted'. */
  signal?: AbortSignal;
}

/** Why a call failed; `ok: false` results always carry one. */
export type ToolErrorKind =
  | 'bad_arguments'
  | 'timeout'
  | 'memory'
  | 'tool_error'
  | 'policy_denied'
  | 'aborted';

/** What a call returns. Failures are results too: a tool never throws through the agent loop. */
export interface ToolResult {
  ok: boolean;
  output: string;
  error?: string;
  errorKind?: ToolErrorKind;
  durationMs: number;
  truncated: boolean;
}

export interface Tool<S extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  schema: S;
  limits: ToolLimits;
  execute(input: z.input<S>, ctx?: ToolContext): Promise<ToolResult>;
  /** Start a new episode: drop state kept across calls (a Python interpreter's globals, say). */
  reset?(): Promise<void>;
  /** Release workers and other resources held by the tool. */
  close?(): Promise<void>;
}

/** One tool call as the audit trail (and the trajectory store's tool_calls table) records it. */
export interface AuditRecord {
  tool: string;
  /** The arguments as the agent gave them (JSON text, cut to the policy's argument limit). */
  arguments: string;
  startedAt: number;
  durationMs: number;
  ok: boolean;
  errorKind?: ToolErrorKind;
  truncated: boolean;
  outputChars: number;
}
