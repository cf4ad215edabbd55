/**
 * The trajectory store: one SQLite file (WAL mode) per project or run, opened for writing by the
 * trainer and read-only by the viewer and the CLI's readers.
 *
 *   const store = openStore('runs.db');
 *   store.createRun('alfworld-gigpo', { estimator: 'gigpo' });
 *   store.writeIteration('alfworld-gigpo', { iteration: 0, groups });
 *   store.trainingRows('alfworld-gigpo', 0);
 */
import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { type CheckReport, checkStore } from './check.ts';
import { Checkpointer, SAFETY_NET_PAGES } from './checkpointer.ts';
import { Reader } from './queries.ts';
import { migrate, newerSchemaError, SCHEMA_VERSION, schemaVersion } from './schema.ts';
import type { Json, RunStatus } from './types.ts';
import { Writer } from './writer.ts';

export interface OpenOptions {
  /** Open for reading only (the viewer, `store check`, `store export`): no migration, no writes. */
  readonly?: boolean;
  /**
   * Run WAL checkpoints in a worker thread instead of inside the writer's commits (default true;
   * see checkpointer.ts). Off, SQLite checkpoints during commits as usual.
   */
  backgroundCheckpoint?: boolean;
}

/** An open store: the writer's and the reader's methods on one connection. */
export class TrajectoryStore {
  private readonly writer: Writer | undefined;
  private readonly reader: Reader;

  constructor(
    readonly db: Database.Database,
    readonly path: string,
    readonly readonly: boolean,
    private readonly checkpointer?: Checkpointer,
  ) {
    this.writer = readonly ? undefined : new Writer(db);
    this.reader = new Reader(db);
  }

  private get w(): Writer {
    if (!this.writer)
      throw new Error(`store ${this.path} is open read-only; open it without { readonly: true } to write`);
    return this.writer;
  }

  // --- writes ---
  createRun(runId: string, config: Json = {}, status: RunStatus = 'running'): void {
    this.w.createRun(runId, config, status);
  }
  setRunStatus(runId: string, status: RunStatus): void {
    this.w.setRunStatus(runId, status);
  }
  writeIteration: Writer['writeIteration'] = (...a) => {
    this.w.writeIteration(...a);
    this.checkpointer?.nudge();
  };
  writeAdvantages: Writer['writeAdvantages'] = (...a) => {
    this.w.writeAdvantages(...a);
    this.checkpointer?.nudge();
  };
  writeMetrics: Writer['writeMetrics'] = (...a) => this.w.writeMetrics(...a);
  addCheckpoint: Writer['addCheckpoint'] = (...a) => this.w.addCheckpoint(...a);

  // --- reads ---
  runs: Reader['runs'] = () => this.reader.runs();
  run: Reader['run'] = (...a) => this.reader.run(...a);
  lastCompleteIteration: Reader['lastCompleteIteration'] = (...a) => this.reader.lastCompleteIteration(...a);
  resumePoint: Reader['resumePoint'] = (...a) => this.reader.resumePoint(...a);
  iterations: Reader['iterations'] = (...a) => this.reader.iterations(...a);
  groups: Reader['groups'] = (...a) => this.reader.groups(...a);
  trajectory: Reader['trajectory'] = (...a) => this.reader.trajectory(...a);
  trainingRows: Reader['trainingRows'] = (...a) => this.reader.trainingRows(...a);
  metricNames: Reader['metricNames'] = (...a) => this.reader.metricNames(...a);
  metricSeries: Reader['metricSeries'] = (...a) => this.reader.metricSeries(...a);
  checkpoints: Reader['checkpoints'] = (...a) => this.reader.checkpoints(...a);
  allSteps: Reader['allSteps'] = (...a) => this.reader.allSteps(...a);

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
 * Opens (or, for writing, creates) a store. Refuses a file from a newer schema, a file that is
 * not a SQLite database, and, read-only, a file that does not exist or predates the schema.
 */
export function openStore(path: string, options: OpenOptions = {}): TrajectoryStore {
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
    if (version > SCHEMA_VERSION) throw newerSchemaError(version);
    if (readonly) {
      if (version < SCHEMA_VERSION) {
        throw new Error(
          `store ${path} has schema version ${version}; this stepwise reads version ${SCHEMA_VERSION}. ` +
            'Open it once for writing (e.g. `stepwise store migrate`) to upgrade it',
        );
      }
    } else {
      // 16 kB pages (default 4 kB) for a new file: a step row (~3-4 kB of text and blobs) then
      // shares a page with others instead of spilling into overflow pages; inserts measured faster.
      if (version === 0) db.pragma('page_size = 16384');
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
      db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
      // A WAL file larger than this is cut back when it restarts, so it never stays huge.
      db.pragma(`journal_size_limit = ${64 * 2 ** 20}`);
      checkpointer = new Checkpointer(path);
    }
    return new TrajectoryStore(db, path, readonly, checkpointer);
  } catch (err) {
    db.close();
    throw err;
  }
}
