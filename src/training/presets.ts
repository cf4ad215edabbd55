/**
 * The embedded default: what `npm start` (and `stepwise train` without a config) runs, and what
 * the household scenarios start from. SFT on the exploring expert, then GiGPO on the household
 * world, sized to finish in about ten minutes on a 2-core CPU with the tiny policy.
 */
import type { TrainConfigInput } from './config.ts';

export const HOUSEHOLD_DEFAULT = {
  env: 'household',
  // A small room (4 receptacles, 1 other object; the env's default is 8 and 5): short searches,
  // so the tiny policy learns it from a few minutes of SFT on a CPU.
  envOptions: { receptacles: 4, objects: 1 },
  agent: 'react',
  estimator: 'gigpo',
  loop: { history: 1, maxSteps: 12, maxTokens: 40, temperature: 1 },
  policy: { preset: 'tiny' },
  sft: {
    tasks: 200,
    validTasks: 20,
    // Measured on valid-seen: 600 steps of 8 reach a valid loss of 0.25 and no success yet; 1000-1400
    // steps reach 0.07-0.17 and the first successes (0-25% of 16 tasks, varying run to run).
    batchSize: 8,
    learningRate: 2e-3,
    maxSteps: 2400,
    targetLoss: 0.02,
    evalEvery: 100,
  },
  groupSize: 8,
  tasksPerIteration: 2,
  iterations: 6,
  ppo: { miniBatchSize: 32, learningRate: 2e-4 },
  eval: { every: 2, split: 'valid-unseen', tasks: 24 },
  runId: 'household-gigpo',
} satisfies TrainConfigInput;
