// End to end on the household world: SFT, one short run per estimator, a diverging run, and a run
// killed mid-iteration (SIGKILL, through the CLI) then resumed.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import { DivergenceError, taskSeed, train } from '../../src/training/trainer.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-train-'));
const quiet = { log: () => {} };

/** Small enough for a test: 2 task types, 4 receptacles, short loops, a small model. */
const base = {
  envOptions: {
    receptacles: 4,
    objects: 1,
    taskTypes: ['pick_and_place_simple', 'pick_heat_then_place_in_recep'],
    maxSteps: 8,
  },
  loop: { history: 1, maxSteps: 3, maxTokens: 32 },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
  groupSize: 3,
  tasksPerIteration: 2,
  iterations: 1,
  ppo: { miniBatchSize: 8, learningRate: 3e-4 },
  eval: { every: 1, tasks: 3 },
} satisfies TrainConfigInput;

let sftDir = '';

beforeAll(async () => {
  // GiGPO's run does the SFT; the other estimators start from its checkpoint.
  const result = await train(
    {
      ...base,
      estimator: 'gigpo',
      sft: { tasks: 24, validTasks: 4, maxSteps: 30, batchSize: 16, learningRate: 3e-3, evalEvery: 15 },
      db: join(dir, 'gigpo.db'),
    },
    quiet,
  );
  sftDir = result.referenceCheckpoint;
  expect(result.sft!.steps).toBeGreaterThan(0);
  // Behaviour cloning lowers the loss on held-out demonstrations.
  expect(result.sft!.curve.at(-1)!.validLoss).toBeLessThan(result.sft!.curve[0]!.validLoss);
});

function checkRun(db: string, estimator: string, iterations: number) {
  const store = openStore(db, { readonly: true });
  try {
    expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(store.run('train')!.status).toBe('finished');
    const its = store.iterations('train');
    expect(its.map((i) => i.iteration)).toEqual([...Array(iterations).keys()]);
    for (const it of its) expect(it.trajectories).toBe(base.tasksPerIteration * base.groupSize);
    for (const name of [
      'success_rate',
      'invalid_rate',
      'mean_return',
      'kl',
      'entropy',
      'clip_fraction',
      'grad_norm',
      'loss',
      'rollout_tokens_per_s',
      'update_tokens_per_s',
    ]) {
      const series = store.metricSeries('train', name);
      expect(series, name).toHaveLength(iterations);
      for (const p of series) expect(Number.isFinite(p.value), `${name} = ${p.value}`).toBe(true);
    }
    // Every stored step carries the estimator's advantage, finite.
    for (let i = 0; i < iterations; i++) {
      const rows = store.trainingRows('train', i, estimator);
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) expect(Number.isFinite(r.advantage)).toBe(true);
    }
    expect(store.checkpoints('train').map((c) => c.iteration)).toEqual([...Array(iterations).keys()]);
    expect(store.metricSeries('train', 'eval/valid-unseen/success')).toHaveLength(iterations);
  } finally {
    store.close();
  }
}

