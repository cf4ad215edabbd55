/**
 * The PostgreSQL store's schema: schema.ts's migrations translated to PostgreSQL, version for
 * version (same tables, columns, keys and indexes), so both backends hold the same data at the
 * same `SCHEMA_VERSION`. Where SQLite keeps `PRAGMA user_version`, PostgreSQL keeps the table
 * `stepwise_schema`. Integer flags stay 0/1 integers and texts stay text, so rows read back
 * exactly as from SQLite: JSON is checked by a cast to json (unlike jsonb, it takes the \u0000
 * escapes JSON.stringify writes), and NUL in free texts is escaped (text.ts).
 */
import type { Migration } from '../schema.ts';

export const pgMigrations: readonly Migration[] = [
  {
    version: 1,
    description:
      'runs, iterations, groups, trajectories, steps, tool calls, advantages, metrics, checkpoints',
    sql: `
      CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        config      TEXT NOT NULL DEFAULT '{}' CHECK ((config::json) IS NOT NULL),
        status      TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'finished', 'failed', 'stopped')),
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
      );

      -- A row exists only for an iteration written whole (see writer.ts).
      CREATE TABLE iterations (
        id          BIGSERIAL PRIMARY KEY,
        run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration   INTEGER NOT NULL,
        created_at  BIGINT NOT NULL,
        UNIQUE (run_id, iteration)
      );

      CREATE TABLE groups (
        id            BIGSERIAL PRIMARY KEY,
        iteration_id  BIGINT NOT NULL REFERENCES iterations(id) ON DELETE CASCADE,
        group_key     TEXT NOT NULL,
        task_id       TEXT NOT NULL,
        task_type     TEXT,
        seed          BIGINT NOT NULL,
        split         TEXT NOT NULL,
        UNIQUE (iteration_id, group_key)
      );

      CREATE TABLE trajectories (
        id              BIGSERIAL PRIMARY KEY,
        group_id        BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        trajectory_key  TEXT NOT NULL,
        outcome         TEXT NOT NULL,
        won             INTEGER NOT NULL CHECK (won IN (0, 1)),
        length          INTEGER NOT NULL,
        episode_return  DOUBLE PRECISION NOT NULL,
        UNIQUE (group_id, trajectory_key)
      );

      CREATE TABLE steps (
        id                 BIGSERIAL PRIMARY KEY,
        trajectory_id      BIGINT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
        step_index         INTEGER NOT NULL,
        role               TEXT NOT NULL,
        env_reward         DOUBLE PRECISION NOT NULL,
        valid              INTEGER NOT NULL CHECK (valid IN (0, 1)),
        done               INTEGER NOT NULL CHECK (done IN (0, 1)),
        anchor_is_json     INTEGER NOT NULL DEFAULT 0 CHECK (anchor_is_json IN (0, 1)),
        anchor             TEXT NOT NULL,
        extras             TEXT NOT NULL DEFAULT '{}' CHECK ((extras::json) IS NOT NULL),
        prompt_text        TEXT NOT NULL,
        prompt_tokens      BYTEA NOT NULL,
        response_text      TEXT NOT NULL,
        response_tokens    BYTEA NOT NULL,
        response_logprobs  BYTEA NOT NULL,
        UNIQUE (trajectory_id, step_index)
      );

      CREATE TABLE tool_calls (
        id            BIGSERIAL PRIMARY KEY,
        step_id       BIGINT NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
        call_index    INTEGER NOT NULL,
        tool          TEXT NOT NULL,
        arguments     TEXT NOT NULL,
        started_at    DOUBLE PRECISION NOT NULL,
        duration_ms   DOUBLE PRECISION NOT NULL,
        ok            INTEGER NOT NULL CHECK (ok IN (0, 1)),
        error_kind    TEXT,
        truncated     INTEGER NOT NULL CHECK (truncated IN (0, 1)),
        output_chars  INTEGER NOT NULL,
        UNIQUE (step_id, call_index)
      );

      CREATE TABLE advantages (
        id         BIGSERIAL PRIMARY KEY,
        step_id    BIGINT NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
        estimator  TEXT NOT NULL,
        value      DOUBLE PRECISION NOT NULL,
        details    TEXT CHECK (details IS NULL OR (details::json) IS NOT NULL),
        UNIQUE (step_id, estimator)
      );

      CREATE TABLE metrics (
        id         BIGSERIAL PRIMARY KEY,
        run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration  INTEGER NOT NULL,
        name       TEXT NOT NULL,
        value      DOUBLE PRECISION NOT NULL,
        UNIQUE (run_id, iteration, name)
      );

      CREATE TABLE checkpoints (
        id          BIGSERIAL PRIMARY KEY,
        run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration   INTEGER NOT NULL,
        path        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        info        TEXT NOT NULL DEFAULT '{}' CHECK ((info::json) IS NOT NULL),
        UNIQUE (run_id, iteration)
      );
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
      CREATE TABLE served_rollouts (
        id            BIGSERIAL PRIMARY KEY,
        rollout_key   TEXT NOT NULL UNIQUE,
        group_key     TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        reward        DOUBLE PRECISION,
        won           INTEGER CHECK (won IS NULL OR won IN (0, 1)),
        step_rewards  TEXT CHECK (step_rewards IS NULL OR (step_rewards::json) IS NOT NULL),
        rewarded_at   BIGINT
      );

      CREATE TABLE served_steps (
        id                 BIGSERIAL PRIMARY KEY,
        rollout_id         BIGINT NOT NULL REFERENCES served_rollouts(id) ON DELETE CASCADE,
        step_index         INTEGER NOT NULL,
        created_at         BIGINT NOT NULL,
        model              TEXT NOT NULL,
        finish_reason      TEXT NOT NULL,
        reencoded          INTEGER NOT NULL,
        anchor             TEXT NOT NULL,
        messages           TEXT NOT NULL CHECK ((messages::json) IS NOT NULL),
        tool_calls         TEXT NOT NULL CHECK ((tool_calls::json) IS NOT NULL),
        prompt_text        TEXT NOT NULL,
        prompt_tokens      BYTEA NOT NULL,
        response_text      TEXT NOT NULL,
        response_tokens    BYTEA NOT NULL,
        response_logprobs  BYTEA NOT NULL,
        UNIQUE (rollout_id, step_index)
      );
      CREATE INDEX served_rollouts_by_group ON served_rollouts(group_key);
    `,
  },
];
