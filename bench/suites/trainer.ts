/**
 * The `trainer` suite: the speed of the training loop on the household world with the tiny
 * preset: SFT steps, then RL iterations (rollout and update throughput). Learning itself is
 * measured by the `learning` suite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import { train } from '../../src/training/trainer.ts';
import type { Suite } from '../suite.ts';

export const suite: Suite = {
  name: 'trainer',
  description:
    'household, tiny preset: SFT steps/s, then 2 GiGPO iterations (G=8 x 4 tasks): rollout and update tokens/s',
  quick: false,
  async run(ctx) {
    const dir = mkdtempSync(join(tmpdir(), 'stepwise-bench-trainer-'));
    const db = join(dir, 'run.db');
    try {
      const started = performance.now();
      const result = await train(
        {
          estimator: 'gigpo',
          iterations: 2,
          groupSize: 8,
          tasksPerIteration: 4,
          loop: { history: 2, maxSteps: 10, maxTokens: 48 },
          eval: { every: 0, tasks: 8 },
          sft: { tasks: 100, validTasks: 10, maxSteps: 40, evalEvery: 20 },
          db,
        },
        { log: ctx.log },
      );
      const total = (performance.now() - started) / 1000;
      const store = openStore(db, { readonly: true });
      const m = (name: string) => {
        const s = store.metricSeries('train', name);
        return s.reduce((a, p) => a + p.value, 0) / s.length;
      };
      const results = {
        sft_steps_per_s: result.sft!.steps / result.sft!.seconds,
        rollout_tokens_per_s: m('rollout_tokens_per_s'),
        update_tokens_per_s: m('update_tokens_per_s'),
        mean_length: m('mean_length'),
        total_seconds: total,
      };
      store.close();
      return {
        results,
        report: `SFT batch 16 (prompts ~200-400 tokens); each iteration rolls out 32 trajectories of at most 10 steps at once (one decode batch), then one PPO epoch in mini-batches of 16 steps; \`update_tokens_per_s\` counts the response (loss) tokens, the prompts are processed too. \`total_seconds\` includes the tokenizer, SFT, the before/after evaluations (8 tasks x 2 splits) and checkpoints.`,
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
