/**
 * Learning benchmark, household part: GRPO vs GiGPO vs HGPO on the household world, each from
 * the same SFT checkpoint, at the same environment-step budget, for every seed; success on
 * valid-seen and valid-unseen after RL, and eval curves (valid-unseen) against env steps.
 *
 * The SFT checkpoint is trained once on train-split demonstrations with a step budget chosen on
 * valid-seen (never on valid-unseen), short enough that RL has room.
 */
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import { HOUSEHOLD_DEFAULT } from '../../src/training/presets.ts';
import { type TrainResult, train } from '../../src/training/trainer.ts';
import type { LearningCurve, LearningPart, LearningPartResult } from './types.ts';

/** The world, the loop, the policy and the SFT every run shares: the embedded default's. */
export const HOUSEHOLD_BENCH = {
  ...HOUSEHOLD_DEFAULT,
  eval: { every: 2, split: 'valid-unseen', tasks: 16 },
} satisfies TrainConfigInput;

const METHODS = ['grpo', 'gigpo', 'hgpo'] as const;

/** Environment steps each RL run may use (all rollouts, dropped groups included). */
const ENV_STEP_BUDGET = 384;

export const part: LearningPart = {
  name: 'household',
  async run(ctx): Promise<LearningPartResult> {
    const cpuStart = process.cpuUsage();
    const sftDb = join(ctx.dir, 'sft.db');
    ctx.log('household: SFT of the shared checkpoint');
    const sft = await train(
      { ...HOUSEHOLD_BENCH, iterations: 0, db: sftDb, runId: 'sft', seed: 0 },
      { log: ctx.log, progress: false, resume: true },
    );
    const checkpoint = sft.referenceCheckpoint;
    ctx.log(
      `household: SFT checkpoint ${checkpoint}: valid-seen ${pct(sft.before['valid-seen'].success)}, valid-unseen ${pct(sft.before['valid-unseen'].success)}`,
    );

    const results = new Map<string, TrainResult[]>();
    const curves: LearningCurve[] = [];
    for (const method of METHODS) {
      for (const seed of ctx.seeds) {
        const db = join(ctx.dir, `${method}-${seed}.db`);
        ctx.log(`household: ${method}, seed ${seed}`);
        const result = await train(
          {
            ...HOUSEHOLD_BENCH,
            policy: { checkpoint },
            sft: { enabled: false },
            estimator: method,
            iterations: 1000,
            envStepBudget: ENV_STEP_BUDGET,
            seed,
            db,
            runId: `${method}-${seed}`,
          },
          { log: (l) => ctx.log(`  ${l}`), progress: false, before: sft.before, resume: true },
        );
        results.set(method, [...(results.get(method) ?? []), result]);
        curves.push(evalCurve(db, result, method, seed));
      }
    }

    const unseen = (m: string) => results.get(m)!.map((r) => r.after['valid-unseen'].success);
    const seen = (m: string) => results.get(m)!.map((r) => r.after['valid-seen'].success);
    const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const best = Math.max(...METHODS.map((m) => meanOf(unseen(m))));
    const table = [
      {
        method: 'SFT (start)',
        columns: {
          'valid-seen': [sft.before['valid-seen'].success],
          'valid-unseen': [sft.before['valid-unseen'].success],
        },
      },
      ...METHODS.map((m) => ({ method: m, columns: { 'valid-seen': seen(m), 'valid-unseen': unseen(m) } })),
    ];
    const cpuSeconds = (process.cpuUsage(cpuStart).user + process.cpuUsage(cpuStart).system) / 1e6;
    return {
      metrics: {
        household_grpo_unseen: unseen('grpo'),
        household_gigpo_unseen: unseen('gigpo'),
        household_hgpo_unseen: unseen('hgpo'),
        household_best_unseen: [best],
      },
      table,
      curves,
      cpuSeconds,
      notes: [
        `Conditions: tiny preset (1.1M parameters, 512-token context), household world ${JSON.stringify(HOUSEHOLD_BENCH.envOptions)}, ` +
          `loop history ${HOUSEHOLD_BENCH.loop.history}, at most ${HOUSEHOLD_BENCH.loop.maxSteps} steps; ` +
          `SFT (at most ${HOUSEHOLD_BENCH.sft.maxSteps} steps${sft.sft ? `, ran ${sft.sft.steps}, valid loss ${sft.sft.validLoss.toFixed(3)}` : ''}) ` +
          `on the exploring expert's train-split demonstrations; every RL run: G = ${HOUSEHOLD_BENCH.groupSize}, ` +
          `${HOUSEHOLD_BENCH.tasksPerIteration} tasks per iteration, ${ENV_STEP_BUDGET} environment steps, ` +
          `evaluation greedy on ${HOUSEHOLD_BENCH.eval.tasks} tasks per split.`,
      ].join('\n'),
    };
  },
};

/** The run's valid-unseen evaluations against cumulative env steps, the SFT start first. */
function evalCurve(db: string, result: TrainResult, method: string, seed: number): LearningCurve {
  const store = openStore(db, { readonly: true });
  try {
    const steps = new Map(store.metricSeries(result.runId, 'env_steps').map((p) => [p.iteration, p.value]));
    const points = [{ envSteps: 0, value: result.before['valid-unseen'].success }];
    for (const p of store.metricSeries(result.runId, 'eval/valid-unseen/success')) {
      points.push({ envSteps: steps.get(p.iteration) ?? 0, value: p.value });
    }
    const last = store.lastCompleteIteration(result.runId);
    const lastEval = points.at(-1)!;
    if (last !== undefined && steps.get(last) !== lastEval.envSteps) {
      points.push({ envSteps: steps.get(last)!, value: result.after['valid-unseen'].success });
    }
    return { method, seed, metric: 'valid-unseen success', points };
  } finally {
    store.close();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
