/**
 * Rollouts as jobs against a real PostgreSQL server: a learner (this process) and three worker
 * processes train the door family for a few iterations; one worker is SIGKILLed in the middle of
 * its first job, whose lease then expires and another worker reruns it. Every group must be
 * complete, nothing duplicated (`store check`, the staged rows, the workers' summaries), and the
 * run must match a single-process run with the same seeds: each worker plays its sample with the
 * in-process rollout's seeds from the same checkpoint, so the trajectories are the same ones.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueRollout } from '../../src/distributed/learner.ts';
import { jobId } from '../../src/distributed/queue.ts';
import { openStore, PgStore, type TrajectoryStore } from '../../src/store/index.ts';
import { train } from '../../src/training/trainer.ts';
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

function startWorker(mode: 'hold' | 'work'): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'worker-child.ts'), url, mode], {
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
});
