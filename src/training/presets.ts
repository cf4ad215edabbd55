/**
 * The embedded default: what `npm start` (and `stepwise train` without a config) runs, and what
 * the household scenarios start from. SFT on the exploring expert, then GiGPO on the household
 * world, sized to finish in about ten minutes on a 2-core CPU with the tiny policy.
 */
import type { TrainConfigInput } from './config.ts';

export const HOUSEHOLD_DEFAULT = {
  env: 'household',
  agent: 'react',
  estimator: 'gigpo',
  loop: { history: 2, maxSteps: 20, maxTokens: 40, temperature: 1 },
  policy: { preset: 'tiny' },
  sft: {
    tasks: 200,
    validTasks: 20,
    batchSize: 16,
    learningRate: 2e-3,
    maxSteps: 300,
    targetLoss: 0.02,
    evalEvery: 50,
  },
  groupSize: 8,
  tasksPerIteration: 4,
  iterations: 3,
  ppo: { miniBatchSize: 32, learningRate: 1e-4 },
  eval: { every: 0, split: 'valid-unseen', tasks: 24 },
  runId: 'household-gigpo',
} satisfies TrainConfigInput;
