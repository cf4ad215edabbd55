/**
 * Writes into the store. An iteration goes in as one transaction: its row in `iterations` is
 * inserted together with every group, trajectory, step, tool call, advantage and metric, so a
 * reader (or a process resuming after a crash) sees either all of it or none of it.
 */
import type Database from 'better-sqlite3';
import { encodeLogprobs, encodeTokens } from './blobs.ts';
import type {
  AdvantageRecord,
  GroupInput,
  IterationInput,
  Json,
  RunStatus,
  StepInput,
  TrajectoryInput,
} from './types.ts';

/** Step-row field names an extras key may not take (export puts extras beside them). */
export const ROW_FIELDS: ReadonlySet<string> = new Set([
  'runId',
  'iteration',
  'groupId',
  'taskId',
  'taskType',
  'seed',
  'split',
  'trajectoryId',
  'outcome',
  'won',
  'episodeReturn',
  'stepIndex',
  'role',
  'anchor',
  'promptText',
  'promptTokens',
  'responseText',
  'responseTokens',
  'responseLogprobs',
  'envReward',
  'valid',
  'done',
  'toolCalls',
  'advantages',
]);

export interface WriteOptions {
  /** Called inside the transaction after each group is written (progress; tests use it to kill a writer). */
  onGroupWritten?: (groupIndex: number) => void;
}

/** Anchors are text when they are strings, JSON otherwise (flagged so they read back as written). */
export function encodeAnchor(anchor: unknown): [string, number] {
  return typeof anchor === 'string' ? [anchor, 0] : [JSON.stringify(anchor), 1];
}

/**
 * Checks a trajectory before it is written (both backends): at least one step, finite rewards
 * and return, steps in order. Returns where it is (for messages) and its return.
 */
export function checkTrajectory(
  groupKey: string,
  t: TrajectoryInput,
): { where: string; episodeReturn: number } {
  const where = `group '${groupKey}', trajectory '${t.trajectoryId}'`;
  if (t.steps.length === 0) throw new Error(`${where} has no steps; expected at least one`);
  let sum = 0;
  for (const s of t.steps) {
    // SQLite would store NaN as NULL and fail with a bare constraint error; say what was wrong.
    if (!Number.isFinite(s.envReward)) {
      throw new Error(`${where}, step ${s.stepIndex}: envReward is ${s.envReward}; expected a finite number`);
    }
    sum += s.envReward;
  }
  if (t.episodeReturn !== undefined && !Number.isFinite(t.episodeReturn)) {
    throw new Error(`${where}: episodeReturn is ${t.episodeReturn}; expected a finite number`);
  }
  t.steps.forEach((s, i) => {
    if (s.stepIndex !== i) {
      throw new Error(
        `${where}: step at position ${i} has stepIndex ${s.stepIndex}; expected ${i} (steps in order)`,
      );
    }
  });
  return { where, episodeReturn: t.episodeReturn ?? sum };
}

/** Checks a step before it is written; returns its extras as JSON text. */
export function checkStep(s: StepInput, where: string): string {
  if (s.responseLogprobs.length !== s.responseTokens.length) {
    throw new Error(
      `${where}, step ${s.stepIndex}: ${s.responseLogprobs.length} responseLogprobs for ` +
        `${s.responseTokens.length} responseTokens; expected one log-prob per response token`,
    );
  }
  if (!s.extras) return '{}';
  for (const key of Object.keys(s.extras)) {
    if (ROW_FIELDS.has(key)) {
      throw new Error(
        `${where}, step ${s.stepIndex}: extras key '${key}' shadows a step-row field; rename it`,
      );
    }
  }
  return JSON.stringify(s.extras);
}

/** An advantage must be a finite number (`stepId` names the step row in the message). */
export function checkAdvantage(stepId: number | bigint | string, a: AdvantageRecord): void {
  if (!Number.isFinite(a.value)) {
    throw new Error(
      `advantage '${a.estimator}' of step row ${stepId} is ${a.value}; expected a finite number`,
    );
  }
}

/** A metric must be a number; NaN is refused with a message (SQLite would store it as NULL). */
export function checkMetric(name: string, iteration: number, value: unknown): void {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new Error(`metric '${name}' of iteration ${iteration} is ${value}; expected a number`);
  }
}

