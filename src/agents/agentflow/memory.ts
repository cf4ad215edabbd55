/**
 * AgentFlow's evolving memory: one record per turn, in order. Every module after the planner reads
 * it as text, so its rendering is part of the prompts (and of what the planner is trained on).
 */
import { truncate } from '../../tools/define.ts';

/** What one turn did: the tool, why (sub-goal), the call as written, and what came back. */
export interface MemoryRecord {
  turn: number;
  /** The tool the planner chose, as it wrote it ('' when the plan could not be parsed). */
  tool: string;
  subGoal: string;
  /** The call as run, `name({...})`, or what stopped it from running. */
  command: string;
  /** The tool's output (or error), cut to the memory's limit. */
  result: string;
  /** The tool cut its output or the memory cut the result. */
  truncated: boolean;
  /** The tool ran and succeeded. */
  ok: boolean;
}

export class Memory {
  readonly records: MemoryRecord[] = [];

  constructor(private readonly maxChars: number) {}

  /** Adds a turn's record, cutting the result to the memory's limit. */
  add(record: MemoryRecord): MemoryRecord {
    const cut = truncate(record.result, this.maxChars);
    const kept = { ...record, result: cut.text, truncated: record.truncated || cut.truncated };
    this.records.push(kept);
    return kept;
  }

  /** The memory as prompts show it. */
  render(): string {
    if (this.records.length === 0) return '(empty)';
    return this.records
      .map(
        (r) =>
          `[turn ${r.turn}] tool: ${r.tool || '(none)'}\nsub-goal: ${r.subGoal}\ncommand: ${r.command}\nresult: ${r.result}`,
      )
      .join('\n');
  }
}
