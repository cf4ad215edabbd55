/**
 * The `distributed` suite (issue 17): rollouts as jobs on a PostgreSQL queue. Rollout throughput
 * of code/math iterations (the Python sandbox does the work the policy asks for) with 1, 2 and 4
 * `stepwise worker` processes and the scaling efficiency, and the store's insert speed on
 * PostgreSQL beside SQLite's on the same step rows, measured side by side in this process.
 *
 * PostgreSQL: STEPWISE_TEST_PG when set (a server whose user may create databases), otherwise a
 * throwaway cluster started with scripts/pg-test-cluster.sh for the run and stopped after it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { queueRollout } from '../../src/distributed/learner.ts';
import { openStore } from '../../src/store/index.ts';
import { PgConnection } from '../../src/store/postgres/store.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import { train } from '../../src/training/trainer.ts';
import { GROUP_SIZE, GROUPS_PER_ITERATION, makeIteration, STEPS_PER_TRAJECTORY } from '../store-bench.ts';
import type { BenchContext, Suite } from '../suite.ts';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const WORKERS = [1, 2, 4];
const STORE_ITERATIONS = 4;

/** The code/math runs: a tiny policy SFT'd on the experts' Python programs, so it calls the sandbox. */
function codemathConfig(db: string): TrainConfigInput {
  return {
    env: 'codemath',
    envOptions: { kinds: ['product', 'sum'], digits: 3 },
    estimator: 'grpo',
    loop: { maxSteps: 3, maxTokens: 48 },
    policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
    groupSize: 4,
    tasksPerIteration: 8,
    iterations: 0,
    ppo: { miniBatchSize: 16, learningRate: 3e-4 },
    eval: { every: 0, tasks: 1 },
    sft: { tasks: 64, validTasks: 4, maxSteps: 160, batchSize: 8, learningRate: 3e-3, evalEvery: 40 },
    db,
  };
}

/** A PostgreSQL server for the run, and how to stop it. */
function server(dir: string): { url: string; stop: () => void } {
  const given = process.env.STEPWISE_TEST_PG;
  if (given) return { url: given, stop: () => {} };
  const pgdir = join(dir, 'pg');
  const port = String(50_000 + Math.floor(Math.random() * 10_000));
  const script = join(root, 'scripts/pg-test-cluster.sh');
  const url = execFileSync('bash', [script, 'start', pgdir, port], { encoding: 'utf8' }).trim();
  return { url, stop: () => execFileSync('bash', [script, 'stop', pgdir]) };
}

function createDatabase(serverUrl: string, name: string): string {
  const admin = PgConnection.open(serverUrl);
  try {
    admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    admin.query(`CREATE DATABASE ${name}`);
  } finally {
    admin.close();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Step rows per second writing STORE_ITERATIONS iterations of the credit suite's rows; wall and CPU. */
function insertSpeed(location: string): { rowsPerS: number; rowsPerCpuS: number } {
  const store = openStore(location);
  store.createRun('bench');
  const payloads = [makeIteration(0), makeIteration(1)];
  const rows = STORE_ITERATIONS * GROUPS_PER_ITERATION * GROUP_SIZE * STEPS_PER_TRAJECTORY;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let it = 0; it < STORE_ITERATIONS; it++)
    store.writeIteration('bench', { iteration: it, groups: payloads[it % 2]! });
  store.close();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { rowsPerS: rows / seconds, rowsPerCpuS: rows / ((cpu.user + cpu.system) / 1e6) };
}

/** Trajectories per second of iteration 1 of a queue run with `n` worker processes (iteration 0 warms them up). */
async function rolloutSpeed(
  ctx: BenchContext,
  url: string,
  sft: string,
  n: number,
  dir: string,
): Promise<{ perS: number; jobSeconds: number; toolCallsPerStep: number }> {
  const workers: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const child = spawn(process.execPath, [join(root, 'bin/stepwise.js'), 'worker', '--db', url], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    workers.push(child);
  }
  const jobs = queueRollout({ pollMs: 100 });
  const timed: Array<{ it: number; seconds: number; trajectories: number }> = [];
  try {
    await train(
      {
        ...codemathConfig(url),
        iterations: 2,
        policy: { checkpoint: sft },
        sft: { enabled: false },
        checkpointDir: join(dir, `checkpoints-${n}`),
      },
      {
        log: () => {},
        rollout: async (c, it, policyDir) => {
          const t0 = performance.now();
          const r = await jobs(c, it, policyDir);
          timed.push({ it, seconds: (performance.now() - t0) / 1000, trajectories: r.all.length });
          return r;
        },
      },
    );
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(
      workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))),
    );
  }
  const measured = timed.find((t) => t.it === 1)!;
  const perS = measured.trajectories / measured.seconds;
  // What a job costs inside its worker, and whether the policy's programs reached the sandbox.
  const c = PgConnection.open(url);
  const jobSeconds = c.value<number>('SELECT avg(seconds) FROM stepwise_rollouts WHERE iteration = 1')!;
  const calls = c.value<number>('SELECT count(*) FROM tool_calls')!;
  const steps = c.value<number>('SELECT count(*) FROM steps')!;
  c.close();
  ctx.log(
    `distributed: ${n} worker(s): ${measured.trajectories} trajectories in ${measured.seconds.toFixed(1)} s (${perS.toFixed(2)}/s); ` +
      `a job takes ${jobSeconds.toFixed(2)} s in its worker; ${calls} tool calls in ${steps} steps`,
  );
  return { perS, jobSeconds, toolCallsPerStep: calls / steps };
}