describe('household training', () => {
  it('gigpo: SFT then RL writes a complete store with finite metrics', () => {
    checkRun(join(dir, 'gigpo.db'), 'gigpo', 1);
  });

  it.each(['grpo', 'hgpo', 'rloo'] as const)('%s: a short run from the SFT checkpoint', async (estimator) => {
    const db = join(dir, `${estimator}.db`);
    const result = await train(
      { ...base, estimator, iterations: 2, policy: { checkpoint: sftDir }, sft: { enabled: false }, db },
      quiet,
    );
    expect(result.referenceCheckpoint).toBe(sftDir);
    for (const side of [result.before, result.after]) {
      for (const e of Object.values(side)) {
        expect(e.tasks).toBe(3);
        expect(Object.keys(e.byType).length).toBeGreaterThan(0);
      }
    }
    checkRun(db, estimator, 2);
  });

  it('the scaled SFT recipe runs inside train: fresh demonstrations, selection on action accuracy, DAgger', async () => {
    const lines: string[] = [];
    const result = await train(
      {
        ...base,
        estimator: 'grpo',
        iterations: 0,
        sft: {
          tasks: 12,
          validTasks: 4,
          maxSteps: 8,
          batchSize: 8,
          evalEvery: 4,
          learningRate: 3e-3,
          warmupSteps: 2,
          decay: 'cosine',
          fresh: true,
          selectTasks: 3,
          dagger: { every: 4, tasks: 2, share: 0.5, temperature: 0 },
        },
        db: join(dir, 'scaled.db'),
      },
      { log: (line) => lines.push(line) },
    );
    expect(lines.join('\n')).toContain('fresh demonstrations every batch');
    const sft = result.sft!;
    expect(sft.selection!.map((s) => s.step)).toEqual([0, 4, 8]);
    for (const s of sft.selection!) expect(s.value).toBeGreaterThanOrEqual(0);
    expect(sft.daggerSamples).toBeGreaterThan(0);
    // fresh tasks every batch: more distinct samples than the 12 fixed tasks could give twice over
    expect(sft.samplesSeen).toBeGreaterThanOrEqual(8 * 8 * 0.5);
  });

  it('a diverging run stops with a message and keeps its last good checkpoint', async () => {
    const db = join(dir, 'diverge.db');
    const config = {
      ...base,
      ppo: { ...base.ppo, miniBatchSize: 2, maxKl: 1e-12 },
      policy: { checkpoint: sftDir },
      sft: { enabled: false },
      db,
    };
    const error = await train(config, quiet).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DivergenceError);
    expect((error as Error).message).toMatch(/KL to the reference .* passed ppo.maxKl/);
    expect((error as DivergenceError).lastGoodCheckpoint).toBe(sftDir);
    const store = openStore(db, { readonly: true });
    expect(store.run('train')!.status).toBe('failed');
    expect(store.iterations('train')).toEqual([]);
    store.close();
  });

  it('a bad config is rejected before any work, naming the field', async () => {
    const db = join(dir, 'bad.db');
    await expect(train({ ...base, ppo: { epochs: 0 }, db }, quiet)).rejects.toThrow(/'ppo.epochs'/);
    expect(existsSync(db)).toBe(false);
  });

  it('a run killed mid-iteration resumes from its last complete iteration (CLI)', async () => {
    const db = join(dir, 'resume.db');
    const configFile = join(dir, 'resume.json');
    const iterations = 4;
    writeFileSync(
      configFile,
      JSON.stringify({
        ...base,
        estimator: 'gigpo',
        iterations,
        eval: { every: 0, tasks: 2 },
        policy: { checkpoint: sftDir },
        sft: { enabled: false },
      }),
    );
    const cli = (args: string[]) =>
      spawn(
        process.execPath,
        ['bin/stepwise.js', 'train', configFile, '--db', db, '--no-progress', ...args],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
    const first = cli([]);
    await waitForIteration(db, 1, first);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));

    const before = openStore(db, { readonly: true });
    const stored = before.lastCompleteIteration('train')!;
    const trajectoriesBefore = before.iterations('train').map((i) => i.trajectories);
    before.close();
    expect(stored).toBeGreaterThanOrEqual(1);
    expect(stored).toBeLessThan(iterations - 1);

    // Resuming with another estimator would mix two experiments in one run.
    await expect(
      train(
        { ...JSON.parse(readFileSync(configFile, 'utf8')), estimator: 'grpo', db },
        { ...quiet, resume: true },
      ),
    ).rejects.toThrow(/'estimator': "grpo" differs from the stored run's "gigpo"/);

    const summary = join(dir, 'summary.json');
    const second = cli(['--resume', '--summary', summary]);
    let out = '';
    second.stdout!.on('data', (d) => (out += d));
    second.stderr!.on('data', (d) => (out += d));
    const code = await new Promise((r) => second.once('exit', r));
    expect(code, out).toBe(0);
    expect(out).toContain(`resuming run 'train' at iteration ${stored + 1}`);

    const store = openStore(db, { readonly: true });
    expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
    const its = store.iterations('train');
    // Every iteration once, the earlier ones untouched, each with its full set of trajectories.
    expect(its.map((i) => i.iteration)).toEqual([0, 1, 2, 3]);
    expect(its.slice(0, trajectoriesBefore.length).map((i) => i.trajectories)).toEqual(trajectoriesBefore);
    for (const it of its) expect(it.trajectories).toBe(base.tasksPerIteration * base.groupSize);
    // The resumed iterations played the tasks an uninterrupted run draws.
    for (let i = 0; i < iterations; i++) {
      const seeds = store.groups('train', i).map((g) => g.taskId);
      expect(seeds.length).toBe(base.tasksPerIteration);
      for (let k = 0; k < base.tasksPerIteration; k++) expect(seeds[k]).toContain(`/${taskSeed(0, i, 0, k)}`);
    }
    expect(store.checkpoints('train').map((c) => c.iteration)).toEqual([0, 1, 2, 3]);
    expect(store.run('train')!.status).toBe('finished');
    store.close();

    const json = JSON.parse(readFileSync(summary, 'utf8'));
    expect(json.db).toBe(db);
    for (const side of ['before', 'after']) {
      expect(json[side].success).toBeGreaterThanOrEqual(0);
      expect(json[side].success).toBeLessThanOrEqual(1);
      expect(typeof json[side].validSeen.success).toBe('number');
      // the evaluation's task count (stored with its rates, so a resumed run still has it) and interval
      expect(json[side].tasks).toBe(2);
      expect(json[side].ci95).toHaveLength(2);
      expect(json[side].ci95[0]).toBeLessThanOrEqual(json[side].success);
      expect(json[side].ci95[1]).toBeGreaterThanOrEqual(json[side].success);
    }
    // 'before' was read back from the store (rates only), so no paired difference can be formed
    expect(json.difference).toBeNull();
    expect(readFileSync(join(dir, 'resume-curve.svg'), 'utf8')).toMatch(
      /^<svg[\s\S]*polyline[\s\S]*<\/svg>\n$/,
    );
    expect(out).toMatch(/task type\s+seen before\s+seen after\s+unseen before\s+unseen after/);

    // Resuming the finished run again has nothing to do: its stored evaluation comes back as it was.
    const again = await train(
      { ...JSON.parse(readFileSync(configFile, 'utf8')), db },
      { ...quiet, resume: true },
    );
    expect(again.iterationsRun).toBe(0);
    expect(again.after['valid-unseen'].success).toBe(json.after.success);
    const reread = openStore(db, { readonly: true });
    expect(reread.metricSeries('train', 'after/valid-unseen/success')).toHaveLength(1);
    reread.close();
  });
});

/** Resolves once iteration `n` of the run is stored (the child is then busy with iteration n + 1). */
async function waitForIteration(db: string, n: number, child: ChildProcess): Promise<void> {
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the training child exited early:\n${log}`);
    if (existsSync(db)) {
      try {
        const store = openStore(db, { readonly: true });
        const last = store.lastCompleteIteration('train');
        store.close();
        if (last !== undefined && last >= n) return;
      } catch {
        // The writer is creating the file; try again.
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
