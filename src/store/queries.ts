/**
 * Reads for the trainer and the viewer. Every query sees only whole iterations, because the
 * writer inserts an iteration's row in the same transaction as its contents.
 */
import type Database from 'better-sqlite3';
import { decodeLogprobs, decodeTokens } from './blobs.ts';
import type {
  AdvantageRecord,
  Anchor,
  CheckpointInfo,
  GroupInfo,
  IterationInfo,
  Json,
  MetricPoint,
  RunInfo,
  RunStatus,
  StepDetail,
  StoredStepRow,
  ToolCallRecord,
  ToolErrorKind,
  TrajectoryInfo,
  TrajectoryRef,
} from './types.ts';

export interface ResumePoint {
  nextIteration: number;
  lastCompleteIteration: number | undefined;
  checkpoint: CheckpointInfo | undefined;
}

/** One point of a run's metric. */
export interface MetricRow {
  name: string;
  iteration: number;
  value: number;
}

/** Which trajectories of a run to list (every field optional: no filter). */
export interface TrajectoryFilter {
  iteration?: number;
  taskType?: string;
  split?: string;
  won?: boolean;
  /** At most this many (newest iterations first). */
  limit: number;
}

/** A trajectory with where it is: its iteration and its group's task. */
export interface TrajectoryMatch extends TrajectoryInfo {
  iteration: number;
  groupId: string;
  taskId: string;
  taskType: string | null;
  split: string;
}

/** A stored advantage of a step of one group, with the step's place and anchor. */
export interface GroupAdvantage extends AdvantageRecord {
  trajectoryId: string;
  stepIndex: number;
  /** The anchor as stored: text, or a structured anchor's JSON. */
  anchor: string;
}

/** A step row with the estimator's advantage, when one was asked for and stored. */
export interface TrainingRow extends StoredStepRow {
  advantage?: number;
}

// The columns of a step row, in one place for every query that returns step rows.
export const STEP_COLUMNS = `
  i.run_id, i.iteration, g.group_key, g.task_id, g.task_type, g.seed, g.split,
  t.trajectory_key, t.outcome, t.won, t.episode_return, s.id AS step_id, s.step_index, s.role, s.anchor,
  s.anchor_is_json, s.prompt_text, s.prompt_tokens, s.response_text, s.response_tokens,
  s.response_logprobs, s.env_reward, s.valid, s.done, s.extras`;
// Write order without a sort: the writer inserts group by group, trajectory by trajectory.
export const WRITE_ORDER = 'ORDER BY i.id, g.id, t.id, s.step_index';
export const STEP_JOINS = `
  FROM steps s
  JOIN trajectories t ON t.id = s.trajectory_id
  JOIN groups g ON g.id = t.group_id
  JOIN iterations i ON i.id = g.iteration_id`;

export interface DbStep {
  run_id: string;
  iteration: number;
  group_key: string;
  task_id: string;
  task_type: string | null;
  seed: number;
  split: string;
  trajectory_key: string;
  outcome: string;
  won: number;
  episode_return: number;
  step_id: number;
  step_index: number;
  role: string;
  anchor: string;
  anchor_is_json: number;
  prompt_text: string;
  prompt_tokens: Buffer;
  response_text: string;
  response_tokens: Buffer;
  response_logprobs: Buffer;
  env_reward: number;
  valid: number;
  done: number;
  extras: string;
}

export function stepRowFromDb(r: DbStep): StoredStepRow {
  return {
    runId: r.run_id,
    iteration: r.iteration,
    groupId: r.group_key,
    taskId: r.task_id,
    taskType: r.task_type,
    seed: r.seed,
    split: r.split,
    trajectoryId: r.trajectory_key,
    outcome: r.outcome,
    won: r.won === 1,
    episodeReturn: r.episode_return,
    stepIndex: r.step_index,
    role: r.role,
    anchor: (r.anchor_is_json ? JSON.parse(r.anchor) : r.anchor) as Anchor,
    promptText: r.prompt_text,
    promptTokens: decodeTokens(r.prompt_tokens),
    responseText: r.response_text,
    responseTokens: decodeTokens(r.response_tokens),
    responseLogprobs: decodeLogprobs(r.response_logprobs),
    envReward: r.env_reward,
    valid: r.valid === 1,
    done: r.done === 1,
    extras: JSON.parse(r.extras) as Record<string, Json>,
  };
}

export interface DbToolCall {
  tool: string;
  arguments: string;
  started_at: number;
  duration_ms: number;
  ok: number;
  error_kind: string | null;
  truncated: number;
  output_chars: number;
}

