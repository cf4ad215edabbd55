/**
 * The trajectory store on PostgreSQL: `openStore('postgres://user@host/db')`. Same interface
 * (api.ts), schema (schema.ts, translated), migrations, checks and transaction rules as the
 * SQLite store, so the trainer, viewer and CLI use either unchanged.
 *
 * The API stays synchronous: every call goes to a worker thread (client.mjs) that owns the
 * connection and runs `pg`, and the caller blocks on Atomics.wait until the answer is back
 * (synckit). See docs/ARCHITECTURE.md ("PostgreSQL store") for why, and what it costs: one
 * round trip per call, so writes go in as a few set-based statements per iteration.
 */
import { createSyncFn } from 'synckit';
import type { StepAdvantage, TrajectoryStore } from '../api.ts';
import { encodeLogprobs, encodeTokens } from '../blobs.ts';
import { type CheckFinding, type CheckReport, EXAMPLES, listed, storeRules, TABLES } from '../check.ts';
import {
  advantageFromDb,
  type DbRun,
  type DbStep,
  type DbToolCall,
  type GroupAdvantage,
  type MetricRow,
  type ResumePoint,
  RUNS_SQL,
  resumePointOf,
  runFromDb,
  STEP_COLUMNS,
  STEP_JOINS,
  stepRowFromDb,
  type TrainingRow,
  type TrajectoryFilter,
  type TrajectoryMatch,
  toolCallFromDb,
  WRITE_ORDER,
} from '../queries.ts';
import { newerSchemaError, SCHEMA_VERSION } from '../schema.ts';
import type {
  CheckpointInfo,
  GroupInfo,
  GroupInput,
  IterationInfo,
  IterationInput,
  Json,
  MetricPoint,
  RunInfo,
  RunStatus,
  StepDetail,
  TrajectoryInfo,
  TrajectoryRef,
} from '../types.ts';
import {
  checkAdvantage,
  checkMetric,
  checkStep,
  checkTrajectory,
  encodeAnchor,
  type WriteOptions,
} from '../writer.ts';
import { pgMigrations } from './schema.ts';
import { decodeText, encodeText } from './text.ts';

/** A value a query takes. */
export type PgParam = string | number | boolean | null | Uint8Array | readonly unknown[];
/** A query's answer as the worker sends it. */
export interface PgResult<R = Record<string, unknown>> {
  rows: R[];
  rowCount: number;
}

type Request =
  | { op: 'connect'; url: string }
  | { op: 'query'; id: number; sql: string; params: readonly PgParam[] }
  | { op: 'batch'; id: number; statements: ReadonlyArray<{ sql: string; params: readonly PgParam[] }> }
  | { op: 'close'; id: number };

let call: ((request: Request) => unknown) | undefined;
/** The worker's entry, made on first use (one worker thread per process, shared by every PgStore). */
function worker(request: Request): unknown {
  call ??= createSyncFn(new URL('./client.mjs', import.meta.url).href) as (request: Request) => unknown;
  return call(request);
}

/** Whether a store location names a PostgreSQL database. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** The URL without its password, for messages and `store.path`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** SQLite's `?` placeholders as PostgreSQL's `$1, $2...` (the shared queries hold no literal `?`). */
export function pgPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** One connection, called synchronously. */
export class PgConnection {
  private closed = false;
  private constructor(private readonly id: number) {}

  static open(url: string): PgConnection {
    const { id } = worker({ op: 'connect', url }) as { id: number };
    return new PgConnection(id);
  }

  query<R = Record<string, unknown>>(sql: string, params: readonly PgParam[] = []): PgResult<R> {
    if (this.closed) throw new Error('the PostgreSQL store is closed');
    return worker({ op: 'query', id: this.id, sql, params }) as PgResult<R>;
  }

  rows<R = Record<string, unknown>>(sql: string, params: readonly PgParam[] = []): R[] {
    return this.query<R>(sql, params).rows;
  }

  /** The first column of the first row, or undefined. */
  value<T>(sql: string, params: readonly PgParam[] = []): T | undefined {
    const row = this.query(sql, params).rows[0];
    return row === undefined ? undefined : (Object.values(row)[0] as T);
  }

  /** Several statements in one round trip, in order. */
  batch(statements: ReadonlyArray<{ sql: string; params: readonly PgParam[] }>): PgResult[] {
    if (this.closed) throw new Error('the PostgreSQL store is closed');
    return worker({ op: 'batch', id: this.id, statements }) as PgResult[];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    worker({ op: 'close', id: this.id });
  }
}

