/**
 * Rollouts as jobs against a real PostgreSQL server: a learner (this process) and three worker
 * processes train the door family for a few iterations; one worker is SIGKILLed in the middle of
 * its first job, whose lease then expires and another worker reruns it. Every group must be
 * complete, nothing duplicated (`store check`, the staged rows, the workers' summaries), and the
 * run must match a single-process run with the same seeds: each worker plays its sample with the
 * in-process rollout's seeds from the same checkpoint, so the trajectories are the same ones.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueRollout } from '../../src/distributed/learner.ts';
import { enqueue, jobId, openQueue } from '../../src/distributed/queue.ts';
import { dropStale, stage } from '../../src/distributed/staging.ts';
import { Policy } from '../../src/policy/policy.ts';
import { openStore, PgStore, type TrajectoryStore } from '../../src/store/index.ts';
import { tokenRows, train } from '../../src/training/trainer.ts';
import { createPgDatabase, dropPgDatabase, pgSkipReason } from '../store/backends.ts';
import { doorHooks, doorTokenizer } from '../training/helpers.ts';
import { resumeConfig, sftConfig } from '../training/resume-helpers.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '../..');
const dir = mkdtempSync(join(tmpdir(), 'stepwise-distributed-'));
const quiet = { log: () => {} };
const ITERATIONS = 3;
let sft = '';
let url = '';

beforeAll(async () => {
  if (pgSkipReason) return;
  url = createPgDatabase('stepwise_dist');
  const result = await train(sftConfig(join(dir, 'sft.db')), {
    ...doorHooks,
    tokenizer: doorTokenizer(),
    ...quiet,
  });
  sft = result.referenceCheckpoint;
}, 300_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (url) dropPgDatabase(url);
});

interface Worker {
  child: ChildProcess;
  out: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startWorker(mode: 'hold' | 'work', db = url): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'worker-child.ts'), db, mode], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w: Worker = {
    child,
    out: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.on('data', (d: Buffer) => {
    w.out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    w.out += d.toString();
  });
  return w;
}

/** Every stored trajectory of a run as comparable text, iteration by iteration. */
function transcript(store: TrajectoryStore, runId: string): string[][] {
  return store
    .iterations(runId)
    .map((it) =>
      store
        .trainingRows(runId, it.iteration)
        .map((r) => `${r.groupId}/${r.trajectoryId}/${r.stepIndex}: ${r.responseText} -> ${r.envReward}`),
    );
}