/** Prepared statements, made once per open database (preparing is costlier than running). */
export class Writer {
  private readonly insertIteration: Database.Statement;
  private readonly insertGroup: Database.Statement;
  private readonly insertTrajectory: Database.Statement;
  private readonly insertStep: Database.Statement;
  private readonly insertToolCall: Database.Statement;
  private readonly upsertAdvantage: Database.Statement;
  private readonly upsertMetric: Database.Statement;
  private readonly findIteration: Database.Statement;
  private readonly findStep: Database.Statement;
  private readonly touchRun: Database.Statement;
  private readonly findRun: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.insertIteration = db.prepare(
      'INSERT INTO iterations (run_id, iteration, created_at) VALUES (?, ?, ?)',
    );
    this.insertGroup = db.prepare(
      'INSERT INTO groups (iteration_id, group_key, task_id, task_type, seed, split) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.insertTrajectory = db.prepare(
      'INSERT INTO trajectories (group_id, trajectory_key, outcome, won, length, episode_return) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.insertStep = db.prepare(
      `INSERT INTO steps (trajectory_id, step_index, role, anchor, anchor_is_json, prompt_text, prompt_tokens,
         response_text, response_tokens, response_logprobs, env_reward, valid, done, extras)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertToolCall = db.prepare(
      `INSERT INTO tool_calls (step_id, call_index, tool, arguments, started_at, duration_ms, ok, error_kind,
         truncated, output_chars) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.upsertAdvantage = db.prepare(
      `INSERT INTO advantages (step_id, estimator, value, details) VALUES (?, ?, ?, ?)
       ON CONFLICT (step_id, estimator) DO UPDATE SET value = excluded.value, details = excluded.details`,
    );
    this.upsertMetric = db.prepare(
      `INSERT INTO metrics (run_id, iteration, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (run_id, iteration, name) DO UPDATE SET value = excluded.value`,
    );
    this.findIteration = db.prepare('SELECT id FROM iterations WHERE run_id = ? AND iteration = ?').pluck();
    this.findStep = db
      .prepare(
        `SELECT s.id FROM steps s JOIN trajectories t ON t.id = s.trajectory_id JOIN groups g ON g.id = t.group_id
         WHERE g.iteration_id = ? AND g.group_key = ? AND t.trajectory_key = ? AND s.step_index = ?`,
      )
      .pluck();
    this.touchRun = db.prepare('UPDATE runs SET updated_at = ? WHERE id = ?');
    this.findRun = db.prepare('SELECT 1 FROM runs WHERE id = ?').pluck();
  }

