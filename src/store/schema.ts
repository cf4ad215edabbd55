/**
 * The store's schema as an ordered list of migrations. The database's `PRAGMA user_version` is
 * the number of migrations applied; opening a store applies the missing ones in order, each in
 * its own transaction. A migration, once released, is never edited: changes go in a new one.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description:
      'runs, iterations, groups, trajectories, steps, tool calls, advantages, metrics, checkpoints',
    sql: `
      CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        config      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
        status      TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'finished', 'failed', 'stopped')),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
      ) STRICT;

      -- A row exists only for an iteration written whole (see writer.ts).
      CREATE TABLE iterations (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration   INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        UNIQUE (run_id, iteration)
      ) STRICT;

      CREATE TABLE groups (
        id            INTEGER PRIMARY KEY,
        iteration_id  INTEGER NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
        group_key     TEXT NOT NULL,  -- the writer's groupId; other tables reference the integer id
        task_id       TEXT NOT NULL,
        task_type     TEXT,
        seed          INTEGER NOT NULL,
        split         TEXT NOT NULL,
        UNIQUE (iteration_id, group_key)
      ) STRICT;

      CREATE TABLE trajectories (
        id              INTEGER PRIMARY KEY,
        group_id        INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        trajectory_key  TEXT NOT NULL,  -- the writer's trajectoryId
        outcome         TEXT NOT NULL,
        won             INTEGER NOT NULL CHECK (won IN (0, 1)),
        length          INTEGER NOT NULL,
        episode_return  REAL NOT NULL,
        UNIQUE (group_id, trajectory_key)
      ) STRICT;

      CREATE TABLE steps (
        id                 INTEGER PRIMARY KEY,
        trajectory_id      INTEGER NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
        step_index         INTEGER NOT NULL,
        role               TEXT NOT NULL,
        env_reward         REAL NOT NULL,
        valid              INTEGER NOT NULL CHECK (valid IN (0, 1)),
        done               INTEGER NOT NULL CHECK (done IN (0, 1)),
        anchor_is_json     INTEGER NOT NULL DEFAULT 0 CHECK (anchor_is_json IN (0, 1)),
        -- Large columns last: SQLite reads a row's columns in order, so scans of the small
        -- ones above (checks, statistics) skip the overflow pages of texts and blobs.
        anchor             TEXT NOT NULL,
        extras             TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(extras)),
        prompt_text        TEXT NOT NULL,
        prompt_tokens      BLOB NOT NULL,
        response_text      TEXT NOT NULL,
        response_tokens    BLOB NOT NULL,
        response_logprobs  BLOB NOT NULL,
        UNIQUE (trajectory_id, step_index)
      ) STRICT;

      CREATE TABLE tool_calls (
        id            INTEGER PRIMARY KEY,
        step_id       INTEGER NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
        call_index    INTEGER NOT NULL,
        tool          TEXT NOT NULL,
        arguments     TEXT NOT NULL,
        started_at    REAL NOT NULL,
        duration_ms   REAL NOT NULL,
        ok            INTEGER NOT NULL CHECK (ok IN (0, 1)),
        error_kind    TEXT,
        truncated     INTEGER NOT NULL CHECK (truncated IN (0, 1)),
        output_chars  INTEGER NOT NULL,
        UNIQUE (step_id, call_index)
      ) STRICT;

      CREATE TABLE advantages (
        id         INTEGER PRIMARY KEY,
        step_id    INTEGER NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
        estimator  TEXT NOT NULL,
        value      REAL NOT NULL,
        details    TEXT CHECK (details IS NULL OR json_valid(details)),
        UNIQUE (step_id, estimator)
      ) STRICT;

      CREATE TABLE metrics (
        id         INTEGER PRIMARY KEY,
        run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration  INTEGER NOT NULL,
        name       TEXT NOT NULL,
        value      REAL NOT NULL,
        UNIQUE (run_id, iteration, name)
      ) STRICT;

      CREATE TABLE checkpoints (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration   INTEGER NOT NULL,
        path        TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        info        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(info)),
        UNIQUE (run_id, iteration)
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: "indexes for the viewer's lookups by parent and the metric series",
    sql: `
      CREATE INDEX groups_by_iteration ON groups(iteration_id);
      CREATE INDEX trajectories_by_group ON trajectories(group_id);
      CREATE INDEX tool_calls_by_step ON tool_calls(step_id);
      CREATE INDEX advantages_by_estimator ON advantages(estimator, step_id);
      CREATE INDEX metrics_by_name ON metrics(run_id, name, iteration);
    `,
  },
  {
    version: 3,
    description: 'served rollouts and their steps (`stepwise serve --record`), before any run trains on them',
    sql: `
      -- A rollout's reward is NULL until POST /v1/rewards. Which run trained on it is not stored
      -- here: a run's iteration holds it as the trajectory of the same keys (see served.ts).
      CREATE TABLE served_rollouts (
        id            INTEGER PRIMARY KEY,
        rollout_key   TEXT NOT NULL UNIQUE,
        group_key     TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        reward        REAL,
        won           INTEGER CHECK (won IS NULL OR won IN (0, 1)),
        step_rewards  TEXT CHECK (step_rewards IS NULL OR json_valid(step_rewards)),
        rewarded_at   INTEGER
      ) STRICT;

      CREATE TABLE served_steps (
        id                 INTEGER PRIMARY KEY,
        rollout_id         INTEGER NOT NULL REFERENCES served_rollouts(id) ON DELETE CASCADE,
        step_index         INTEGER NOT NULL,
        created_at         INTEGER NOT NULL,
        model              TEXT NOT NULL,
        finish_reason      TEXT NOT NULL,
        reencoded          INTEGER NOT NULL,
        anchor             TEXT NOT NULL,
        messages           TEXT NOT NULL CHECK (json_valid(messages)),
        tool_calls         TEXT NOT NULL CHECK (json_valid(tool_calls)),
        prompt_text        TEXT NOT NULL,
        prompt_tokens      BLOB NOT NULL,
        response_text      TEXT NOT NULL,
        response_tokens    BLOB NOT NULL,
        response_logprobs  BLOB NOT NULL,
        UNIQUE (rollout_id, step_index)
      ) STRICT;
      CREATE INDEX served_rollouts_by_group ON served_rollouts(group_key);
    `,
  },
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = migrations[migrations.length - 1]!.version;

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the database to version `to` (default: the newest). A database from a newer stepwise
 * is refused rather than read with a schema this code does not know.
 */
export function migrate(db: Database.Database, to: number = SCHEMA_VERSION): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) throw newerSchemaError(current);
  for (const m of migrations) {
    if (m.version <= current || m.version > to) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
}

/**
 * Why the database is not a stepwise store, or undefined when it is one (or is empty, so that
 * stepwise may create its schema in it). A stepwise store at version v >= 1 has the first
 * migration's `runs` table; a file without a version but with tables belongs to something else.
 */
export function foreignReason(db: Database.Database): string | undefined {
  const names = db
    .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
    .pluck()
    .all() as string[];
  const version = schemaVersion(db);
  const shown = names.length > 5 ? `${names.slice(0, 5).join(', ')}, ...` : names.join(', ');
  if (version === 0 && names.length > 0) return `it holds tables (${shown}) and no stepwise schema`;
  if (version > 0 && !names.includes('runs')) {
    return `its user_version is ${version} but it has no stepwise tables${names.length > 0 ? ` (it holds ${shown})` : ''}`;
  }
  return undefined;
}

export function newerSchemaError(found: number): Error {
  return new Error(
    `store schema version ${found} is newer than this stepwise supports (version ${SCHEMA_VERSION}); ` +
      'upgrade stepwise to open it',
  );
}