describe.skipIf(pgSkipReason !== undefined)('a learner and three workers on PostgreSQL', () => {
  it('survives a worker SIGKILLed mid-job and matches the single-process run', async () => {
    // The single-process run with the same config and seeds.
    const single = join(dir, 'single.db');
    await train(resumeConfig(single, sft, ITERATIONS), { ...doorHooks, ...quiet });

    const workers = [startWorker('hold'), startWorker('work'), startWorker('work')];
    const holder = workers[0]!;
    const killed = new Promise<void>((resolve) => {
      holder.child.stdout!.on('data', () => {
        if (holder.out.includes('holding')) {
          holder.child.kill('SIGKILL');
          resolve();
        }
      });
    });
    const enqueued: string[] = [];
    try {
      await train(
        { ...resumeConfig(url, sft, ITERATIONS), checkpointDir: join(dir, 'dist-checkpoints') },
        {
          ...doorHooks,
          ...quiet,
          rollout: queueRollout({
            leaseSeconds: 3,
            maintenanceSeconds: 1,
            pollMs: 100,
            onEnqueued: (jobs) => enqueued.push(...jobs.map(jobId)),
          }),
        },
      );
      await killed;
    } finally {
      for (const w of workers.slice(1)) w.child.kill('SIGTERM');
    }
    expect((await holder.exited).signal).toBe('SIGKILL');
    const summaries = await Promise.all(
      workers.slice(1).map(async (w) => {
        const { code } = await w.exited;
        expect(code, w.out).toBe(0);
        return JSON.parse(/summary (.*)/.exec(w.out)![1]!) as { staged: number; duplicates: number };
      }),
    );

    const jobs = ITERATIONS * 2 * 4;
    expect(new Set(enqueued).size).toBe(jobs);
    // The killed worker staged nothing; the two others staged every job exactly once.
    expect(summaries.reduce((a, s) => a + s.staged, 0)).toBe(jobs);

    const dist = openStore(url, { readonly: true });
    const local = openStore(single, { readonly: true });
    try {
      expect(dist).toBeInstanceOf(PgStore);
      const report = dist.check();
      expect(report.findings, JSON.stringify(report.findings)).toEqual([]);
      expect(report.ok).toBe(true);
      for (const it of dist.iterations('train')) {
        expect(it.groups).toBe(2);
        expect(it.trajectories).toBe(8);
      }
      const staged = (dist as PgStore).connection.rows<{ n: number; used: number }>(
        'SELECT count(*) AS n, count(*) FILTER (WHERE used) AS used FROM stepwise_rollouts',
      )[0]!;
      expect(staged).toEqual({ n: jobs, used: jobs });
      // Same tasks, seeds and weights: the same trajectories, iteration after iteration.
      expect(transcript(dist, 'train')).toEqual(transcript(local, 'train'));
      expect(dist.metricSeries('train', 'success_rate')).toEqual(local.metricSeries('train', 'success_rate'));
    } finally {
      dist.close();
      local.close();
    }
  }, 600_000);

  it('resumes a learner SIGKILLed mid-iteration from the staged rollouts, and drops stale jobs', async () => {
    const db = createPgDatabase('stepwise_resume');
    const single = join(dir, 'single-resume.db');
    await train(resumeConfig(single, sft, ITERATIONS), { ...doorHooks, ...quiet, log: () => {} });
    const config = { ...resumeConfig(db, sft, ITERATIONS), checkpointDir: join(dir, 'resume-checkpoints') };
    const configFile = join(dir, 'resume.json');
    writeFileSync(configFile, JSON.stringify(config));
    const workers = [startWorker('work', db), startWorker('work', db)];
    try {
      // The learner is killed after iteration 1's rollouts are staged, before the iteration is stored.
      const learner = spawn(
        process.execPath,
        ['--import', 'tsx', join(here, 'learner-child.ts'), configFile, '1'],
        {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      await new Promise<void>((resolve, reject) => {
        learner.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('mid')) learner.kill('SIGKILL');
        });
        learner.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        learner.on('exit', (_c, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(out))));
      });
      const mid = openStore(db, { readonly: true });
      expect(mid.lastCompleteIteration('train')).toBe(0);
      mid.close();

      // Resumed: iteration 1's 8 staged rollouts are reused, not enqueued again.
      const enqueued: number[] = [];
      await train(config, {
        ...doorHooks,
        ...quiet,
        resume: true,
        rollout: queueRollout({
          leaseSeconds: 3,
          maintenanceSeconds: 1,
          pollMs: 100,
          onEnqueued: (jobs) => enqueued.push(...jobs.map((j) => j.iteration)),
        }),
      });
      expect(enqueued).toEqual(Array(8).fill(2));

      // A job for a policy version the run has left behind (maxStaleness 0) is dropped unrun.
      const boss = await openQueue(db);
      await enqueue(boss, [
        {
          runId: 'train',
          iteration: 0,
          attempt: 0,
          taskIndex: 99,
          split: 'train',
          taskSeed: 1,
          sample: 0,
          groupSize: 4,
          temperature: 1,
          seed: 1,
          policyVersion: 0,
          policyDir: sft,
          maxStaleness: 0,
        },
      ]);
      await boss.stop({ graceful: false, wait: true, close: true });
      await expect
        .poll(() => workers.map((w) => w.out).join(''), { timeout: 30_000, interval: 200 })
        .toMatch(/dropped run train iteration 0 task 99 sample 0: policy version 0, the run is at 3/);
    } finally {
      for (const w of workers) w.child.kill('SIGTERM');
    }
    for (const w of workers) expect((await w.exited).code, w.out).toBe(0);

    const dist = openStore(db) as PgStore;
    const local = openStore(single, { readonly: true });
    try {
      expect(dist.check()).toMatchObject({ ok: true, findings: [] });
      expect(transcript(dist, 'train')).toEqual(transcript(local, 'train'));
      const c = dist.connection;
      expect(c.value('SELECT count(*) FROM stepwise_rollouts')).toBe(ITERATIONS * 8);
      // A staged row older than the staleness bound is dropped (to be recomputed); a recent one is kept.
      const key = { runId: 'train', iteration: 7, attempt: 0, taskIndex: 0, sample: 0 };
      const trajectory = JSON.parse(
        c.value<string>('SELECT trajectory FROM stepwise_rollouts LIMIT 1')!,
      ) as Parameters<typeof stage>[2]['trajectory'];
      expect(stage(c, key, { trajectory, policyVersion: 5, worker: 'test', seconds: 0 })).toBe(true);
      expect(stage(c, key, { trajectory, policyVersion: 5, worker: 'test', seconds: 0 })).toBe(false);
      expect(dropStale(c, 'train', 7, 0, 7 - 2)).toBe(0);
      expect(dropStale(c, 'train', 7, 0, 7 - 1)).toBe(1);
    } finally {
      dist.close();
      local.close();
      dropPgDatabase(db);
    }
  }, 600_000);

  it("takes a stale rollout's importance ratio against its behaviour log-probs", async () => {
    const policy = await Policy.load(sft);
    try {
      const step = { prompt: [1, 2, 3], response: [4, 5], advantage: 1 };
      const {
        rows: [fresh, stale],
      } = await tokenRows(policy, policy, [step, { ...step, logprobs: [-7, -9], stale: true }]);
      expect(stale!.oldLogprobs!.slice(3)).toEqual([-7, -9]);
      // A fresh step's old log-probs are the current policy's scores.
      expect(fresh!.oldLogprobs!.slice(3)).toEqual(fresh!.refLogprobs!.slice(3));
      expect(fresh!.oldLogprobs!.slice(3)).not.toEqual([-7, -9]);
    } finally {
      await policy.dispose();
    }
  });
});