export function toolCallFromDb(c: DbToolCall): ToolCallRecord {
  const out: ToolCallRecord = {
    tool: c.tool,
    arguments: c.arguments,
    startedAt: c.started_at,
    durationMs: c.duration_ms,
    ok: c.ok === 1,
    truncated: c.truncated === 1,
    outputChars: c.output_chars,
  };
  if (c.error_kind !== null) out.errorKind = c.error_kind as ToolErrorKind;
  return out;
}

export function advantageFromDb(a: {
  estimator: string;
  value: number;
  details: string | null;
}): AdvantageRecord {
  const out: AdvantageRecord = { estimator: a.estimator, value: a.value };
  if (a.details !== null) out.details = JSON.parse(a.details) as Json;
  return out;
}

/** The queries, prepared once per open database. */
/** Every run with its iteration count and last iteration (both backends; portable SQL). */
export const RUNS_SQL = `SELECT r.id, r.config, r.status, r.created_at, r.updated_at,
    (SELECT count(*) FROM iterations i WHERE i.run_id = r.id) AS n,
    (SELECT max(iteration) FROM iterations i WHERE i.run_id = r.id) AS last
  FROM runs r ORDER BY r.created_at, r.id`;

/** A row of `RUNS_SQL` as either backend returns it. */
export interface DbRun {
  id: string;
  config: string;
  status: RunStatus;
  created_at: number;
  updated_at: number;
  n: number;
  last: number | null;
}

export function runFromDb(r: DbRun): RunInfo {
  return {
    runId: r.id,
    config: JSON.parse(r.config) as Json,
    status: r.status,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    iterations: r.n,
    lastIteration: r.last ?? undefined,
  };
}

/**
 * Where a resumed run starts, given its last complete iteration: the iteration after it, and the
 * newest checkpoint taken at or before it (the weights to load). Both backends' `resumePoint`.
 */
export function resumePointOf(last: number | undefined, checkpoints: () => CheckpointInfo[]): ResumePoint {
  const checkpoint =
    last === undefined
      ? undefined
      : checkpoints()
          .filter((c) => c.iteration <= last)
          .at(-1);
  return { nextIteration: last === undefined ? 0 : last + 1, lastCompleteIteration: last, checkpoint };
}

export class Reader {
  private readonly stepsOfIteration: Database.Statement;
  private readonly stepsOfIterationWithAdvantage: Database.Statement;
  private readonly toolCallsOfStep: Database.Statement;
  private readonly advantagesOfStep: Database.Statement;

  constructor(readonly db: Database.Database) {
    this.stepsOfIteration = db.prepare(
      `SELECT ${STEP_COLUMNS} ${STEP_JOINS} WHERE i.run_id = ? AND i.iteration = ? ${WRITE_ORDER}`,
    );
    this.stepsOfIterationWithAdvantage = db.prepare(
      `SELECT ${STEP_COLUMNS}, a.value AS advantage ${STEP_JOINS}
       LEFT JOIN advantages a ON a.step_id = s.id AND a.estimator = ?
       WHERE i.run_id = ? AND i.iteration = ? ${WRITE_ORDER}`,
    );
    this.toolCallsOfStep = db.prepare(
      `SELECT tool, arguments, started_at, duration_ms, ok, error_kind, truncated, output_chars
       FROM tool_calls WHERE step_id = ? ORDER BY call_index`,
    );
    this.advantagesOfStep = db.prepare(
      'SELECT estimator, value, details FROM advantages WHERE step_id = ? ORDER BY estimator',
    );
  }

  runs(): RunInfo[] {
    return (this.db.prepare(RUNS_SQL).all() as DbRun[]).map(runFromDb);
  }

  run(runId: string): RunInfo | undefined {
    return this.runs().find((r) => r.runId === runId);
  }

  /** The resume point: the last iteration of a run that was written whole, or undefined. */
  lastCompleteIteration(runId: string): number | undefined {
    const last = this.db.prepare('SELECT max(iteration) FROM iterations WHERE run_id = ?').pluck().get(runId);
    return (last as number | null) ?? undefined;
  }

  /**
   * Where a resumed run starts: the iteration after the last complete one, and the newest
   * checkpoint taken at or before that complete iteration (the weights to load).
   */
  resumePoint(runId: string): ResumePoint {
    return resumePointOf(this.lastCompleteIteration(runId), () => this.checkpoints(runId));
  }

