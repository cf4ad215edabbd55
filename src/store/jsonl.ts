/**
 * Step rows as JSON lines: `store export` writes one line per step (ALGORITHMS.md's fields, the
 * texts and token ids, the extras beside them, tool calls and advantages), and `store import`
 * reads such lines back (or minimal ones from elsewhere: only the estimator fields are required).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { parseOrThrow } from '../util/zod.ts';
import type { TrajectoryStore } from './api.ts';
import type { GroupInput, Json, StepDetail, StepInput, TrajectoryInput } from './types.ts';
import { ROW_FIELDS } from './writer.ts';

/** One exported line, as a plain JSON object (typed arrays become number arrays). */
export function stepToJson(s: StepDetail): Record<string, unknown> {
  return {
    // The estimator fields first, in ALGORITHMS.md's order.
    groupId: s.groupId,
    trajectoryId: s.trajectoryId,
    stepIndex: s.stepIndex,
    anchor: s.anchor,
    envReward: s.envReward,
    valid: s.valid,
    episodeReturn: s.episodeReturn,
    won: s.won,
    done: s.done,
    role: s.role,
    runId: s.runId,
    iteration: s.iteration,
    taskId: s.taskId,
    taskType: s.taskType,
    seed: s.seed,
    split: s.split,
    outcome: s.outcome,
    // Extras sit beside the row fields, so IGPO's valueBefore/outcomeReward reach `stepwise credit`.
    ...s.extras,
    promptText: s.promptText,
    promptTokens: Array.from(s.promptTokens),
    responseText: s.responseText,
    responseTokens: Array.from(s.responseTokens),
    responseLogprobs: Array.from(s.responseLogprobs),
    toolCalls: s.toolCalls,
    advantages: s.advantages,
  };
}

/** Writes every step (of all runs, one run or one iteration) as JSON lines; returns the number of lines. */
export async function exportJsonl(
  store: TrajectoryStore,
  write: (chunk: string) => void | Promise<void>,
  options: { runId?: string; iteration?: number } = {},
): Promise<number> {
  let n = 0;
  let chunk = '';
  for (const step of store.allSteps(options)) {
    chunk += `${JSON.stringify(stepToJson(step))}\n`;
    n++;
    // Hand lines over in ~1 MB chunks: fewer writes, bounded memory.
    if (chunk.length > 1 << 20) {
      await write(chunk);
      chunk = '';
    }
  }
  if (chunk) await write(chunk);
  return n;
}

const json: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(json), z.record(z.string(), json)]),
);

const toolCall = z.object({
  tool: z.string(),
  arguments: z.string(),
  startedAt: z.number(),
  durationMs: z.number(),
  ok: z.boolean(),
  errorKind: z
    .enum(['bad_arguments', 'timeout', 'memory', 'tool_error', 'policy_denied', 'aborted'])
    .optional(),
  truncated: z.boolean(),
  outputChars: z.number().int(),
});

const advantage = z.object({ estimator: z.string(), value: z.number(), details: json.optional() });

const tokens = z
  .array(
    z
      .number()
      .int()
      .min(-(2 ** 31))
      .max(2 ** 31 - 1),
  )
  .default([])
  .transform((a) => Int32Array.from(a));

/** A line to import: the estimator fields are required, everything else has a default. */
export const importRowSchema = z.looseObject({
  groupId: z.union([z.string(), z.number()]).transform(String),
  trajectoryId: z.union([z.string(), z.number()]).transform(String),
  stepIndex: z.number().int().nonnegative(),
  anchor: json,
  envReward: z.number(),
  valid: z.boolean(),
  episodeReturn: z.number().optional(),
  won: z.boolean().optional(),
  done: z.boolean().optional(),
  role: z.string().default('agent'),
  runId: z.string().optional(),
  iteration: z.number().int().nonnegative().default(0),
  taskId: z.string().optional(),
  taskType: z.string().nullable().optional(),
  seed: z.number().int().default(0),
  split: z.string().default('train'),
  outcome: z.string().optional(),
  promptText: z.string().default(''),
  // Typed arrays right away: a large import holds every row in memory until it is written.
  promptTokens: tokens,
  responseText: z.string().default(''),
  responseTokens: tokens,
  responseLogprobs: z
    .array(z.number())
    .transform((a) => Float32Array.from(a))
    .optional(),
  toolCalls: z.array(toolCall).default([]),
  advantages: z.array(advantage).default([]),
});
export type ImportRow = z.infer<typeof importRowSchema>;

