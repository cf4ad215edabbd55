/**
 * Tasks as JSON Lines files: `readJsonl` (a schema per line, errors naming file, line and field),
 * `readTasks`, `writeTasks`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseOrThrow } from '../util/zod.ts';
import { PROBLEM_KINDS } from './codemath/generator.ts';
import { TASK_TYPES } from './household/catalog.ts';
import { QUESTION_KINDS } from './search/generator.ts';
import { checkKind, SPLITS, type Task } from './types.ts';

/**
 * Parse a JSON Lines file (one JSON value a line, blank lines skipped) with `schema`. Errors name
 * the file, the line and the field: `tasks.jsonl line 3: field "seed": expected number, received string`.
 * `text` parses that content instead of reading `file` (which then only names it in errors).
 */
export function readJsonl<S extends z.ZodType>(file: string, schema: S, text?: string): z.output<S>[] {
  const content = text ?? readFileSync(file, 'utf8');
  const out: z.output<S>[] = [];
  content.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`${file} line ${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    out.push(parseOrThrow(schema, value, `${file} line ${i + 1}`));
  });
  return out;
}

/** The JSON form of a task: one object a line in a tasks file. */
export const TaskSchema = z.object({
  env: z.string().min(1),
  id: z.string().min(1),
  kind: z.string().min(1),
  split: z.enum(SPLITS),
  seed: z.number().int(),
  payload: z.record(z.string(), z.unknown()),
});

const KINDS: Record<string, readonly string[]> = {
  household: TASK_TYPES,
  search: QUESTION_KINDS,
  codemath: PROBLEM_KINDS,
};

/** Write tasks as JSON Lines. */
export function writeTasks(file: string, tasks: Task[]): void {
  writeFileSync(file, tasks.map((t) => JSON.stringify(t)).join('\n') + (tasks.length > 0 ? '\n' : ''));
}

/** Read a tasks file; a built-in env's task of an unknown type fails with the line and the known types. */
export function readTasks(file: string): Task[] {
  const tasks = readJsonl(file, TaskSchema) as Task[];
  tasks.forEach((t, i) => {
    const kinds = KINDS[t.env];
    // Search tasks from a user's corpus carry the user's own kinds.
    if (!kinds || (t.env === 'search' && t.id.startsWith('search/user/'))) return;
    try {
      checkKind(t.env, kinds, t.kind);
    } catch (err) {
      throw new Error(`${file} task ${i + 1} (${t.id}): ${(err as Error).message}`);
    }
  });
  return tasks;
}