  iterations(runId: string): IterationInfo[] {
    return this.db
      .prepare(
        `SELECT i.iteration, i.created_at AS createdAt,
           count(DISTINCT g.id) AS groups, count(t.id) AS trajectories,
           coalesce(sum(t.length), 0) AS steps,
           coalesce(avg(t.won), 0) AS successRate, coalesce(avg(t.episode_return), 0) AS meanReturn,
           coalesce(avg(t.length), 0) AS meanLength
         FROM iterations i
         LEFT JOIN groups g ON g.iteration_id = i.id
         LEFT JOIN trajectories t ON t.group_id = g.id
         WHERE i.run_id = ? GROUP BY i.id ORDER BY i.iteration`,
      )
      .all(runId) as IterationInfo[];
  }

  groups(runId: string, iteration: number): GroupInfo[] {
    const groups = this.db
      .prepare(
        `SELECT g.id, g.group_key, g.task_id, g.task_type, g.seed, g.split FROM groups g
         JOIN iterations i ON i.id = g.iteration_id WHERE i.run_id = ? AND i.iteration = ? ORDER BY g.id`,
      )
      .all(runId, iteration) as Array<{
      id: number;
      group_key: string;
      task_id: string;
      task_type: string | null;
      seed: number;
      split: string;
    }>;
    const trajectoriesOf = this.db.prepare(
      `SELECT trajectory_key AS trajectoryId, outcome, won, length, episode_return AS episodeReturn
       FROM trajectories WHERE group_id = ? ORDER BY id`,
    );
    return groups.map((g) => ({
      groupId: g.group_key,
      taskId: g.task_id,
      taskType: g.task_type,
      seed: g.seed,
      split: g.split,
      trajectories: (trajectoriesOf.all(g.id) as Array<Omit<TrajectoryInfo, 'won'> & { won: number }>).map(
        (t) => ({
          ...t,
          won: t.won === 1,
        }),
      ),
    }));
  }

  /** A trajectory's steps in order, each with its tool calls and advantages (the viewer's page). */
  trajectory(ref: TrajectoryRef): StepDetail[] {
    const rows = this.db
      .prepare(
        `SELECT ${STEP_COLUMNS} ${STEP_JOINS}
         WHERE i.run_id = ? AND i.iteration = ? AND g.group_key = ? AND t.trajectory_key = ?
         ORDER BY s.step_index`,
      )
      .all(ref.runId, ref.iteration, ref.groupId, ref.trajectoryId) as DbStep[];
    if (rows.length === 0) {
      throw new Error(
        `no trajectory '${ref.trajectoryId}' in group '${ref.groupId}' of run '${ref.runId}', iteration ${ref.iteration}`,
      );
    }
    return rows.map((r) => this.detail(r));
  }

  /** A step row with its tool calls and advantages. */
  detail(r: DbStep): StepDetail {
    return {
      ...stepRowFromDb(r),
      toolCalls: (this.toolCallsOfStep.all(r.step_id) as DbToolCall[]).map(toolCallFromDb),
      advantages: (
        this.advantagesOfStep.all(r.step_id) as Array<{
          estimator: string;
          value: number;
          details: string | null;
        }>
      ).map(advantageFromDb),
    };
  }

  /**
   * The steps of one iteration as training rows, in write order. With `estimator`, each row
   * carries that estimator's stored advantage (left out where none is stored).
   */
  trainingRows(runId: string, iteration: number, estimator?: string): TrainingRow[] {
    if (estimator === undefined) {
      return (this.stepsOfIteration.all(runId, iteration) as DbStep[]).map(stepRowFromDb);
    }
    const rows = this.stepsOfIterationWithAdvantage.all(estimator, runId, iteration) as Array<
      DbStep & { advantage: number | null }
    >;
    return rows.map((r) => {
      const row: TrainingRow = stepRowFromDb(r);
      if (r.advantage !== null) row.advantage = r.advantage;
      return row;
    });
  }

  metricNames(runId: string): string[] {
    return this.db
      .prepare('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name')
      .pluck()
      .all(runId) as string[];
  }

  /** Every point of every metric of a run, by name, then iteration. */
  metrics(runId: string): MetricRow[] {
    return this.db
      .prepare('SELECT name, iteration, value FROM metrics WHERE run_id = ? ORDER BY name, iteration')
      .all(runId) as MetricRow[];
  }

