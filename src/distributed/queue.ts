/**
 * The rollout queue: pg-boss on the store's PostgreSQL database (its own `pgboss` schema). pg-boss
 * gives leases (a job's `expireInSeconds`), retries, and maintenance (expiring abandoned jobs),
 * so a worker killed mid-job costs one lease, not the job. Job ids are derived from the job's key
 * and policy version, so enqueuing an iteration twice (a learner that resumes) adds no job twice.
 * docs/ARCHITECTURE.md compares pg-boss with graphile-worker.
 */
import { createHash } from 'node:crypto';
import PgBoss from 'pg-boss';
import { DEFAULT_LEASE, type LeaseOptions, ROLLOUT_QUEUE, type RolloutJob } from './types.ts';

export interface QueueOptions extends Partial<LeaseOptions> {
  /**
   * Run pg-boss's maintenance here (expiring jobs whose lease ran out, archiving): the learner
   * does; workers do not need to.
   */
  supervise?: boolean;
  /** Seconds between maintenance runs (pg-boss's default 120; a lease expires at most this late). */
  maintenanceSeconds?: number;
}

/** A started pg-boss with the rollout queue created. */
export async function openQueue(url: string, options: QueueOptions = {}): Promise<PgBoss> {
  const lease = { ...DEFAULT_LEASE, ...definedOnly(options) };
  const boss = new PgBoss({
    connectionString: url,
    application_name: 'stepwise-queue',
    max: 4,
    supervise: options.supervise ?? false,
    schedule: false,
    maintenanceIntervalSeconds: options.maintenanceSeconds ?? 10,
  });
  // pg-boss reports background errors (a maintenance query failing) as events; without a
  // listener Node would crash the process on them.
  boss.on('error', (err) => console.error(`stepwise queue: ${err.message}`));
  await boss.start();
  // The learner and workers start together; pg-boss's create_queue run by two of them at once can
  // deadlock (PostgreSQL aborts one: 40P01) or collide on the queue's key (23505). The loser
  // retries and then finds the queue made.
  for (let attempt = 0; ; attempt++) {
    try {
      if (!(await boss.getQueue(ROLLOUT_QUEUE))) {
        await boss.createQueue(ROLLOUT_QUEUE, {
          name: ROLLOUT_QUEUE,
          retryLimit: lease.retryLimit,
          expireInSeconds: lease.leaseSeconds,
        });
      }
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt >= 5 || (code !== '40P01' && code !== '23505')) throw err;
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
  }
  return boss;
}

function definedOnly(o: QueueOptions): Partial<LeaseOptions> {
  const out: Partial<LeaseOptions> = {};
  if (o.leaseSeconds !== undefined) out.leaseSeconds = o.leaseSeconds;
  if (o.retryLimit !== undefined) out.retryLimit = o.retryLimit;
  return out;
}

/** A job's id: a UUID made from its key and policy version (the same job always gets the same id). */
export function jobId(
  j: Pick<RolloutJob, 'runId' | 'iteration' | 'attempt' | 'taskIndex' | 'sample' | 'policyVersion'>,
): string {
  const h = createHash('sha1')
    .update(JSON.stringify([j.runId, j.iteration, j.attempt, j.taskIndex, j.sample, j.policyVersion]))
    .digest('hex');
  // Version-5 layout (name-based, SHA-1), so PostgreSQL's uuid type takes it.
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Enqueues jobs (one insert); jobs whose id is already queued or done are not added again. */
export async function enqueue(
  boss: PgBoss,
  jobs: readonly RolloutJob[],
  lease: Partial<LeaseOptions> = {},
): Promise<void> {
  if (jobs.length === 0) return;
  const l = { ...DEFAULT_LEASE, ...lease };
  await boss.insert(
    jobs.map((data) => ({
      id: jobId(data),
      name: ROLLOUT_QUEUE,
      data,
      retryLimit: l.retryLimit,
      expireInSeconds: l.leaseSeconds,
    })),
  );
}

/** The queue's failed jobs among `jobs` (retries exhausted), with their last error. */
export async function failedJobs(boss: PgBoss, jobs: readonly RolloutJob[]): Promise<string[]> {
  const out: string[] = [];
  for (const j of jobs) {
    const job = await boss.getJobById(ROLLOUT_QUEUE, jobId(j));
    if (job?.state === 'failed') {
      const output = job.output as { message?: string } | null;
      out.push(`task ${j.taskIndex}, sample ${j.sample}: ${output?.message ?? JSON.stringify(output)}`);
    }
  }
  return out;
}
