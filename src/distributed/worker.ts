/**
 * `stepwise worker`: takes rollout jobs from the queue and runs them. A job names a run, an
 * iteration's (task, sample) and the policy version with its checkpoint; the worker builds the
 * run's task family from the config the store holds (once per run), loads the checkpoint (once
 * per version), plays that one sample with the in-process rollout's seeds, and stages the
 * trajectory (idempotent: a job run twice stores it once). Jobs older than the run's policy
 * version by more than their `maxStaleness` are dropped unrun.
 */
import { hostname } from 'node:os';
import { Policy } from '../policy/policy.ts';
import { openPgStore, type PgStore } from '../store/postgres/store.ts';
import { parseTrainConfig, type TrainConfig } from '../training/config.ts';
import { makeFamily } from '../training/families/index.ts';
import type { FamilyHooks, TaskFamily } from '../training/family.ts';
import type { Json } from '../util/json.ts';
import { openQueue } from './queue.ts';
import { ensureStaging, isStaged, stage } from './staging.ts';
import { ROLLOUT_QUEUE, type RolloutJob } from './types.ts';

export interface WorkerOptions {
  /** The PostgreSQL store (and queue) URL. */
  db: string;
  /** Jobs run at once in this process (default 1). */
  concurrency?: number;
  /** Seconds between polls of an empty queue (default 0.5; pg-boss's minimum). */
  pollSeconds?: number;
  /** The worker's name in staged rows and logs (default host:pid). */
  name?: string;
  /** The family hooks the learner ran with, when it used its own (API users). */
  hooks?: FamilyHooks;
  /** Stops taking jobs when aborted; jobs in flight finish. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Called as each job starts running (tests use it to kill a worker in the middle of a job). */
  onJob?: (job: RolloutJob) => void;
}

export interface WorkerSummary {
  /** Jobs whose trajectory this worker staged. */
  staged: number;
  /** Jobs already staged by an earlier run of the same job (a retry after an expired lease). */
  duplicates: number;
  /** Jobs too stale to run. */
  dropped: number;
}

/** Runs until `signal` aborts; resolves with what it did. */
export async function runWorker(options: WorkerOptions): Promise<WorkerSummary> {
  const log = options.log ?? ((line: string) => console.log(line));
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`--concurrency ${options.concurrency}: expected a positive integer`);
  }
  const store = openPgStore(options.db);
  ensureStaging(store.connection);
  const boss = await openQueue(options.db, { supervise: false });
  const summary: WorkerSummary = { staged: 0, duplicates: 0, dropped: 0 };
  const runs = new RunCache(store, options.hooks ?? {});
  const handle = async (job: RolloutJob): Promise<unknown> => {
    if (isStaged(store.connection, job)) {
      summary.duplicates++;
      return { duplicate: true };
    }
    const current = (store.lastCompleteIteration(job.runId) ?? -1) + 1;
    if (job.policyVersion < current - job.maxStaleness) {
      summary.dropped++;
      log(
        `worker ${name}: dropped run ${job.runId} iteration ${job.iteration} task ${job.taskIndex} sample ${job.sample}: policy version ${job.policyVersion}, the run is at ${current} (maxStaleness ${job.maxStaleness})`,
      );
      return { dropped: true };
    }
    options.onJob?.(job);
    const started = performance.now();
    const { family, config } = await runs.family(job.runId);
    const policy = await runs.policy(job.policyDir, config);
    const task = family.task(job.split as Parameters<TaskFamily['task']>[0], job.taskSeed);
    const [trajectory] = await family.rollout(policy, {
      tasks: [task],
      groupSize: job.groupSize,
      temperature: job.temperature,
      seed: job.seed,
      samples: [job.sample],
    });
    if (!trajectory)
      throw new Error(`the rollout of task ${job.taskIndex}, sample ${job.sample} returned nothing`);
    const seconds = (performance.now() - started) / 1000;
    const fresh = stage(store.connection, job, {
      trajectory,
      policyVersion: job.policyVersion,
      worker: name,
      seconds,
    });
    if (fresh) summary.staged++;
    else summary.duplicates++;
    return { steps: trajectory.steps.length, won: trajectory.won, seconds };
  };
  for (let i = 0; i < concurrency; i++) {
    let id = '';
    id = await boss.work<RolloutJob>(
      ROLLOUT_QUEUE,
      { batchSize: 1, pollingIntervalSeconds: options.pollSeconds ?? 0.5 },
      async ([job]) => {
        const out = await handle(job!.data);
        // pg-boss waits a polling interval after every fetch; a worker that just finished a job
        // asks for the next one at once (only an empty queue makes it wait).
        boss.notifyWorker(id);
        return out;
      },
    );
  }
  log(`worker ${name}: taking rollout jobs (concurrency ${concurrency})`);
  await new Promise<void>((resolve) => {
    if (options.signal?.aborted) resolve();
    options.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  // Jobs in flight finish (graceful) before the queue and the store close.
  await boss.stop({ graceful: true, wait: true, close: true, timeout: 120_000 });
  await runs.close();
  store.close();
  log(
    `worker ${name}: stopped; ${summary.staged} trajectories staged, ${summary.duplicates} duplicates skipped, ${summary.dropped} stale jobs dropped`,
  );
  return summary;
}

/** Each run's family (from its stored config) and the newest policy version, loaded once. */
class RunCache {
  private readonly families = new Map<string, Promise<{ family: TaskFamily; config: TrainConfig }>>();
  private loaded: { dir: string; policy: Promise<Policy> } | undefined;

  constructor(
    private readonly store: PgStore,
    private readonly hooks: FamilyHooks,
  ) {}

  family(runId: string): Promise<{ family: TaskFamily; config: TrainConfig }> {
    let f = this.families.get(runId);
    if (!f) {
      const run = this.store.run(runId);
      if (!run) throw new Error(`no run '${runId}' in ${this.store.path}`);
      // `reference` is the trainer's note beside the config (see src/cli/resume.ts).
      const { reference: _reference, ...stored } = run.config as Record<string, Json>;
      const config = parseTrainConfig(stored);
      f = makeFamily(config, this.hooks).then((family) => ({ family, config }));
      this.families.set(runId, f);
    }
    return f;
  }

  /** The policy of `dir`; a newer version replaces (and releases) the one held. */
  async policy(dir: string, config: TrainConfig): Promise<Policy> {
    if (this.loaded?.dir !== dir) {
      const previous = this.loaded;
      this.loaded = { dir, policy: Policy.load(dir, { device: config.device, dtype: config.policy.dtype }) };
      // Jobs of the old version still running keep their policy until they end; release it later.
      if (previous) void previous.policy.then((p) => setTimeout(() => void p.dispose(), 60_000).unref());
    }
    return this.loaded.policy;
  }

  async close(): Promise<void> {
    for (const f of this.families.values()) await (await f).family.close?.();
    if (this.loaded) await (await this.loaded.policy).dispose();
  }
}