  /** The largest value a run's metric took; undefined when the run has none. */
  metricMax(runId: string, name: string): number | undefined {
    const max = this.db
      .prepare('SELECT max(value) FROM metrics WHERE run_id = ? AND name = ?')
      .pluck()
      .get(runId, name) as number | null;
    return max ?? undefined;
  }

  metricSeries(runId: string, name: string): MetricPoint[] {
    return this.db
      .prepare('SELECT iteration, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY iteration')
      .all(runId, name) as MetricPoint[];
  }

  /** A run's trajectories that pass `filter`, newest iteration first, then in write order. */
  findTrajectories(runId: string, filter: TrajectoryFilter): TrajectoryMatch[] {
    const where = ['i.run_id = ?'];
    const params: Array<string | number> = [runId];
    const add = (condition: string, value: string | number | undefined) => {
      if (value === undefined) return;
      where.push(condition);
      params.push(value);
    };
    add('i.iteration = ?', filter.iteration);
    add('g.task_type = ?', filter.taskType);
    add('g.split = ?', filter.split);
    add('t.won = ?', filter.won === undefined ? undefined : filter.won ? 1 : 0);
    const rows = this.db
      .prepare(
        `SELECT i.iteration, g.group_key AS groupId, g.task_id AS taskId, g.task_type AS taskType, g.split,
           t.trajectory_key AS trajectoryId, t.outcome, t.won, t.length, t.episode_return AS episodeReturn
         FROM trajectories t JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
         WHERE ${where.join(' AND ')} ORDER BY i.iteration DESC, g.id, t.id LIMIT ?`,
      )
      .all(...params, filter.limit) as Array<Omit<TrajectoryMatch, 'won'> & { won: number }>;
    return rows.map((r) => ({ ...r, won: r.won === 1 }));
  }

  /** The (task type, split) pairs of a run's groups. */
  taskKinds(runId: string): Array<{ taskType: string | null; split: string }> {
    return this.db
      .prepare(
        `SELECT DISTINCT g.task_type AS taskType, g.split FROM groups g
         JOIN iterations i ON i.id = g.iteration_id WHERE i.run_id = ?`,
      )
      .all(runId) as Array<{ taskType: string | null; split: string }>;
  }

  /** Every stored advantage of the steps of one group, trajectory by trajectory, in step order. */
  groupAdvantages(ref: { runId: string; iteration: number; groupId: string }): GroupAdvantage[] {
    const rows = this.db
      .prepare(
        `SELECT t.trajectory_key AS trajectoryId, s.step_index AS stepIndex, s.anchor, a.estimator, a.value, a.details
         FROM advantages a JOIN steps s ON s.id = a.step_id JOIN trajectories t ON t.id = s.trajectory_id
         JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
         WHERE i.run_id = ? AND i.iteration = ? AND g.group_key = ? ORDER BY t.id, s.step_index`,
      )
      .all(ref.runId, ref.iteration, ref.groupId) as Array<{
      trajectoryId: string;
      stepIndex: number;
      anchor: string;
      estimator: string;
      value: number;
      details: string | null;
    }>;
    return rows.map((r) => ({
      trajectoryId: r.trajectoryId,
      stepIndex: r.stepIndex,
      anchor: r.anchor,
      ...advantageFromDb(r),
    }));
  }

  checkpoints(runId: string): CheckpointInfo[] {
    const rows = this.db
      .prepare(
        'SELECT run_id, iteration, path, created_at, info FROM checkpoints WHERE run_id = ? ORDER BY iteration',
      )
      .all(runId) as Array<{
      run_id: string;
      iteration: number;
      path: string;
      created_at: number;
      info: string;
    }>;
    return rows.map((r) => ({
      runId: r.run_id,
      iteration: r.iteration,
      path: r.path,
      createdAt: r.created_at,
      info: JSON.parse(r.info) as Json,
    }));
  }

  /**
   * Every step (of all runs, or one run, or one iteration) with tool calls and advantages,
   * streamed in write order.
   */
  *allSteps(filter: { runId?: string; iteration?: number } = {}): Generator<StepDetail> {
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (filter.runId !== undefined) {
      where.push('i.run_id = ?');
      params.push(filter.runId);
    }
    if (filter.iteration !== undefined) {
      where.push('i.iteration = ?');
      params.push(filter.iteration);
    }
    const sql = `SELECT ${STEP_COLUMNS} ${STEP_JOINS} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ${WRITE_ORDER}`;
    for (const r of this.db.prepare(sql).iterate(...params) as IterableIterator<DbStep>) yield this.detail(r);
  }
}
