/**
 * `stepwise train --db <db> --resume` (what a finished run prints) continues the stored run with
 * its stored config, and a config that differs from it is refused, naming each differing field.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resumeInput } from '../../src/cli/resume.ts';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import { train } from '../../src/training/trainer.ts';

const root = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'stepwise-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Not the CLI's default (household preset, runId 'train'), so a resume that ignored the store shows. */
const config = {
  runId: 'doors-grpo',
  estimator: 'grpo',
  envOptions: { receptacles: 4, objects: 1, taskTypes: ['pick_and_place_simple'], maxSteps: 4 },
  loop: { history: 1, maxSteps: 2, maxTokens: 24 },
  policy: { model: { width: 32, layers: 1, heads: 2, contextLength: 384 }, tokenizerTasks: 10 },
  sft: { tasks: 6, validTasks: 2, maxSteps: 6, batchSize: 8, evalEvery: 3 },
  groupSize: 2,
  tasksPerIteration: 1,
  iterations: 1,
  ppo: { miniBatchSize: 4 },
  eval: { every: 0, tasks: 1 },
} satisfies TrainConfigInput;

const db = join(dir, 'run.db');
const configFile = join(dir, 'config.json');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/stepwise.js', 'train', ...args, '--no-progress'], {
    cwd: root,
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

function stored() {
  const store = openStore(db, { readonly: true });
  try {
    return { runs: store.runs().map((r) => r.runId), iterations: store.iterations('doors-grpo').length };
  } finally {
    store.close();
  }
}

beforeAll(async () => {
  writeFileSync(configFile, JSON.stringify({ ...config, db }));
  await train({ ...config, db }, { log: () => {} });
  expect(stored()).toEqual({ runs: ['doors-grpo'], iterations: 1 });
});

describe('train --resume', () => {
  it('continues the stored run with its stored config: no config file needed', () => {
    const r = cli('--db', db, '--resume', '--iterations', '2');
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain("resuming run 'doors-grpo' at iteration 1");
    expect(stored()).toEqual({ runs: ['doors-grpo'], iterations: 2 });
  });

  it('refuses a config that differs from the stored one, naming the fields, and writes nothing', () => {
    const r = cli(configFile, '--resume', '--estimator', 'gigpo', '--iterations', '3');
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/differs from the stored run's in estimator: stored "grpo", given "gigpo"/);
    const again = cli('--db', db, '--resume', '--seed', '5');
    expect(again.status).toBe(1);
    expect(again.out).toMatch(/seed: stored 0, given 5/);
    expect(stored()).toEqual({ runs: ['doors-grpo'], iterations: 2 });
  });

  it('the same config, with a new iteration count, device or checkpoint folder, is accepted', () => {
    const input = resumeInput(db, { config: { ...config, db }, flags: { iterations: 9, device: 'cpu' } });
    expect(input).toMatchObject({ runId: 'doors-grpo', estimator: 'grpo', iterations: 9, device: 'cpu', db });
    // A copied store may put its new checkpoints elsewhere.
    const moved = resumeInput(db, {
      config: { ...config, db, checkpointDir: join(dir, 'elsewhere') },
      flags: {},
    });
    expect(moved.checkpointDir).toBe(join(dir, 'elsewhere'));
  });

  it('a store of several runs needs the run named; an unknown run or an empty store is refused', () => {
    const several = join(dir, 'several.db');
    const store = openStore(several);
    store.createRun('a', { runId: 'a' });
    store.createRun('b', { runId: 'b' });
    store.close();
    expect(() => resumeInput(several, { flags: {} })).toThrow(
      /holds 2 runs \(a, b\); name one with --run <id>/,
    );
    expect(() => resumeInput(several, { runId: 'c', flags: {} })).toThrow(/holds no run 'c'; its runs: a, b/);
    const empty = join(dir, 'empty.db');
    openStore(empty).close();
    expect(() => resumeInput(empty, { flags: {} })).toThrow(/holds no run to resume/);
  });
});