export const suite: Suite = {
  name: 'distributed',
  description:
    'rollouts as jobs on PostgreSQL: code/math trajectories/s with 1, 2, 4 worker processes, scaling efficiency; store insert rows/s, PostgreSQL beside SQLite',
  quick: false,
  async run(ctx) {
    const dir = mkdtempSync(join(tmpdir(), 'stepwise-bench-distributed-'));
    const pg = server(dir);
    try {
      // Insert speed: the same rows into each backend, alternating, twice each (median-free: both runs reported).
      const sqlite: number[] = [];
      const postgres: number[] = [];
      const postgresCpu: number[] = [];
      const sqliteCpu: number[] = [];
      for (let round = 0; round < 2; round++) {
        const s = insertSpeed(join(dir, `store-${round}.db`));
        sqlite.push(s.rowsPerS);
        sqliteCpu.push(s.rowsPerCpuS);
        const p = insertSpeed(createDatabase(pg.url, `stepwise_bench_store_${round}`));
        postgres.push(p.rowsPerS);
        postgresCpu.push(p.rowsPerCpuS);
        ctx.log(
          `store: SQLite ${s.rowsPerS.toFixed(0)} rows/s (${s.rowsPerCpuS.toFixed(0)}/CPU-s), PostgreSQL ${p.rowsPerS.toFixed(0)} rows/s (${p.rowsPerCpuS.toFixed(0)} client rows/CPU-s)`,
        );
      }
      const best = (xs: number[]) => Math.max(...xs);

      ctx.log('distributed: SFT of the tiny code/math policy');
      const sft = (await train(codemathConfig(join(dir, 'sft.db')), { log: () => {} })).referenceCheckpoint;
      const runs = [];
      for (const n of WORKERS) {
        runs.push(await rolloutSpeed(ctx, createDatabase(pg.url, `stepwise_bench_w${n}`), sft, n, dir));
      }
      const [one, two, four] = runs.map((r) => r.perS) as [number, number, number];
      const results = {
        rollout_trajectories_per_s_1_worker: one,
        rollout_trajectories_per_s_2_workers: two,
        rollout_trajectories_per_s_4_workers: four,
        scaling_efficiency_2_workers: two / (2 * one),
        scaling_efficiency_4_workers: four / (4 * one),
        job_seconds_in_worker_1_worker: runs[0]!.jobSeconds,
        job_seconds_in_worker_4_workers: runs[2]!.jobSeconds,
        tool_calls_per_step: runs[0]!.toolCallsPerStep,
        store_insert_rows_per_s_sqlite: best(sqlite),
        store_insert_rows_per_s_postgres: best(postgres),
        store_insert_postgres_vs_sqlite: best(postgres) / best(sqlite),
        store_insert_client_rows_per_cpu_s_sqlite: best(sqliteCpu),
        store_insert_client_rows_per_cpu_s_postgres: best(postgresCpu),
      };
      return {
        results,
        report: [
          `Rollouts: each run is 2 GRPO iterations of 8 code/math tasks x G=4 (32 jobs an iteration, at most 3 steps each, the Python sandbox running the policy's programs) from a tiny SFT checkpoint; the figure is iteration 1 (iteration 0 starts the workers, their sandboxes and policies). Workers are \`stepwise worker\` processes with concurrency 1 on the same machine as the learner and PostgreSQL. **This machine has ${availableParallelism()} cores shared with other work**: more workers than free cores cannot scale, so efficiency below 1 at 2 and 4 workers measures the machine, not the queue; on several machines each worker brings its own cores.`,
          `Store: ${STORE_ITERATIONS} iterations of ${GROUPS_PER_ITERATION * GROUP_SIZE * STEPS_PER_TRAJECTORY} step rows (the credit suite's rows: 300 prompt and 40 response tokens, texts and log-probs), written to a new SQLite file and to a new PostgreSQL database (local server, default fsync) alternately, best of 2 rounds each. PostgreSQL rows go through the synchronous API (a worker thread, one unnest INSERT per table per iteration); its client CPU excludes the server's.`,
        ].join('\n\n'),
      };
    } finally {
      pg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
