/**
 * `weightAverage`: the run's result is the mean of the iterates' weights from `from` on. On real
 * door-task runs: the result checkpoint holds exactly the mean of the averaged iterations' stored
 * checkpoints (not the last iterate), the evaluation after the run measured it, only the latest
 * iteration keeps its running mean, and a run stopped after two iterations and resumed for a third
 * ends with the same mean as one that ran all three (the mean is resumed, not restarted); the
 * evaluations every `eval.every` iterations measure the mean so far while the rollouts keep the iterate.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/policy/policy.ts';
import { AVERAGE_FILE, addIterate } from '../../src/training/average.ts';
import { parseTrainConfig } from '../../src/training/config.ts';
import { evaluate } from '../../src/training/evaluate.ts';
import { makeFamily } from '../../src/training/families/index.ts';
import type { TaskFamily } from '../../src/training/family.ts';
import { train } from '../../src/training/trainer.ts';
import { doorHooks } from './helpers.ts';
import { resumeConfig, snapshot, trainSft, type Weights, weightsOf } from './resume-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-average-'));
const quiet = { log: () => {} };
let sft = '';

beforeAll(async () => {
  sft = await trainSft(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The largest absolute gap between two sets of weights. */
function maxGap(a: Weights, b: Weights): number {
  let gap = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) gap = Math.max(gap, Math.abs(x[i]! - y[i]!));
  }
  return gap;
}

/** The arithmetic mean of some sets of weights, in float64. */
function meanOf(sets: Weights[]): Weights {
  return new Map(
    [...sets[0]!.keys()].map((k) => {
      const out = new Float32Array(sets[0]!.get(k)!.length);
      for (let i = 0; i < out.length; i++) out[i] = sets.reduce((s, w) => s + w.get(k)![i]!, 0) / sets.length;
      return [k, out];
    }),
  );
}

const config = (db: string, iterations: number) => ({
  ...resumeConfig(db, sft, iterations),
  weightAverage: { from: 1 },
  eval: { every: 0, tasks: 4 },
});

describe('addIterate', () => {
  it('keeps the arithmetic mean of the iterates folded in', () => {
    const names = ['w'];
    const xs = [
      [1, -2, 3.5],
      [4, 0, -1],
      [0.25, 8, 2],
    ].map((v) => new Map([['w', Float32Array.from(v)]]));
    let average = addIterate(undefined, xs[0]!, names);
    expect(xs[0]!.get('w')![0]).toBe(1); // the first iterate is copied, not aliased
    for (const x of xs.slice(1)) average = addIterate(average, x, names);
    expect(average.count).toBe(3);
    expect([...average.mean.get('w')!]).toEqual([
      expect.closeTo(5.25 / 3, 6),
      expect.closeTo(2, 6),
      expect.closeTo(1.5, 6),
    ]);
  });
});