/** The schema version of the connected database (0: no stepwise schema yet). */
function pgSchemaVersion(c: PgConnection): number {
  if (c.value<string | null>("SELECT to_regclass('stepwise_schema')::text") === null) return 0;
  return c.value<number>('SELECT max(version) FROM stepwise_schema') ?? 0;
}

/**
 * Why the database is not a stepwise store, or undefined (it is one, or it is empty). Other
 * programs' tables in other schemas (pg-boss's `pgboss`) do not count; stepwise uses the
 * connection's current schema only.
 */
function pgForeignReason(c: PgConnection): string | undefined {
  const names = c
    .rows<{ name: string }>(
      'SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename',
    )
    .map((r) => r.name);
  if (names.includes('stepwise_schema')) {
    return names.includes('runs') ? undefined : 'it has a stepwise_schema table but no stepwise tables';
  }
  if (names.length === 0) return undefined;
  const shown = names.length > 5 ? `${names.slice(0, 5).join(', ')}, ...` : names.join(', ');
  return `its schema holds tables (${shown}) and no stepwise schema`;
}

/** Brings the database to the newest schema; concurrent openers (many workers) wait on one lock. */
function pgMigrate(c: PgConnection): void {
  for (const m of pgMigrations) {
    c.query('BEGIN');
    try {
      // 0x5754 'ST': any constant shared by every stepwise process; held to the end of the transaction.
      c.query('SELECT pg_advisory_xact_lock(22356, 1)');
      c.query(
        'CREATE TABLE IF NOT EXISTS stepwise_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)',
      );
      const current = pgSchemaVersion(c);
      if (current > SCHEMA_VERSION) throw newerSchemaError(current);
      if (m.version > current) {
        c.query(m.sql);
        c.query('INSERT INTO stepwise_schema (version, applied_at) VALUES ($1, $2)', [m.version, Date.now()]);
      }
      c.query('COMMIT');
    } catch (err) {
      c.query('ROLLBACK');
      throw err;
    }
  }
}

export interface PgOpenOptions {
  readonly?: boolean;
}

/** Opens (or, for writing, creates) a store in a PostgreSQL database; the same refusals as SQLite's. */
export function openPgStore(url: string, options: PgOpenOptions = {}): PgStore {
  const readonly = options.readonly ?? false;
  const where = redactUrl(url);
  let c: PgConnection;
  try {
    c = PgConnection.open(url);
  } catch (err) {
    throw new Error(`cannot open store ${where}: ${(err as Error).message}`);
  }
  try {
    const foreign = pgForeignReason(c);
    if (foreign) {
      throw new Error(
        `${where} is a PostgreSQL database but not a stepwise store: ${foreign}. ` +
          'stepwise creates its store only in an empty database (or schema); choose another',
      );
    }
    const version = pgSchemaVersion(c);
    if (version > SCHEMA_VERSION) throw newerSchemaError(version);
    if (readonly) {
      if (version === 0) {
        throw new Error(
          `store ${where} is an empty database (no stepwise schema yet); a run writing to it, or ` +
            '`stepwise store migrate`, creates the store',
        );
      }
      if (version < SCHEMA_VERSION) {
        throw new Error(
          `store ${where} has schema version ${version}; this stepwise reads version ${SCHEMA_VERSION}. ` +
            'Open it once for writing (e.g. `stepwise store migrate`) to upgrade it',
        );
      }
      c.query('SET default_transaction_read_only = on');
    } else {
      pgMigrate(c);
    }
    return new PgStore(c, where, readonly);
  } catch (err) {
    c.close();
    throw err;
  }
}

/** Rows per page when streaming steps (`allSteps`). */
const PAGE = 500;

/** An open PostgreSQL store. */
export class PgStore implements TrajectoryStore {
  readonly backend = 'postgres' as const;
  private depth = 0;

  constructor(
    /** The connection, for the distributed rollouts' own tables (src/distributed). */
    readonly connection: PgConnection,
    readonly path: string,
    readonly readonly: boolean,
  ) {}

  private get c(): PgConnection {
    return this.connection;
  }

  private writable(): void {
    if (this.readonly) {
      throw new Error(`store ${this.path} is open read-only; open it without { readonly: true } to write`);
    }
  }

  // --- transactions -------------------------------------------------------------------------