/** Parses one line (1-based `line` for messages); undefined for a blank line. */
function parseLine(raw: string, line: number): ImportRow | undefined {
  if (raw.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new Error(`line ${line}: not valid JSON (${(err as Error).message})`);
  }
  return parseOrThrow(importRowSchema, value, `line ${line}`);
}

/** Parses JSON lines; throws naming the line number and the field at fault. Blank lines are skipped. */
export function parseJsonl(text: string): Array<{ line: number; row: ImportRow }> {
  const out: Array<{ line: number; row: ImportRow }> = [];
  text.split('\n').forEach((raw, i) => {
    const row = parseLine(raw, i + 1);
    if (row) out.push({ line: i + 1, row });
  });
  return out;
}

/**
 * Parses a JSON-lines file line by line, so that files beyond a JavaScript string's size limit
 * (an export of a long run) can be imported.
 */
export async function parseJsonlFile(path: string): Promise<Array<{ line: number; row: ImportRow }>> {
  const out: Array<{ line: number; row: ImportRow }> = [];
  const lines = createInterface({
    input: createReadStream(path, 'utf8'),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let n = 0;
  for await (const raw of lines) {
    n++;
    const row = parseLine(raw, n);
    if (row) out.push({ line: n, row });
  }
  return out;
}

export interface ImportOptions {
  /** Put every row in this run (default: each row's runId, else 'imported'). */
  runId?: string;
  /**
   * Rows carry `stepwise credit` output (`advantage`, details under `credit`): store them as this
   * estimator's advantages instead of keeping them as extras.
   */
  estimator?: string;
}

export interface ImportSummary {
  runs: string[];
  iterations: number;
  steps: number;
}

/** Fails with the line at fault when two rows of one group or trajectory disagree on its fields. */
function same<T>(what: string, field: string, line: number, first: T, value: T): void {
  if (JSON.stringify(first) !== JSON.stringify(value)) {
    throw new Error(
      `line ${line}: field '${field}' is ${JSON.stringify(value)} but earlier rows of ${what} have ${JSON.stringify(first)}`,
    );
  }
}

/**
 * Writes parsed rows into the store, all in one transaction: rows are grouped into runs,
 * iterations, groups and trajectories (sorted by stepIndex); any error writes nothing.
 */
export function importRows(
  store: TrajectoryStore,
  rows: ReadonlyArray<{ line: number; row: ImportRow }>,
  options: ImportOptions = {},
): ImportSummary {
  // run -> iteration -> group -> trajectory -> rows, in first-seen order (Maps keep insertion order).
  const tree = new Map<
    string,
    Map<number, Map<string, Map<string, Array<{ line: number; row: ImportRow }>>>>
  >();
  for (const r of rows) {
    const runId = options.runId ?? r.row.runId ?? 'imported';
    const its = tree.get(runId) ?? new Map();
    tree.set(runId, its);
    const groups = its.get(r.row.iteration) ?? new Map();
    its.set(r.row.iteration, groups);
    const trajs = groups.get(r.row.groupId) ?? new Map();
    groups.set(r.row.groupId, trajs);
    const list = trajs.get(r.row.trajectoryId) ?? [];
    trajs.set(r.row.trajectoryId, list);
    list.push(r);
  }

  let iterations = 0;
  store.transaction(() => {
    for (const [runId, its] of tree) {
      if (!store.run(runId)) store.createRun(runId, {}, 'finished');
      for (const [iteration, groups] of its) {
        const inputs: GroupInput[] = [];
        for (const [groupId, trajs] of groups) inputs.push(toGroup(groupId, trajs, options.estimator));
        store.writeIteration(runId, { iteration, groups: inputs });
        iterations++;
      }
    }
  });
  return { runs: [...tree.keys()], iterations, steps: rows.length };
}

function toGroup(
  groupId: string,
  trajs: Map<string, Array<{ line: number; row: ImportRow }>>,
  estimator: string | undefined,
): GroupInput {
  const first = trajs.values().next().value![0]!;
  const taskId = first.row.taskId ?? groupId;
  const taskType = first.row.taskType ?? null;
  const trajectories: TrajectoryInput[] = [];
  for (const [trajectoryId, list] of trajs) {
    const what = `group '${groupId}'`;
    for (const { line, row } of list) {
      same(what, 'taskId', line, taskId, row.taskId ?? groupId);
      same(what, 'taskType', line, taskType, row.taskType ?? null);
      same(what, 'seed', line, first.row.seed, row.seed);
      same(what, 'split', line, first.row.split, row.split);
    }
    trajectories.push(toTrajectory(groupId, trajectoryId, list, estimator));
  }
  return {
    groupId,
    taskId,
    taskType: taskType ?? undefined,
    seed: first.row.seed,
    split: first.row.split,
    trajectories,
  };
}

function toTrajectory(
  groupId: string,
  trajectoryId: string,
  list: Array<{ line: number; row: ImportRow }>,
  estimator: string | undefined,
): TrajectoryInput {
  const sorted = [...list].sort((a, b) => a.row.stepIndex - b.row.stepIndex);
  const what = `trajectory '${trajectoryId}' in group '${groupId}'`;
  const head = sorted[0]!.row;
  sorted.forEach(({ line, row }, i) => {
    const previous = sorted[i - 1];
    if (previous && previous.row.stepIndex === row.stepIndex) {
      throw new Error(
        `line ${line}: field 'stepIndex': step ${row.stepIndex} of ${what} appears twice (also line ${previous.line})`,
      );
    }
    if (row.stepIndex !== i) {
      throw new Error(
        `line ${line}: field 'stepIndex' is ${row.stepIndex}; ${what} has no step ${i} (steps must be 0..n-1)`,
      );
    }
    same(what, 'won', line, head.won, row.won);
    same(what, 'outcome', line, head.outcome, row.outcome);
    same(what, 'episodeReturn', line, head.episodeReturn, row.episodeReturn);
  });
  const won = head.won ?? false;
  const steps = sorted.map(({ line, row }, i): StepInput => {
    const logprobs =
      row.responseLogprobs ?? (row.responseTokens.length === 0 ? new Float32Array(0) : undefined);
    if (logprobs === undefined || logprobs.length !== row.responseTokens.length) {
      throw new Error(
        `line ${line}: field 'responseLogprobs': expected one log-prob per response token (${row.responseTokens.length})`,
      );
    }
    let extras: Record<string, Json> = {};
    for (const [k, v] of Object.entries(row)) if (!ROW_FIELDS.has(k)) extras[k] = v as Json;
    const advantages = [...row.advantages];
    if (estimator !== undefined) {
      const { advantage, credit, ...rest } = extras;
      if (typeof advantage !== 'number') {
        throw new Error(
          `line ${line}: field 'advantage': expected a number (stepwise credit output) with --estimator`,
        );
      }
      advantages.push({ estimator, value: advantage, ...(credit === undefined ? {} : { details: credit }) });
      extras = rest;
    }
    return {
      stepIndex: row.stepIndex,
      role: row.role,
      anchor: row.anchor,
      promptText: row.promptText,
      promptTokens: row.promptTokens,
      responseText: row.responseText,
      responseTokens: row.responseTokens,
      responseLogprobs: logprobs,
      envReward: row.envReward,
      valid: row.valid,
      done: row.done ?? i === sorted.length - 1,
      extras,
      toolCalls: row.toolCalls,
      advantages,
    };
  });
  return {
    trajectoryId,
    outcome: head.outcome ?? (head.won === undefined ? 'unknown' : won ? 'won' : 'lost'),
    won,
    episodeReturn: head.episodeReturn,
    steps,
  };
}
