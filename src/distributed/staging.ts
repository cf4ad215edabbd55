/**
 * Rollouts staged by workers, waiting for their iteration: the `stepwise_rollouts` table in the
 * PostgreSQL store. A worker inserts one row per finished job, keyed by (run, iteration, attempt,
 * task, sample), with `ON CONFLICT DO NOTHING`: a job that runs twice stores one trajectory. The
 * learner reads an iteration's rows back as trajectories, trains, and writes the iteration to the
 * store's own tables; it marks the rows it trained on `used`, which `store check` verifies
 * against the stored iteration (src/store/postgres/store.ts).
 */
import type { Trajectory } from '../agents/record.ts';
import type { PgConnection } from '../store/postgres/store.ts';

/** Creates the table if it is missing (every learner and worker calls it; concurrent calls are safe). */
export function ensureStaging(c: PgConnection): void {
  c.query('SELECT pg_advisory_lock(22356, 2)');
  try {
    c.query(`CREATE TABLE IF NOT EXISTS stepwise_rollouts (
      run_id          TEXT NOT NULL,
      iteration       INTEGER NOT NULL,
      attempt         INTEGER NOT NULL,
      task_index      INTEGER NOT NULL,
      sample          INTEGER NOT NULL,
      group_key       TEXT NOT NULL,
      trajectory_key  TEXT NOT NULL,
      policy_version  INTEGER NOT NULL,
      trajectory      TEXT NOT NULL,
      worker          TEXT NOT NULL,
      seconds         DOUBLE PRECISION NOT NULL,
      created_at      BIGINT NOT NULL,
      used            BOOLEAN NOT NULL DEFAULT false,
      PRIMARY KEY (run_id, iteration, attempt, task_index, sample)
    )`);
  } finally {
    c.query('SELECT pg_advisory_unlock(22356, 2)');
  }
}

/** Where a staged rollout belongs. */
export interface StagedKey {
  runId: string;
  iteration: number;
  attempt: number;
  taskIndex: number;
  sample: number;
}

/** Stores a finished rollout once; returns false when that key was already stored (a retried job). */
export function stage(
  c: PgConnection,
  key: StagedKey,
  row: { trajectory: Trajectory; policyVersion: number; worker: string; seconds: number },
): boolean {
  const r = c.query(
    `INSERT INTO stepwise_rollouts (run_id, iteration, attempt, task_index, sample, group_key, trajectory_key,
       policy_version, trajectory, worker, seconds, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
    [
      key.runId,
      key.iteration,
      key.attempt,
      key.taskIndex,
      key.sample,
      row.trajectory.groupId,
      row.trajectory.trajectoryId,
      row.policyVersion,
      JSON.stringify(row.trajectory),
      row.worker,
      row.seconds,
      Date.now(),
    ],
  );
  return r.rowCount === 1;
}

/** Whether a key is staged already (a worker skips such a job). */
export function isStaged(c: PgConnection, key: StagedKey): boolean {
  return (
    c.value(
      `SELECT 1 FROM stepwise_rollouts
       WHERE run_id = $1 AND iteration = $2 AND attempt = $3 AND task_index = $4 AND sample = $5`,
      [key.runId, key.iteration, key.attempt, key.taskIndex, key.sample],
    ) !== undefined
  );
}

/** The (task, sample) pairs of an attempt staged so far by a policy at least `minVersion`. */
export function stagedKeys(
  c: PgConnection,
  runId: string,
  iteration: number,
  attempt: number,
  minVersion: number,
): Array<{ taskIndex: number; sample: number }> {
  return c.rows(
    `SELECT task_index AS "taskIndex", sample FROM stepwise_rollouts
     WHERE run_id = $1 AND iteration = $2 AND attempt = $3 AND policy_version >= $4`,
    [runId, iteration, attempt, minVersion],
  );
}

/**
 * Removes an attempt's rows produced by a policy older than `minVersion` (too stale to train on):
 * their jobs are enqueued again under the new version and recomputed.
 */
export function dropStale(
  c: PgConnection,
  runId: string,
  iteration: number,
  attempt: number,
  minVersion: number,
): number {
  return c.query(
    `DELETE FROM stepwise_rollouts
     WHERE run_id = $1 AND iteration = $2 AND attempt = $3 AND policy_version < $4 AND NOT used`,
    [runId, iteration, attempt, minVersion],
  ).rowCount;
}

/** An attempt's staged trajectories in task, then sample order (the in-process rollout's order). */
export function stagedTrajectories(
  c: PgConnection,
  runId: string,
  iteration: number,
  attempt: number,
): Array<{ taskIndex: number; sample: number; policyVersion: number; trajectory: Trajectory }> {
  return c
    .rows<{ taskIndex: number; sample: number; policyVersion: number; trajectory: string }>(
      `SELECT task_index AS "taskIndex", sample, policy_version AS "policyVersion", trajectory
       FROM stepwise_rollouts WHERE run_id = $1 AND iteration = $2 AND attempt = $3
       ORDER BY task_index, sample`,
      [runId, iteration, attempt],
    )
    .map((r) => ({ ...r, trajectory: JSON.parse(r.trajectory) as Trajectory }));
}

/** Marks the rows the learner trains on (checked against the stored iteration by `store check`). */
export function markUsed(
  c: PgConnection,
  runId: string,
  iteration: number,
  keys: ReadonlyArray<{ attempt: number; taskIndex: number; sample: number }>,
): void {
  if (keys.length === 0) return;
  c.query(
    `UPDATE stepwise_rollouts r SET used = true
     FROM unnest($3::int[], $4::int[], $5::int[]) AS k(attempt, task_index, sample)
     WHERE r.run_id = $1 AND r.iteration = $2 AND r.attempt = k.attempt AND r.task_index = k.task_index
       AND r.sample = k.sample`,
    [runId, iteration, keys.map((k) => k.attempt), keys.map((k) => k.taskIndex), keys.map((k) => k.sample)],
  );
}
