/**
 * The learner's side of a distributed run: `queueRollout` is a `TrainHooks.rollout` that, in place
 * of rolling out in-process, enqueues one job per (task, group sample) of the iteration, tagged
 * with the policy version and its checkpoint, and waits until workers have staged every
 * trajectory. Tasks, seeds, dynamic sampling and the order of the result are the in-process
 * rollout's (src/training/rollout.ts), so credit, update and the store see the same input.
 *
 *   await train(config, { rollout: queueRollout({ leaseSeconds: 300 }) });
 */
import { resolve } from 'node:path';
import type PgBoss from 'pg-boss';
import type { Trajectory } from '../agents/record.ts';
import { PgStore } from '../store/postgres/store.ts';
import type { RunContext } from '../training/context.ts';
import { informativeGroups, type RolloutResult, taskSeed } from '../training/rollout.ts';
import { hashSeed } from '../util/random.ts';
import { enqueue, failedJobs, openQueue } from './queue.ts';
import { dropStale, ensureStaging, markUsed, stagedKeys, stagedTrajectories } from './staging.ts';
import type { LeaseOptions, RolloutJob } from './types.ts';

export interface QueueRolloutOptions extends Partial<LeaseOptions> {
  /**
   * Rows staged by a policy at most this many versions older than the iteration's are trained on
   * (their behaviour log-probs are stored with them, and the loss's importance ratio uses them);
   * older ones are dropped and recomputed. Default 0: on-policy only.
   */
  maxStaleness?: number;
  /** Milliseconds between looks at the staged rows (default 250). */
  pollMs?: number;
  /** Seconds between the queue's maintenance runs, which expire abandoned jobs (default 10). */
  maintenanceSeconds?: number;
  /** Called with each job list as it is enqueued (tests watch the progress of an iteration). */
  onEnqueued?: (jobs: readonly RolloutJob[]) => void;
}

/** The rollout hook; it opens the queue on first use and closes it when the process exits. */
export function queueRollout(
  options: QueueRolloutOptions = {},
): (ctx: RunContext, it: number, policyDir: string) => Promise<RolloutResult> {
  let boss: Promise<PgBoss> | undefined;
  return async (ctx, it, policyDir) => {
    const { store, config } = ctx;
    if (!(store instanceof PgStore)) {
      throw new Error(
        `rollouts as jobs need a PostgreSQL store (--db postgres://...); ${config.db} is a SQLite file that workers on other machines cannot reach`,
      );
    }
    ensureStaging(store.connection);
    boss ??= openQueue(config.db, {
      supervise: true,
      maintenanceSeconds: options.maintenanceSeconds,
      leaseSeconds: options.leaseSeconds,
      retryLimit: options.retryLimit,
    });
    const queue = await boss;
    try {
      return await rolloutByJobs(ctx, store, queue, it, resolve(policyDir), options);
    } finally {
      // The queue lives as long as the iteration: a learner between iterations holds no connection.
      boss = undefined;
      await queue.stop({ graceful: false, wait: true, close: true });
    }
  };
}

async function rolloutByJobs(
  ctx: RunContext,
  store: PgStore,
  boss: PgBoss,
  it: number,
  policyDir: string,
  options: QueueRolloutOptions,
): Promise<RolloutResult> {
  const { config } = ctx;
  const c = store.connection;
  const started = performance.now();
  const maxStaleness = options.maxStaleness ?? 0;
  const minVersion = it - maxStaleness;
  const sampling = hashSeed(`sample:${config.seed}:${it}`) % 2 ** 30;
  const want = config.tasksPerIteration;
  const dynamic = config.dynamicSampling.enabled;
  type Row = { attempt: number; taskIndex: number; sample: number; trajectory: Trajectory };
  let kept: Row[] = [];
  let all: Row[] = [];
  for (let attempt = 0; attempt < (dynamic ? config.dynamicSampling.retries + 1 : 1); attempt++) {
    const have = new Set(kept.map((t) => t.trajectory.groupId)).size;
    if (have >= want) break;
    const jobs: RolloutJob[] = [];
    for (let k = 0; k < want - have; k++) {
      for (let sample = 0; sample < config.groupSize; sample++) {
        jobs.push({
          runId: config.runId,
          iteration: it,
          attempt,
          taskIndex: k,
          split: config.split,
          taskSeed: taskSeed(config.seed, it, attempt, k),
          sample,
          groupSize: config.groupSize,
          temperature: config.loop.temperature,
          seed: sampling + attempt,
          policyVersion: it,
          policyDir,
          maxStaleness,
        });
      }
    }
    const dropped = dropStale(c, config.runId, it, attempt, minVersion);
    if (dropped > 0)
      ctx.log(`iter ${it}: ${dropped} staged rollouts older than policy version ${minVersion} recomputed`);
    const key = (j: { taskIndex: number; sample: number }) => `${j.taskIndex}/${j.sample}`;
    const staged = new Set(stagedKeys(c, config.runId, it, attempt, minVersion).map(key));
    const missing = jobs.filter((j) => !staged.has(key(j)));
    await enqueue(boss, missing, options);
    options.onEnqueued?.(missing);
    ctx.progress({ type: 'start', phase: 'rollout', iteration: it, total: jobs.length });
    let lastFailureCheck = Date.now();
    for (;;) {
      const done = new Set(stagedKeys(c, config.runId, it, attempt, minVersion).map(key));
      ctx.progress({ type: 'advance', phase: 'rollout', done: jobs.filter((j) => done.has(key(j))).length });
      if (jobs.every((j) => done.has(key(j)))) break;
      if (Date.now() - lastFailureCheck > 5000) {
        lastFailureCheck = Date.now();
        const failed = await failedJobs(
          boss,
          jobs.filter((j) => !done.has(key(j))),
        );
        if (failed.length > 0) {
          throw new Error(
            `iteration ${it}: ${failed.length} rollout jobs failed after their retries: ${failed.slice(0, 3).join('; ')}`,
          );
        }
      }
      await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
    ctx.progress({ type: 'end', phase: 'rollout' });
    const rows: Row[] = stagedTrajectories(c, config.runId, it, attempt)
      .filter((r) => r.policyVersion >= minVersion)
      .map((r) => ({ ...r, attempt, trajectory: markStale(r.trajectory, r.policyVersion, it) }));
    all = all.concat(rows);
    const informative = new Set(informativeGroups(rows.map((r) => r.trajectory)).map((t) => t.groupId));
    kept = kept.concat(dynamic ? rows.filter((r) => informative.has(r.trajectory.groupId)) : rows);
  }
  // Nothing informative at all: train on everything, as the in-process rollout does.
  const trained = kept.length > 0 ? kept : all;
  // The store keeps no trajectory without steps (training/record.ts), so only those with steps are "used".
  markUsed(
    c,
    config.runId,
    it,
    trained.filter((r) => r.trajectory.steps.length > 0),
  );
  return {
    trajectories: trained.map((r) => r.trajectory),
    all: all.map((r) => r.trajectory),
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * A trajectory sampled by an older policy than iteration `it`'s carries its version on every step
 * (`extras.policyVersion`, stored with the row): the update then takes its importance ratio
 * against the stored behaviour log-probs (training/credit.ts), not the current policy's scores.
 */
function markStale(t: Trajectory, version: number, it: number): Trajectory {
  if (version >= it) return t;
  return { ...t, steps: t.steps.map((s) => ({ ...s, extras: { ...s.extras, policyVersion: version } })) };
}
