import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';
import { train } from '../../src/training/trainer.ts';
import { doorHooks, doorTokenizer, TINY_MODEL } from './helpers.ts';

it('SFT teaches the reply format and RL raises the success rate on a trivially learnable task', async () => {
  const dir = process.env.KEEP_DIR ?? mkdtempSync(join(tmpdir(), 'stepwise-learn-'));
  const db = join(dir, 'run.db');
  const lines: string[] = [];
  const result = await train(
    {
      loop: { history: 0, maxSteps: 1, maxTokens: 24 },
      policy: { model: TINY_MODEL },
      estimator: 'grpo',
      groupSize: 8,
      tasksPerIteration: 4,
      iterations: 8,
      ppo: { miniBatchSize: 8, learningRate: 1e-3, maxKl: 10 },
      eval: { every: 0, tasks: 4 },
      sft: { tasks: 32, validTasks: 8, maxSteps: 80, batchSize: 16, learningRate: 3e-3, evalEvery: 20 },
      db,
    },
    { ...doorHooks, tokenizer: doorTokenizer(), log: (l) => lines.push(l) },
  );
  console.log(lines.join('\n'));
  const store = openStore(db, { readonly: true });
  const success = store.metricSeries('train', 'success_rate').map((p) => p.value);
  const invalid = store.metricSeries('train', 'invalid_rate').map((p) => p.value);
  // What RL has to learn: which door a well-formed reply opens.
  const redShare = (iteration: number) => {
    const actions = store
      .trainingRows('train', iteration)
      .filter((r) => r.valid)
      .map((r) => r.extras.action);
    return actions.filter((a) => a === 'open red door').length / actions.length;
  };
  const [redFirst, redLast] = [redShare(0), redShare(7)];
  expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
  store.close();
  expect(success).toHaveLength(8);
  // After SFT alone the format is learned and the door is a coin flip.
  expect(invalid[0]).toBeLessThan(0.3);
  expect(redFirst).toBeGreaterThan(0.25);
  expect(redFirst).toBeLessThan(0.75);
  // After RL the well-formed replies open the red door, and the success rate has risen.
  expect(redLast).toBeGreaterThan(0.85);
  const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  expect(meanOf(success.slice(4))).toBeGreaterThan(meanOf(success.slice(0, 2)) + 0.08);
  expect(result.iterationsRun).toBe(8);
});
