/**
 * The tool policy of a run, and `ToolRunner`, the one door through which an agent calls tools:
 * it checks the policy, runs the tool, and writes an audit record for every call, denied ones too.
 */
import { z } from 'zod';
import { errorResult, truncate } from './define.ts';
import type { AuditRecord, Tool, ToolContext, ToolResult } from './types.ts';

export const ToolPolicy = z.object({
  /** Names of the tools agents may call; omitted = every tool given to the runner. */
  allowed: z.array(z.string()).optional(),
  /** Calls allowed per trajectory, by tool name ('*' = any tool without its own entry). */
  callsPerTrajectory: z.record(z.string(), z.number().int().min(0)).default({}),
  /** Calls allowed per trajectory over all tools together. */
  totalCallsPerTrajectory: z.number().int().min(0).optional(),
  /** Longest argument JSON accepted (characters); longer calls are denied. */
  maxArgumentChars: z.number().int().positive().default(20_000),
  /** Output cap applied on top of each tool's own (characters). */
  maxOutputChars: z.number().int().positive().optional(),
});
export type ToolPolicy = z.output<typeof ToolPolicy>;
export type ToolPolicyInput = z.input<typeof ToolPolicy>;

export interface ToolRunnerOptions {
  policy?: ToolPolicyInput;
  /** Called with each audit record as it is made (the trajectory store's writer, say). */
  onAudit?: (record: AuditRecord) => void;
}

/** Calls tools for one trajectory at a time under a policy; `reset()` starts the next trajectory. */
export class ToolRunner {
  readonly policy: ToolPolicy;
  readonly tools: ReadonlyMap<string, Tool>;
  /** Audit records of the current trajectory, in call order. */
  audit: AuditRecord[] = [];
  private counts = new Map<string, number>();
  private total = 0;
  private readonly onAudit?: (record: AuditRecord) => void;

  constructor(tools: Tool[], options: ToolRunnerOptions = {}) {
    this.policy = ToolPolicy.parse(options.policy ?? {});
    this.tools = new Map(tools.map((t) => [t.name, t]));
    if (this.tools.size !== tools.length) throw new Error('ToolRunner: two tools share a name');
    for (const name of this.policy.allowed ?? []) {
      if (!this.tools.has(name)) {
        throw new Error(
          `ToolRunner: policy allows "${name}" but no such tool was given (have: ${[...this.tools.keys()].join(', ')})`,
        );
      }
    }
    this.onAudit = options.onAudit;
  }

  /** The tools the policy lets agents see. */
  get allowedTools(): Tool[] {
    const allowed = this.policy.allowed;
    return [...this.tools.values()].filter((t) => !allowed || allowed.includes(t.name));
  }

  /** Runs one call. Never throws: denials and failures are error results (and audit records). */
  async call(name: string, args: unknown, ctx: ToolContext = {}): Promise<ToolResult> {
    const startedAt = Date.now();
    const started = performance.now();
    const argsText = safeJson(args);
    const denied = this.check(name, argsText);
    let result: ToolResult;
    if (denied) result = errorResult('policy_denied', denied, started);
    else {
      this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      this.total++;
      const tool = this.tools.get(name)!;
      try {
        result = await tool.execute(args as never, ctx);
      } catch (err) {
        // The interface says tools do not throw; a tool that does still must not break the agent loop.
        result = errorResult(
          'tool_error',
          `${name} failed: ${(err as Error)?.message ?? String(err)}`,
          started,
        );
      }
      const cap = this.policy.maxOutputChars;
      if (cap !== undefined && result.output.length > cap) {
        result = { ...result, output: truncate(result.output, cap).text, truncated: true };
      }
    }
    const record: AuditRecord = {
      tool: name,
      arguments: argsText.slice(0, this.policy.maxArgumentChars),
      startedAt,
      durationMs: result.durationMs,
      ok: result.ok,
      errorKind: result.errorKind,
      truncated: result.truncated,
      outputChars: result.output.length,
    };
    this.audit.push(record);
    this.onAudit?.(record);
    return result;
  }

  /** Start the next trajectory: budgets restart, the audit list empties, stateful tools reset. */
  async reset(): Promise<void> {
    this.counts.clear();
    this.total = 0;
    this.audit = [];
    await Promise.all([...this.tools.values()].map((t) => t.reset?.()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.tools.values()].map((t) => t.close?.()));
  }

  /** Why the call is denied, or undefined when it may run. */
  private check(name: string, argsText: string): string | undefined {
    const p = this.policy;
    if (!this.tools.has(name)) {
      return `unknown tool "${name}" (available: ${this.allowedTools.map((t) => t.name).join(', ') || 'none'})`;
    }
    if (p.allowed && !p.allowed.includes(name)) return `tool "${name}" is not allowed in this run`;
    if (argsText.length > p.maxArgumentChars) {
      return `arguments of ${argsText.length} characters exceed the limit of ${p.maxArgumentChars}`;
    }
    const budget = p.callsPerTrajectory[name] ?? p.callsPerTrajectory['*'];
    const used = this.counts.get(name) ?? 0;
    if (budget !== undefined && used >= budget) {
      return `call budget of "${name}" is used up (${budget} per trajectory)`;
    }
    if (p.totalCallsPerTrajectory !== undefined && this.total >= p.totalCallsPerTrajectory) {
      return `tool call budget is used up (${p.totalCallsPerTrajectory} per trajectory)`;
    }
    return undefined;
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return String(value);
  }
}