describe('weightAverage on a run', () => {
  it('makes the mean of the averaged iterations the result, and evaluates it', async () => {
    const db = join(dir, 'whole.db');
    const result = await train(config(db, 3), { ...doorHooks, ...quiet });
    const ckpt = parseTrainConfig(config(db, 3)).checkpointDir;
    expect(result.finalCheckpoint).toBe(join(ckpt, 'average'));
    expect(result.lastCheckpoint).toBe(join(ckpt, 'iter-2'));

    const [w0, w1, w2, avg] = await Promise.all(
      ['iter-0', 'iter-1', 'iter-2', 'average'].map((d) => weightsOf(join(ckpt, d))),
    );
    const mean = meanOf([w1!, w2!]);
    // The iterates differ, so the mean is neither of them nor includes iteration 0.
    expect(maxGap(w1!, w2!)).toBeGreaterThan(1e-4);
    expect(maxGap(avg!, mean)).toBeLessThan(1e-6);
    expect(maxGap(avg!, w2!)).toBeGreaterThan(1e-5);
    expect(maxGap(avg!, meanOf([w0!, w1!, w2!]))).toBeGreaterThan(1e-5);

    // Only the last iteration keeps its running mean.
    expect(existsSync(join(ckpt, 'iter-1', AVERAGE_FILE))).toBe(false);
    expect(existsSync(join(ckpt, 'iter-2', AVERAGE_FILE))).toBe(true);

    // "after" is the average's evaluation (greedy: the same outcomes when evaluated again).
    const family = await makeFamily(parseTrainConfig(config(db, 3)), doorHooks);
    const policy = await Policy.load(result.finalCheckpoint);
    try {
      const again = await evaluate(policy, family, 'valid-unseen', 4);
      expect(again.outcomes).toEqual(result.after['valid-unseen'].outcomes);
    } finally {
      await policy.dispose();
    }
  });

  it('resumes the running mean of a stopped run', async () => {
    const db = join(dir, 'resumed.db');
    await train(config(db, 2), { ...doorHooks, ...quiet });
    const resumed = await train(config(db, 3), { ...doorHooks, resume: true, ...quiet });
    const ckpt = parseTrainConfig(config(db, 3)).checkpointDir;
    const [w1, w2, avg] = await Promise.all(
      ['iter-1', 'iter-2', 'average'].map((d) => weightsOf(join(ckpt, d))),
    );
    expect(resumed.iterationsRun).toBe(1);
    // Restarted at iteration 2 the mean would be iteration 2 alone.
    expect(maxGap(avg!, meanOf([w1!, w2!]))).toBeLessThan(1e-6);
    expect(maxGap(avg!, w2!)).toBeGreaterThan(1e-5);
  });

  it('evaluates the mean in the middle of the run and rolls out with the iterate', async () => {
    const db = join(dir, 'curve.db');
    const cfg = { ...config(db, 3), eval: { every: 1, tasks: 2 } };
    const family = await makeFamily(parseTrainConfig(cfg), doorHooks);
    const evaluated: Weights[] = [];
    const rolled: Weights[] = [];
    const watched: TaskFamily = {
      ...family,
      async rollout(policy, request) {
        (request.temperature === 0 ? evaluated : rolled).push(snapshot(policy));
        return family.rollout(policy, request);
      },
      ...(family.evaluate
        ? {
            async evaluate(policy, split, tasks) {
              evaluated.push(snapshot(policy));
              return family.evaluate!(policy, split, tasks);
            },
          }
        : {}),
    };
    await train(cfg, { ...doorHooks, family: watched, ...quiet });
    const ckpt = parseTrainConfig(cfg).checkpointDir;
    const [w0, w1, w2] = await Promise.all(
      ['iter-0', 'iter-1', 'iter-2'].map((d) => weightsOf(join(ckpt, d))),
    );
    // Evaluations: before (2 splits), after iterations 0, 1, 2, after the run (2 splits).
    expect(evaluated).toHaveLength(7);
    const [, , e0, e1, e2, after] = evaluated;
    expect(maxGap(e0!, w0!)).toBeLessThan(1e-7); // before `from`: the iterate
    expect(maxGap(e1!, w1!)).toBeLessThan(1e-7); // the mean of iteration 1 alone
    expect(maxGap(e2!, meanOf([w1!, w2!]))).toBeLessThan(1e-6);
    expect(maxGap(e2!, w2!)).toBeGreaterThan(1e-5);
    expect(maxGap(after!, e2!)).toBeLessThan(1e-7);
    // The rollouts after an evaluation of the mean continue from the iterate.
    expect(rolled).toHaveLength(3);
    expect(maxGap(rolled[1]!, w0!)).toBeLessThan(1e-7);
    expect(maxGap(rolled[2]!, w1!)).toBeLessThan(1e-7);
  });

  it('is the last iterate when no iteration reached `from`', async () => {
    const db = join(dir, 'short.db');
    const result = await train({ ...config(db, 2), weightAverage: { from: 5 } }, { ...doorHooks, ...quiet });
    expect(result.finalCheckpoint).toBe(result.lastCheckpoint);
  });
});
