/**
 * Resume continues the stored policy: a run stopped by an error in the middle of an iteration, and
 * one killed with SIGKILL in the middle of an iteration (a real child process), each resumed; the
 * resumed run's policy must be the last stored iteration's checkpoint (its weights, exactly), and the
 * behaviour log-probs stored with the next iteration must be that checkpoint's. The SFT checkpoint
 * (the reference, where a wrong resume would start) must fail both checks, so they can fail.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/policy/policy.ts';
import { openStore } from '../../src/store/index.ts';
import { parseTrainConfig } from '../../src/training/config.ts';
import { train } from '../../src/training/trainer.ts';
import {
  resumeConfig,
  snapshot,
  trainSft,
  type Weights,
  watchedDoorFamily,
  weightsOf,
} from './resume-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-resume-'));
const quiet = { log: () => {} };
let sft = '';

beforeAll(async () => {
  sft = await trainSft(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Names of the parameters that differ (bit for bit) between two sets of weights. */
const differing = (a: Weights, b: Weights) =>
  [...a].filter(([name, values]) => !Buffer.from(values.buffer).equals(Buffer.from(b.get(name)!.buffer)));

/**
 * The largest gap between the behaviour log-probs stored with iteration `it` (the sampler's, for
 * every response token) and the same tokens scored by `checkpoint`.
 */
async function logprobGap(db: string, it: number, checkpoint: string): Promise<number> {
  const store = openStore(db, { readonly: true });
  const rows = store.trainingRows('train', it).filter((r) => r.responseTokens.length > 0);
  store.close();
  expect(rows.length).toBeGreaterThan(0);
  const policy = await Policy.load(checkpoint);
  try {
    const scored = await policy.scoreBatch(
      rows.map((r) => ({ prompt: Array.from(r.promptTokens), continuation: Array.from(r.responseTokens) })),
    );
    let gap = 0;
    for (const [i, r] of rows.entries()) {
      for (const [t, lp] of r.responseLogprobs.entries()) gap = Math.max(gap, Math.abs(lp - scored[i]![t]!));
    }
    return gap;
  } finally {
    await policy.dispose();
  }
}

/**
 * Resumes the run of `config` in-process; checks that its first iteration rolled out with exactly
 * the weights of the stored checkpoint of iteration `last`, and that the behaviour log-probs of
 * the iteration it then stored are that checkpoint's (and not the SFT checkpoint's).
 */
async function resumeAndCheck(config: ReturnType<typeof resumeConfig>, last: number): Promise<void> {
  const iterDir = (n: number) => join(parseTrainConfig(config).checkpointDir, `iter-${n}`);
  const stored = await weightsOf(iterDir(last));
  const reference = await weightsOf(sft);
  // The iterations moved the weights: resuming from the reference would show.
  expect(differing(stored, reference).length).toBeGreaterThan(0);

  const rolledOutWith: Weights[] = [];
  const family = await watchedDoorFamily(config, {
    before: (policy) => rolledOutWith.push(snapshot(policy)),
  });
  const result = await train(config, { family, resume: true, ...quiet });
  expect(result.iterationsRun).toBe(config.iterations - last - 1);
  expect(rolledOutWith.length).toBe(result.iterationsRun);
  expect(differing(rolledOutWith[0]!, stored).map(([name]) => name)).toEqual([]);

  const gap = await logprobGap(config.db, last + 1, iterDir(last));
  const gapToReference = await logprobGap(config.db, last + 1, sft);
  expect(gap).toBeLessThan(1e-4);
  expect(gapToReference).toBeGreaterThan(0.1);

  const store = openStore(config.db, { readonly: true });
  try {
    expect(store.iterations('train').map((i) => i.iteration)).toEqual([...Array(config.iterations).keys()]);
    expect(store.run('train')!.status).toBe('finished');
  } finally {
    store.close();
  }
}

describe('resume continues from the last stored iteration', () => {
  it('after an error in the middle of an iteration (in-process)', async () => {
    const config = resumeConfig(join(dir, 'stopped.db'), sft, 4);
    const family = await watchedDoorFamily(config, {
      after(_, n) {
        if (n === 2) throw new Error('stopped in the middle of iteration 2');
      },
    });
    await expect(train(config, { family, ...quiet })).rejects.toThrow(/middle of iteration 2/);
    const store = openStore(config.db, { readonly: true });
    expect(store.lastCompleteIteration('train')).toBe(1);
    expect(store.run('train')!.status).toBe('stopped');
    store.close();
    await resumeAndCheck(config, 1);
  });

  it('after SIGKILL in the middle of an iteration (a child process)', async () => {
    const config = resumeConfig(join(dir, 'killed.db'), sft, 4);
    const configFile = join(dir, 'killed.json');
    writeFileSync(configFile, JSON.stringify(config));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'train-child.ts'), configFile, '2'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    child.stderr.on('data', (d) => (log += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        log += d;
        if (log.includes('mid\n')) resolve();
      });
      child.once('exit', (code) =>
        reject(new Error(`the training child exited (${code}) before iteration 2:\n${log}`)),
      );
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(log).not.toContain('finished');

    // Killed in iteration 2: iterations 0 and 1 are stored, the run was left running.
    const store = openStore(config.db, { readonly: true });
    expect(store.lastCompleteIteration('train')).toBe(1);
    expect(store.run('train')!.status).toBe('running');
    store.close();
    await resumeAndCheck(config, 1);
  });
});