  createRun(runId: string, config: Json, status: RunStatus): void {
    const now = Date.now();
    this.db
      .prepare('INSERT INTO runs (id, config, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
      .run(runId, JSON.stringify(config), status, now, now);
  }

  setRunStatus(runId: string, status: RunStatus): void {
    const r = this.db
      .prepare('UPDATE runs SET status = ?, updated_at = ? WHERE id = ?')
      .run(status, Date.now(), runId);
    if (r.changes === 0) throw new Error(`no run '${runId}' in the store`);
  }

  /** Writes one whole iteration in one transaction; throws (writing nothing) on a bad input. */
  writeIteration(runId: string, input: IterationInput, options: WriteOptions = {}): void {
    this.db.transaction(() => {
      this.requireRun(runId);
      if (this.findIteration.get(runId, input.iteration) !== undefined) {
        throw new Error(`iteration ${input.iteration} of run '${runId}' is already stored`);
      }
      const now = Date.now();
      const iterationId = this.insertIteration.run(runId, input.iteration, now).lastInsertRowid;
      input.groups.forEach((group, i) => {
        this.writeGroup(iterationId, group);
        options.onGroupWritten?.(i);
      });
      this.putMetrics(runId, input.iteration, input.metrics ?? {});
      this.touchRun.run(now, runId);
    })();
  }

  private writeGroup(iterationId: number | bigint, g: GroupInput): void {
    const groupId = this.insertGroup.run(
      iterationId,
      g.groupId,
      g.taskId,
      g.taskType ?? null,
      g.seed,
      g.split,
    ).lastInsertRowid;
    for (const t of g.trajectories) this.writeTrajectory(groupId, g.groupId, t);
  }

  private writeTrajectory(groupId: number | bigint, groupKey: string, t: TrajectoryInput): void {
    const { where, episodeReturn } = checkTrajectory(groupKey, t);
    const trajectoryId = this.insertTrajectory.run(
      groupId,
      t.trajectoryId,
      t.outcome,
      t.won ? 1 : 0,
      t.steps.length,
      episodeReturn,
    ).lastInsertRowid;
    for (const s of t.steps) this.writeStep(trajectoryId, s, where);
  }

  private writeStep(trajectoryId: number | bigint, s: StepInput, where: string): void {
    const extras = checkStep(s, where);
    const [anchor, anchorIsJson] = encodeAnchor(s.anchor);
    const stepId = this.insertStep.run(
      trajectoryId,
      s.stepIndex,
      s.role,
      anchor,
      anchorIsJson,
      s.promptText,
      encodeTokens(s.promptTokens),
      s.responseText,
      encodeTokens(s.responseTokens),
      encodeLogprobs(s.responseLogprobs),
      s.envReward,
      s.valid ? 1 : 0,
      s.done ? 1 : 0,
      extras,
    ).lastInsertRowid;
    s.toolCalls?.forEach((c, i) => {
      this.insertToolCall.run(
        stepId,
        i,
        c.tool,
        c.arguments,
        c.startedAt,
        c.durationMs,
        c.ok ? 1 : 0,
        c.errorKind ?? null,
        c.truncated ? 1 : 0,
        c.outputChars,
      );
    });
    for (const a of s.advantages ?? []) this.writeAdvantage(stepId, a);
  }

  private writeAdvantage(stepId: number | bigint, a: AdvantageRecord): void {
    checkAdvantage(stepId, a);
    this.upsertAdvantage.run(
      stepId,
      a.estimator,
      a.value,
      a.details === undefined ? null : JSON.stringify(a.details),
    );
  }

  /**
   * Adds (or replaces) one estimator's advantages for steps of a stored iteration, in one
   * transaction; a row naming a step that does not exist fails the whole call.
   */
  writeAdvantages(
    runId: string,
    iteration: number,
    rows: ReadonlyArray<{ groupId: string; trajectoryId: string; stepIndex: number } & AdvantageRecord>,
  ): void {
    this.db.transaction(() => {
      const iterationId = this.findIteration.get(runId, iteration);
      if (iterationId === undefined)
        throw new Error(`iteration ${iteration} of run '${runId}' is not in the store`);
      for (const r of rows) {
        const stepId = this.findStep.get(iterationId, r.groupId, r.trajectoryId, r.stepIndex) as
          | number
          | undefined;
        if (stepId === undefined) {
          throw new Error(
            `no step ${r.stepIndex} of trajectory '${r.trajectoryId}' in group '${r.groupId}' ` +
              `(run '${runId}', iteration ${iteration})`,
          );
        }
        this.writeAdvantage(stepId, r);
      }
    })();
  }

  /** Adds (or replaces) metrics of an iteration, e.g. an evaluation measured after the update. */
  writeMetrics(runId: string, iteration: number, metrics: Record<string, number>): void {
    this.db.transaction(() => {
      this.requireRun(runId);
      this.putMetrics(runId, iteration, metrics);
      this.touchRun.run(Date.now(), runId);
    })();
  }

  private putMetrics(runId: string, iteration: number, metrics: Record<string, number>): void {
    for (const [name, value] of Object.entries(metrics)) {
      checkMetric(name, iteration, value);
      this.upsertMetric.run(runId, iteration, name, value);
    }
  }

  private requireRun(runId: string): void {
    if (this.findRun.get(runId) === undefined) {
      throw new Error(`no run '${runId}' in the store; create it first (createRun)`);
    }
  }

  addCheckpoint(runId: string, iteration: number, path: string, info: Json = {}): void {
    this.requireRun(runId);
    this.db
      .prepare(
        `INSERT INTO checkpoints (run_id, iteration, path, created_at, info) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (run_id, iteration) DO UPDATE SET path = excluded.path, info = excluded.info`,
      )
      .run(runId, iteration, path, Date.now(), JSON.stringify(info));
  }
}
