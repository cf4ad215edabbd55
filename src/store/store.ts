/**
 * The trajectory store: one SQLite file (WAL mode) per project or run, opened for writing by the
 * trainer and read-only by the viewer and the CLI's readers; or, given a `postgres://` URL, a
 * PostgreSQL database (postgres/store.ts) behind the same `TrajectoryStore` interface (api.ts).
 *
 *   const store = openStore('runs.db');
 *   store.createRun('alfworld-gigpo', { estimator: 'gigpo' });
 *   store.writeIteration('alfworld-gigpo', { iteration: 0, groups });
 *   store.trainingRows('alfworld-gigpo', 0);
 */
import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { StepAdvantage, TrajectoryStore } from './api.ts';
import { type CheckReport, checkStore } from './check.ts';
import { Checkpointer, SAFETY_NET_BYTES } from './checkpointer.ts';
import { isPostgresUrl, openPgStore } from './postgres/store.ts';
import { Reader } from './queries.ts';
import { foreignReason, migrate, newerSchemaError, SCHEMA_VERSION, schemaVersion } from './schema.ts';
import type { IterationInput, Json, RunStatus } from './types.ts';
import { type WriteOptions, Writer } from './writer.ts';

export interface OpenOptions {
  /** Open for reading only (the viewer, `store check`, `store export`): no migration, no writes. */
  readonly?: boolean;
  /**
   * Run WAL checkpoints in a worker thread instead of inside the writer's commits (default true;
   * see checkpointer.ts). Off, SQLite checkpoints during commits as usual.
   */
  backgroundCheckpoint?: boolean;
}

/**
 * An open SQLite store: every query of `Reader` (runs, iterations, groups, trajectory, trainingRows,
 * metricSeries, resumePoint...) plus the writes, on one connection (`db`, for SQLite-only tools).
 */
export class SqliteStore extends Reader implements TrajectoryStore {
  readonly backend = 'sqlite' as const;
  private readonly writer: Writer | undefined;

  constructor(
    db: Database.Database,
    readonly path: string,
    readonly readonly: boolean,
    private readonly checkpointer?: Checkpointer,
  ) {
    super(db);
    this.writer = readonly ? undefined : new Writer(db);
  }

  private get w(): Writer {
    if (!this.writer) {
      throw new Error(`store ${this.path} is open read-only; open it without { readonly: true } to write`);
    }
    return this.writer;
  }

  createRun(runId: string, config: Json = {}, status: RunStatus = 'running'): void {
    this.w.createRun(runId, config, status);
  }

  setRunStatus(runId: string, status: RunStatus): void {
    this.w.setRunStatus(runId, status);
  }

  /** Writes one whole iteration in one transaction (see Writer.writeIteration). */
  writeIteration(runId: string, input: IterationInput, options?: WriteOptions): void {
    this.w.writeIteration(runId, input, options);
    this.checkpointer?.nudge();
  }

  /** Adds or replaces one estimator's advantages of stored steps, all or nothing. */
  writeAdvantages(runId: string, iteration: number, rows: readonly StepAdvantage[]): void {
    this.w.writeAdvantages(runId, iteration, rows);
    this.checkpointer?.nudge();
  }

  /** Adds or replaces metrics of an iteration (e.g. an evaluation after the update). */
  writeMetrics(runId: string, iteration: number, metrics: Record<string, number>): void {
    this.w.writeMetrics(runId, iteration, metrics);
  }

  /** Records where the weights of an iteration were saved (resumePoint returns it). */
  addCheckpoint(runId: string, iteration: number, path: string, info: Json = {}): void {
    this.w.addCheckpoint(runId, iteration, path, info);
  }

  transaction<T>(body: () => T): T {
    return this.db.transaction(body)();
  }

  check(): CheckReport {
    return checkStore(this.db);
  }

  /** Closes the store; a writer first copies the WAL into the database file (a plain file to copy). */
  close(): void {
    this.checkpointer?.close();
    if (!this.readonly && this.db.open) this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}

/**
 * Opens (or, for writing, creates) a store: a PostgreSQL database for a `postgres://` or
 * `postgresql://` URL, a SQLite file otherwise.
 */
export function openStore(location: string, options: OpenOptions = {}): TrajectoryStore {
  return isPostgresUrl(location) ? openPgStore(location, options) : openSqliteStore(location, options);
}

/**
 * Opens (or, for writing, creates) a SQLite store. Refuses a file from a newer schema, a file that is
 * not a SQLite database, a SQLite database of another program (see `foreignReason`), and,
 * read-only, a file that does not exist or predates the schema.
 */
export function openSqliteStore(path: string, options: OpenOptions = {}): SqliteStore {
  const readonly = options.readonly ?? false;
  if (readonly && !existsSync(path)) throw new Error(`no store at ${path}: the file does not exist`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new Error(`${path} is a directory; expected a store file`);
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw new Error(`cannot open store ${path}: ${(err as Error).message}`);
  }
  try {
    let version: number;
    try {
      // The first read is where SQLite notices a file that is not a database.
      version = schemaVersion(db);
      db.prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      throw new Error(
        `${path} is not a stepwise store (not a SQLite database, or corrupt): ${(err as Error).message}`,
      );
    }
    // Never add stepwise's tables to another program's database, nor advise migrating it.
    const foreign = foreignReason(db);
    if (foreign) {
      throw new Error(
        `${path} is a SQLite database but not a stepwise store: ${foreign}. ` +
          'stepwise creates its store only in a new or empty file; choose another path',
      );
    }
    if (version > SCHEMA_VERSION) throw newerSchemaError(version);
    if (readonly) {
      if (version === 0) {
        throw new Error(
          `store ${path} is an empty SQLite file (no stepwise schema yet); a run writing to it, or ` +
            '`stepwise store migrate`, creates the store',
        );
      }
      if (version < SCHEMA_VERSION) {
        throw new Error(
          `store ${path} has schema version ${version}; this stepwise reads version ${SCHEMA_VERSION}. ` +
            'Open it once for writing (e.g. `stepwise store migrate`) to upgrade it',
        );
      }
    } else {
      // 64 kB pages (SQLite's largest; default 4 kB) for a new file: a step row (~3-4 kB of text
      // and blobs) shares a page with many others, so inserts split and log far fewer pages.
      // Measured, CPU for 38,400 step rows: 4 kB 560-650 ms, 16 kB ~375, 32 kB ~275, 64 kB ~240.
      if (version === 0) db.pragma('page_size = 65536');
      db.pragma('journal_mode = WAL');
      // NORMAL is safe in WAL mode: a crash of the process loses nothing committed; only a power
      // loss may drop the last transactions, never corrupt the file.
      db.pragma('synchronous = NORMAL');
      // Wait for a checkpoint in progress (the background one) instead of failing with SQLITE_BUSY.
      db.pragma('busy_timeout = 10000');
      migrate(db);
    }
    db.pragma('foreign_keys = ON');
    let checkpointer: Checkpointer | undefined;
    if (!readonly && (options.backgroundCheckpoint ?? true)) {
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      db.pragma(`wal_autocheckpoint = ${Math.floor(SAFETY_NET_BYTES / pageSize)}`);
      // A WAL file larger than this is cut back when it restarts, so it never stays huge.
      db.pragma(`journal_size_limit = ${64 * 2 ** 20}`);
      checkpointer = new Checkpointer(path);
    }
    return new SqliteStore(db, path, readonly, checkpointer);
  } catch (err) {
    db.close();
    throw err;
  }
}