  transaction<T>(body: () => T): T {
    const level = this.depth;
    if (level === 0) {
      // Reads in a transaction see one snapshot, as SQLite's WAL readers do.
      this.c.query(this.readonly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
    } else {
      this.c.query(`SAVEPOINT sp${level}`);
    }
    this.depth++;
    try {
      const out = body();
      if (out instanceof Promise) throw new Error('a store transaction body must be synchronous');
      this.c.query(level === 0 ? 'COMMIT' : `RELEASE SAVEPOINT sp${level}`);
      return out;
    } catch (err) {
      try {
        this.c.query(level === 0 ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT sp${level}`);
      } catch {
        // The connection itself failed; the server rolls the transaction back.
      }
      throw err;
    } finally {
      this.depth = level;
    }
  }

  // --- reads --------------------------------------------------------------------------------

  runs(): RunInfo[] {
    return this.c.rows<DbRun>(RUNS_SQL).map(runFromDb);
  }

  run(runId: string): RunInfo | undefined {
    return this.runs().find((r) => r.runId === runId);
  }

  lastCompleteIteration(runId: string): number | undefined {
    return (
      this.c.value<number | null>('SELECT max(iteration) FROM iterations WHERE run_id = $1', [runId]) ??
      undefined
    );
  }

  resumePoint(runId: string): ResumePoint {
    return resumePointOf(this.lastCompleteIteration(runId), () => this.checkpoints(runId));
  }

  iterations(runId: string): IterationInfo[] {
    return this.c.rows<IterationInfo>(
      `SELECT i.iteration, i.created_at AS "createdAt",
         count(DISTINCT g.id) AS groups, count(t.id) AS trajectories,
         coalesce(sum(t.length), 0) AS steps,
         coalesce(avg(t.won), 0)::float8 AS "successRate",
         coalesce(avg(t.episode_return), 0)::float8 AS "meanReturn",
         coalesce(avg(t.length), 0)::float8 AS "meanLength"
       FROM iterations i
       LEFT JOIN groups g ON g.iteration_id = i.id
       LEFT JOIN trajectories t ON t.group_id = g.id
       WHERE i.run_id = $1 GROUP BY i.id ORDER BY i.iteration`,
      [runId],
    );
  }

  groups(runId: string, iteration: number): GroupInfo[] {
    const groups = this.c.rows<{
      id: number;
      group_key: string;
      task_id: string;
      task_type: string | null;
      seed: number;
      split: string;
    }>(
      `SELECT g.id, g.group_key, g.task_id, g.task_type, g.seed, g.split FROM groups g
       JOIN iterations i ON i.id = g.iteration_id WHERE i.run_id = $1 AND i.iteration = $2 ORDER BY g.id`,
      [runId, iteration],
    );
    const trajectories = this.c.rows<Omit<TrajectoryInfo, 'won'> & { won: number; group_id: number }>(
      `SELECT group_id, trajectory_key AS "trajectoryId", outcome, won, length, episode_return AS "episodeReturn"
       FROM trajectories WHERE group_id = ANY($1::bigint[]) ORDER BY id`,
      [groups.map((g) => g.id)],
    );
    const byGroup = new Map<number, TrajectoryInfo[]>();
    for (const { group_id, ...t } of trajectories) {
      const list = byGroup.get(group_id) ?? [];
      list.push({ ...t, outcome: decodeText(t.outcome), won: t.won === 1 });
      byGroup.set(group_id, list);
    }
    return groups.map((g) => ({
      groupId: g.group_key,
      taskId: g.task_id,
      taskType: g.task_type,
      seed: g.seed,
      split: g.split,
      trajectories: byGroup.get(g.id) ?? [],
    }));
  }

  trajectory(ref: TrajectoryRef): StepDetail[] {
    const rows = this.c.rows<DbStep>(
      `SELECT ${STEP_COLUMNS} ${STEP_JOINS}
       WHERE i.run_id = $1 AND i.iteration = $2 AND g.group_key = $3 AND t.trajectory_key = $4
       ORDER BY s.step_index`,
      [ref.runId, ref.iteration, ref.groupId, ref.trajectoryId],
    );
    if (rows.length === 0) {
      throw new Error(
        `no trajectory '${ref.trajectoryId}' in group '${ref.groupId}' of run '${ref.runId}', iteration ${ref.iteration}`,
      );
    }
    return this.details(rows);
  }

  /** Step rows with their tool calls and advantages, fetched for all of them in one round trip. */
  private details(rows: DbStep[]): StepDetail[] {
    const ids = rows.map((r) => r.step_id);
    const [calls, advantages] = this.c.batch([
      {
        sql: `SELECT step_id, tool, arguments, started_at, duration_ms, ok, error_kind, truncated, output_chars
              FROM tool_calls WHERE step_id = ANY($1::bigint[]) ORDER BY step_id, call_index`,
        params: [ids],
      },
      {
        sql: `SELECT step_id, estimator, value, details FROM advantages
              WHERE step_id = ANY($1::bigint[]) ORDER BY step_id, estimator`,
        params: [ids],
      },
    ]);
    const callsOf = groupBy(calls!.rows as unknown as Array<DbToolCall & { step_id: number }>);
    const advantagesOf = groupBy(
      advantages!.rows as unknown as Array<{
        step_id: number;
        estimator: string;
        value: number;
        details: string | null;
      }>,
    );
    return rows.map((r) => ({
      ...stepRowFromDb(decodeStep(r)),
      toolCalls: (callsOf.get(r.step_id) ?? []).map((c) =>
        toolCallFromDb({ ...c, arguments: decodeText(c.arguments) }),
      ),
      advantages: (advantagesOf.get(r.step_id) ?? []).map(advantageFromDb),
    }));
  }

  trainingRows(runId: string, iteration: number, estimator?: string): TrainingRow[] {
    if (estimator === undefined) {
      return this.c
        .rows<DbStep>(
          `SELECT ${STEP_COLUMNS} ${STEP_JOINS} WHERE i.run_id = $1 AND i.iteration = $2 ${WRITE_ORDER}`,
          [runId, iteration],
        )
        .map((r) => stepRowFromDb(decodeStep(r)));
    }
    const rows = this.c.rows<DbStep & { advantage: number | null }>(
      `SELECT ${STEP_COLUMNS}, a.value AS advantage ${STEP_JOINS}
       LEFT JOIN advantages a ON a.step_id = s.id AND a.estimator = $1
       WHERE i.run_id = $2 AND i.iteration = $3 ${WRITE_ORDER}`,
      [estimator, runId, iteration],
    );
    return rows.map((r) => {
      const row: TrainingRow = stepRowFromDb(decodeStep(r));
      if (r.advantage !== null) row.advantage = r.advantage;
      return row;
    });
  }

  metricNames(runId: string): string[] {
    return this.c
      .rows<{ name: string }>('SELECT DISTINCT name FROM metrics WHERE run_id = $1 ORDER BY name', [runId])
      .map((r) => r.name);
  }

  metrics(runId: string): MetricRow[] {
    return this.c.rows<MetricRow>(
      'SELECT name, iteration, value FROM metrics WHERE run_id = $1 ORDER BY name, iteration',
      [runId],
    );
  }

  metricMax(runId: string, name: string): number | undefined {
    return (
      this.c.value<number | null>('SELECT max(value) FROM metrics WHERE run_id = $1 AND name = $2', [
        runId,
        name,
      ]) ?? undefined
    );
  }

  metricSeries(runId: string, name: string): MetricPoint[] {
    return this.c.rows<MetricPoint>(
      'SELECT iteration, value FROM metrics WHERE run_id = $1 AND name = $2 ORDER BY iteration',
      [runId, name],
    );
  }

  findTrajectories(runId: string, filter: TrajectoryFilter): TrajectoryMatch[] {
    const where = ['i.run_id = ?'];
    const params: PgParam[] = [runId];
    const add = (condition: string, value: string | number | undefined) => {
      if (value === undefined) return;
      where.push(condition);
      params.push(value);
    };
    add('i.iteration = ?', filter.iteration);
    add('g.task_type = ?', filter.taskType);
    add('g.split = ?', filter.split);
    add('t.won = ?', filter.won === undefined ? undefined : filter.won ? 1 : 0);
    const rows = this.c.rows<Omit<TrajectoryMatch, 'won'> & { won: number }>(
      pgPlaceholders(
        `SELECT i.iteration, g.group_key AS "groupId", g.task_id AS "taskId", g.task_type AS "taskType", g.split,
           t.trajectory_key AS "trajectoryId", t.outcome, t.won, t.length, t.episode_return AS "episodeReturn"
         FROM trajectories t JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
         WHERE ${where.join(' AND ')} ORDER BY i.iteration DESC, g.id, t.id LIMIT ?`,
      ),
      [...params, filter.limit],
    );
    return rows.map((r) => ({ ...r, outcome: decodeText(r.outcome), won: r.won === 1 }));
  }

  taskKinds(runId: string): Array<{ taskType: string | null; split: string }> {
    return this.c.rows(
      `SELECT DISTINCT g.task_type AS "taskType", g.split FROM groups g
       JOIN iterations i ON i.id = g.iteration_id WHERE i.run_id = $1`,
      [runId],
    );
  }

  groupAdvantages(ref: { runId: string; iteration: number; groupId: string }): GroupAdvantage[] {
    const rows = this.c.rows<{
      trajectoryId: string;
      stepIndex: number;
      anchor: string;
      estimator: string;
      value: number;
      details: string | null;
    }>(
      `SELECT t.trajectory_key AS "trajectoryId", s.step_index AS "stepIndex", s.anchor, a.estimator, a.value, a.details
       FROM advantages a JOIN steps s ON s.id = a.step_id JOIN trajectories t ON t.id = s.trajectory_id
       JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
       WHERE i.run_id = $1 AND i.iteration = $2 AND g.group_key = $3 ORDER BY t.id, s.step_index, a.estimator`,
      [ref.runId, ref.iteration, ref.groupId],
    );
    return rows.map((r) => ({
      trajectoryId: r.trajectoryId,
      stepIndex: r.stepIndex,
      anchor: decodeText(r.anchor),
      ...advantageFromDb(r),
    }));
  }

  checkpoints(runId: string): CheckpointInfo[] {
    return this.c
      .rows<{ run_id: string; iteration: number; path: string; created_at: number; info: string }>(
        'SELECT run_id, iteration, path, created_at, info FROM checkpoints WHERE run_id = $1 ORDER BY iteration',
        [runId],
      )
      .map((r) => ({
        runId: r.run_id,
        iteration: r.iteration,
        path: r.path,
        createdAt: r.created_at,
        info: JSON.parse(r.info) as Json,
      }));
  }

  /** Every step in write order, a page at a time (keyset paging: no cursor held between pages). */
  *allSteps(filter: { runId?: string; iteration?: number } = {}): Generator<StepDetail> {
    const where: string[] = [];
    const params: PgParam[] = [];
    if (filter.runId !== undefined) {
      params.push(filter.runId);
      where.push(`i.run_id = $${params.length}`);
    }
    if (filter.iteration !== undefined) {
      params.push(filter.iteration);
      where.push(`i.iteration = $${params.length}`);
    }
    let after: [number, number, number, number] | undefined;
    for (;;) {
      const page = [...where];
      const pageParams = [...params];
      if (after) {
        pageParams.push(...after);
        const n = pageParams.length;
        page.push(`(i.id, g.id, t.id, s.step_index) > ($${n - 3}, $${n - 2}, $${n - 1}, $${n})`);
      }
      const rows = this.c.rows<DbStep & { i_id: number; g_id: number; t_id: number }>(
        `SELECT ${STEP_COLUMNS}, i.id AS i_id, g.id AS g_id, t.id AS t_id ${STEP_JOINS}
         ${page.length ? `WHERE ${page.join(' AND ')}` : ''} ${WRITE_ORDER} LIMIT ${PAGE}`,
        pageParams,
      );
      yield* this.details(rows);
      if (rows.length < PAGE) return;
      const last = rows.at(-1)!;
      after = [last.i_id, last.g_id, last.t_id, last.step_index];
    }
  }

  // --- writes -------------------------------------------------------------------------------

  createRun(runId: string, config: Json = {}, status: RunStatus = 'running'): void {
    this.writable();
    const now = Date.now();
    this.c.query(
      'INSERT INTO runs (id, config, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)',
      [runId, JSON.stringify(config), status, now, now],
    );
  }

  setRunStatus(runId: string, status: RunStatus): void {
    this.writable();
    const r = this.c.query('UPDATE runs SET status = $1, updated_at = $2 WHERE id = $3', [
      status,
      Date.now(),
      runId,
    ]);
    if (r.rowCount === 0) throw new Error(`no run '${runId}' in the store`);
  }

  private requireRun(runId: string): void {
    if (this.c.value('SELECT 1 FROM runs WHERE id = $1', [runId]) === undefined) {
      throw new Error(`no run '${runId}' in the store; create it first (createRun)`);
    }
  }

  private iterationId(runId: string, iteration: number): number | undefined {
    return this.c.value<number>('SELECT id FROM iterations WHERE run_id = $1 AND iteration = $2', [
      runId,
      iteration,
    ]);
  }

  /**
   * One whole iteration in one transaction, as set-based inserts (one statement per table, rows
   * passed as arrays and expanded by unnest): a handful of round trips however large it is.
   */
  writeIteration(runId: string, input: IterationInput, options: WriteOptions = {}): void {
    this.writable();
    // Validate everything first: a bad input fails before any statement, with the SQLite store's messages.
    const prepared = input.groups.map((g) => ({
      g,
      trajectories: g.trajectories.map((t) => {
        const { where, episodeReturn } = checkTrajectory(g.groupId, t);
        return { t, episodeReturn, extras: t.steps.map((s) => checkStep(s, where)) };
      }),
    }));
    for (const [name, value] of Object.entries(input.metrics ?? {}))
      checkMetric(name, input.iteration, value);
    this.transaction(() => {
      this.requireRun(runId);
      if (this.iterationId(runId, input.iteration) !== undefined) {
        throw new Error(`iteration ${input.iteration} of run '${runId}' is already stored`);
      }
      const now = Date.now();
      const iterationId = this.c.value<number>(
        'INSERT INTO iterations (run_id, iteration, created_at) VALUES ($1, $2, $3) RETURNING id',
        [runId, input.iteration, now],
      )!;
      this.insertGroups(iterationId, prepared);
      for (let i = 0; i < prepared.length; i++) options.onGroupWritten?.(i);
      this.putMetrics(runId, input.iteration, input.metrics ?? {});
      this.c.query('UPDATE runs SET updated_at = $1 WHERE id = $2', [now, runId]);
    });
  }

  private insertGroups(
    iterationId: number,
    prepared: Array<{
      g: GroupInput;
      trajectories: Array<{ t: GroupInput['trajectories'][number]; episodeReturn: number; extras: string[] }>;
    }>,
  ): void {
    if (prepared.length === 0) return;
    const groupIds = new Map<string, number>();
    for (const r of this.c.rows<{ id: number; group_key: string }>(
      `INSERT INTO groups (iteration_id, group_key, task_id, task_type, seed, split)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
       RETURNING id, group_key`,
      [
        iterationId,
        prepared.map((p) => p.g.groupId),
        prepared.map((p) => p.g.taskId),
        prepared.map((p) => p.g.taskType ?? null),
        prepared.map((p) => p.g.seed),
        prepared.map((p) => p.g.split),
      ],
    )) {
      groupIds.set(r.group_key, r.id);
    }
    if (groupIds.size !== prepared.length)
      throw new Error('two groups of the iteration have the same groupId');
    const trajectories = prepared.flatMap((p) =>
      p.trajectories.map((x) => ({ ...x, groupId: groupIds.get(p.g.groupId)!, groupKey: p.g.groupId })),
    );
    const trajectoryIds = new Map<string, number>();
    for (const r of this.c.rows<{ id: number; group_id: number; trajectory_key: string }>(
      `INSERT INTO trajectories (group_id, trajectory_key, outcome, won, length, episode_return)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::int[], $6::float8[])
       RETURNING id, group_id, trajectory_key`,
      [
        trajectories.map((x) => x.groupId),
        trajectories.map((x) => x.t.trajectoryId),
        trajectories.map((x) => encodeText(x.t.outcome)),
        trajectories.map((x) => (x.t.won ? 1 : 0)),
        trajectories.map((x) => x.t.steps.length),
        trajectories.map((x) => x.episodeReturn),
      ],
    )) {
      trajectoryIds.set(`${r.group_id}/${r.trajectory_key}`, r.id);
    }
    const steps = trajectories.flatMap((x) =>
      x.t.steps.map((s, i) => ({
        s,
        extras: x.extras[i]!,
        trajectoryId: trajectoryIds.get(`${x.groupId}/${x.t.trajectoryId}`)!,
      })),
    );
    const anchors = steps.map((x) => encodeAnchor(x.s.anchor));
    const stepIds = new Map<string, number>();
    for (const r of this.c.rows<{ id: number; trajectory_id: number; step_index: number }>(
      `INSERT INTO steps (trajectory_id, step_index, role, anchor, anchor_is_json, prompt_text, prompt_tokens,
         response_text, response_tokens, response_logprobs, env_reward, valid, done, extras)
       SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::bytea[],
         $8::text[], $9::bytea[], $10::bytea[], $11::float8[], $12::int[], $13::int[], $14::text[])
       RETURNING id, trajectory_id, step_index`,
      [
        steps.map((x) => x.trajectoryId),
        steps.map((x) => x.s.stepIndex),
        steps.map((x) => encodeText(x.s.role)),
        anchors.map((a) => encodeText(a[0])),
        anchors.map((a) => a[1]),
        steps.map((x) => encodeText(x.s.promptText)),
        steps.map((x) => encodeTokens(x.s.promptTokens)),
        steps.map((x) => encodeText(x.s.responseText)),
        steps.map((x) => encodeTokens(x.s.responseTokens)),
        steps.map((x) => encodeLogprobs(x.s.responseLogprobs)),
        steps.map((x) => x.s.envReward),
        steps.map((x) => (x.s.valid ? 1 : 0)),
        steps.map((x) => (x.s.done ? 1 : 0)),
        steps.map((x) => x.extras),
      ],
    )) {
      stepIds.set(`${r.trajectory_id}/${r.step_index}`, r.id);
    }
    const calls = steps.flatMap((x) =>
      (x.s.toolCalls ?? []).map((c, i) => ({
        c,
        i,
        stepId: stepIds.get(`${x.trajectoryId}/${x.s.stepIndex}`)!,
      })),
    );
    const advantages = steps.flatMap((x) =>
      (x.s.advantages ?? []).map((a) => ({ a, stepId: stepIds.get(`${x.trajectoryId}/${x.s.stepIndex}`)! })),
    );
    for (const { a, stepId } of advantages) checkAdvantage(stepId, a);
    const statements: Array<{ sql: string; params: PgParam[] }> = [];
    if (calls.length > 0) {
      statements.push({
        sql: `INSERT INTO tool_calls (step_id, call_index, tool, arguments, started_at, duration_ms, ok, error_kind,
                truncated, output_chars)
              SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::float8[], $6::float8[],
                $7::int[], $8::text[], $9::int[], $10::int[])`,
        params: [
          calls.map((x) => x.stepId),
          calls.map((x) => x.i),
          calls.map((x) => x.c.tool),
          calls.map((x) => encodeText(x.c.arguments)),
          calls.map((x) => x.c.startedAt),
          calls.map((x) => x.c.durationMs),
          calls.map((x) => (x.c.ok ? 1 : 0)),
          calls.map((x) => x.c.errorKind ?? null),
          calls.map((x) => (x.c.truncated ? 1 : 0)),
          calls.map((x) => x.c.outputChars),
        ],
      });
    }
    if (advantages.length > 0) statements.push(this.upsertAdvantages(advantages));
    if (statements.length > 0) this.c.batch(statements);
  }

  private upsertAdvantages(
    rows: ReadonlyArray<{ a: { estimator: string; value: number; details?: Json }; stepId: number }>,
  ): { sql: string; params: PgParam[] } {
    return {
      // A step may name one estimator twice in one call; the last one wins, as with SQLite's upserts.
      sql: `INSERT INTO advantages (step_id, estimator, value, details)
            SELECT DISTINCT ON (step_id, estimator) step_id, estimator, value, details
            FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[]) WITH ORDINALITY
              AS x(step_id, estimator, value, details, n)
            ORDER BY step_id, estimator, n DESC
            ON CONFLICT (step_id, estimator) DO UPDATE SET value = excluded.value, details = excluded.details`,
      params: [
        rows.map((x) => x.stepId),
        rows.map((x) => x.a.estimator),
        rows.map((x) => x.a.value),
        rows.map((x) => (x.a.details === undefined ? null : JSON.stringify(x.a.details))),
      ],
    };
  }

  writeAdvantages(runId: string, iteration: number, rows: readonly StepAdvantage[]): void {
    this.writable();
    this.transaction(() => {
      const iterationId = this.iterationId(runId, iteration);
      if (iterationId === undefined)
        throw new Error(`iteration ${iteration} of run '${runId}' is not in the store`);
      const found = this.c.rows<{ n: number; id: number | null }>(
        `SELECT x.n, s.id FROM unnest($2::text[], $3::text[], $4::int[]) WITH ORDINALITY AS x(group_key, trajectory_key, step_index, n)
         LEFT JOIN groups g ON g.iteration_id = $1 AND g.group_key = x.group_key
         LEFT JOIN trajectories t ON t.group_id = g.id AND t.trajectory_key = x.trajectory_key
         LEFT JOIN steps s ON s.trajectory_id = t.id AND s.step_index = x.step_index
         ORDER BY x.n`,
        [
          iterationId,
          rows.map((r) => r.groupId),
          rows.map((r) => r.trajectoryId),
          rows.map((r) => r.stepIndex),
        ],
      );
      const resolved = rows.map((r, i) => {
        const stepId = found[i]?.id ?? null;
        if (stepId === null) {
          throw new Error(
            `no step ${r.stepIndex} of trajectory '${r.trajectoryId}' in group '${r.groupId}' ` +
              `(run '${runId}', iteration ${iteration})`,
          );
        }
        checkAdvantage(stepId, r);
        return { a: r, stepId };
      });
      if (resolved.length > 0) {
        const s = this.upsertAdvantages(resolved);
        this.c.query(s.sql, s.params);
      }
    });
  }

  writeMetrics(runId: string, iteration: number, metrics: Record<string, number>): void {
    this.writable();
    for (const [name, value] of Object.entries(metrics)) checkMetric(name, iteration, value);
    this.transaction(() => {
      this.requireRun(runId);
      this.putMetrics(runId, iteration, metrics);
      this.c.query('UPDATE runs SET updated_at = $1 WHERE id = $2', [Date.now(), runId]);
    });
  }

  private putMetrics(runId: string, iteration: number, metrics: Record<string, number>): void {
    const entries = Object.entries(metrics);
    if (entries.length === 0) return;
    this.c.query(
      `INSERT INTO metrics (run_id, iteration, name, value)
       SELECT $1, $2, * FROM unnest($3::text[], $4::float8[])
       ON CONFLICT (run_id, iteration, name) DO UPDATE SET value = excluded.value`,
      [runId, iteration, entries.map((e) => e[0]), entries.map((e) => e[1])],
    );
  }

  addCheckpoint(runId: string, iteration: number, path: string, info: Json = {}): void {
    this.writable();
    this.requireRun(runId);
    this.c.query(
      `INSERT INTO checkpoints (run_id, iteration, path, created_at, info) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (run_id, iteration) DO UPDATE SET path = excluded.path, info = excluded.info`,
      [runId, iteration, path, Date.now(), JSON.stringify(info)],
    );
  }

  // --- check and close ----------------------------------------------------------------------

  /**
   * `store check`: the schema version, then the store's invariants (check.ts's rules in
   * PostgreSQL's dialect). PostgreSQL enforces foreign keys and checks its pages itself, so the
   * SQLite-only integrity and foreign-key pragmas have no counterpart here; the staged rollouts
   * of distributed runs (src/distributed) are checked when the table exists.
   */
  check(): CheckReport {
    const findings: CheckFinding[] = [];
    const version = pgSchemaVersion(this.c);
    if (version !== SCHEMA_VERSION) {
      findings.push({
        severity: 'error',
        check: 'schema version',
        message: `schema version ${version}; expected ${SCHEMA_VERSION}`,
      });
    }
    const counts: Record<string, number> = {};
    const attempt = (check: string, body: () => void) => {
      try {
        body();
      } catch (err) {
        findings.push({ severity: 'error', check, message: `failed: ${(err as Error).message}` });
      }
    };
    if (version === SCHEMA_VERSION) {
      this.transaction(() => {
        attempt('counts', () => {
          for (const t of TABLES) counts[t] = this.c.value<number>(`SELECT count(*) FROM ${t}`)!;
        });
        for (const rule of [...storeRules('postgres'), ...extraRules(this.c)]) {
          attempt(rule.check, () => {
            const n = this.c.value<number>(rule.countSql)!;
            if (n === 0) return;
            const ex = this.c.rows(rule.exampleSql).map((r) => String(Object.values(r)[0]));
            findings.push({ severity: rule.severity, check: rule.check, message: rule.message(n, ex) });
          });
        }
      });
    }
    return { ok: !findings.some((f) => f.severity === 'error'), schemaVersion: version, counts, findings };
  }

  close(): void {
    this.connection.close();
  }
}

/** Rules of tables that only some PostgreSQL stores have (a distributed run's staged rollouts). */
function extraRules(c: PgConnection): ReturnType<typeof storeRules> {
  if (c.value<string | null>("SELECT to_regclass('stepwise_rollouts')::text") === null) return [];
  // A staged rollout of a stored iteration that the iteration does not hold was lost; two staged
  // rows of one (run, iteration, group, sample) cannot exist (primary key), so duplicates show as
  // a stored group holding more trajectories than its samples.
  const lost = `FROM stepwise_rollouts r
    JOIN iterations i ON i.run_id = r.run_id AND i.iteration = r.iteration
    WHERE r.used AND NOT EXISTS (
      SELECT 1 FROM groups g JOIN trajectories t ON t.group_id = g.id
      WHERE g.iteration_id = i.id AND g.group_key = r.group_key AND t.trajectory_key = r.trajectory_key)`;
  return [
    {
      check: 'staged rollouts',
      severity: 'error',
      countSql: `SELECT count(*) ${lost}`,
      exampleSql: `SELECT 'run ' || r.run_id || ', iteration ' || r.iteration || ', group ' || r.group_key ||
        ', sample ' || r.sample ${lost} LIMIT ${EXAMPLES}`,
      message: (n, ex) =>
        `${n} rollouts staged by workers and used by the learner are missing from their stored iteration: ${listed(n, ex)}`,
    },
  ];
}

/** A step row's free texts as written (see text.ts). */
function decodeStep<R extends DbStep>(r: R): R {
  return {
    ...r,
    role: decodeText(r.role),
    outcome: decodeText(r.outcome),
    anchor: decodeText(r.anchor),
    prompt_text: decodeText(r.prompt_text),
    response_text: decodeText(r.response_text),
  };
}

function groupBy<R extends { step_id: number }>(rows: R[]): Map<number, R[]> {
  const out = new Map<number, R[]>();
  for (const r of rows) {
    const list = out.get(r.step_id) ?? [];
    list.push(r);
    out.set(r.step_id, list);
  }
  return out;
}
