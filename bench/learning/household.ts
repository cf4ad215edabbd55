/**
 * Learning benchmark, household part: GRPO vs GiGPO vs HGPO on the household world, each from
 * the same SFT checkpoint, at the same environment-step budget, for every seed; success on
 * valid-seen and valid-unseen after RL, and eval curves (valid-unseen) against env steps.
 *
 * The SFT checkpoint is trained once on train-split demonstrations with a step budget chosen on
 * valid-seen (never on valid-unseen), short enough that RL has room.
 */
import type { TrainConfigInput } from '../../src/training/config.ts';
import { HOUSEHOLD_DEFAULT } from '../../src/training/presets.ts';
import { cpuSecondsSince, runMethods, SUCCESS, sharedSft } from './shared.ts';
import type { LearningPart, LearningPartResult } from './types.ts';

/** The world, the loop, the policy and the SFT every run shares: the embedded default's. */
export const HOUSEHOLD_BENCH = {
  ...HOUSEHOLD_DEFAULT,
  // The SFT of the recorded benchmark (the embedded default has since been given more steps).
  sft: { ...HOUSEHOLD_DEFAULT.sft, learningRate: 3e-3, maxSteps: 1400 },
  eval: { every: 2, split: 'valid-unseen', tasks: 16 },
} satisfies TrainConfigInput;

const METHODS = ['grpo', 'gigpo', 'hgpo'] as const;

/** Environment steps each RL run may use (all rollouts, dropped groups included). */
const ENV_STEP_BUDGET = 768;

export const part: LearningPart = {
  name: 'household',
  async run(ctx): Promise<LearningPartResult> {
    const cpuStart = process.cpuUsage();
    ctx.log('household: SFT of the shared checkpoint');
    const sft = await sharedSft(ctx, HOUSEHOLD_BENCH);
    ctx.log(
      `household: SFT checkpoint ${sft.referenceCheckpoint}: valid-seen ${pct(sft.before['valid-seen'].success)}, valid-unseen ${pct(sft.before['valid-unseen'].success)}`,
    );
    const { results, curves } = await runMethods(ctx, {
      part: 'household',
      base: HOUSEHOLD_BENCH,
      methods: METHODS,
      sft,
      envStepBudget: ENV_STEP_BUDGET,
      measure: SUCCESS,
    });

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
    return {
      metrics: {
        household_grpo_unseen: unseen('grpo'),
        household_gigpo_unseen: unseen('gigpo'),
        household_hgpo_unseen: unseen('hgpo'),
        household_best_unseen: [best],
      },
      table,
      curves,
      cpuSeconds: cpuSecondsSince(cpuStart),
      notes:
        `Conditions: tiny preset (1.1M parameters, 512-token context), household world ${JSON.stringify(HOUSEHOLD_BENCH.envOptions)}, ` +
        `loop history ${HOUSEHOLD_BENCH.loop.history}, at most ${HOUSEHOLD_BENCH.loop.maxSteps} steps; ` +
        `SFT (at most ${HOUSEHOLD_BENCH.sft.maxSteps} steps of ${HOUSEHOLD_BENCH.sft.batchSize}${sft.sft ? `, ran ${sft.sft.steps}, valid loss ${sft.sft.validLoss.toFixed(3)}` : ''}) ` +
        `on the exploring expert's train-split demonstrations; every RL run: G = ${HOUSEHOLD_BENCH.groupSize}, ` +
        `${HOUSEHOLD_BENCH.tasksPerIteration} tasks per iteration, ${ENV_STEP_BUDGET} environment steps, ` +
        `evaluation greedy on ${HOUSEHOLD_BENCH.eval.tasks} tasks per split.`,
    };
  },
};

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
