/**
 * The embedded default: what `npm start` (and `stepwise train` without a config) runs, and what
 * the household scenarios start from. SFT on the exploring expert, then GiGPO on the household
 * world, sized to finish in about ten minutes on a 2-core CPU with the tiny policy.
 */
import type { TrainConfigInput } from './config.ts';

export const HOUSEHOLD_DEFAULT = {
  env: 'household',
  // A smaller room than the env's default (6 receptacles, 3 other objects): shorter prompts and
  // searches, so SFT and a few RL iterations fit the time budget of a CPU.
  envOptions: { receptacles: 6, objects: 3 },
  agent: 'react',
  estimator: 'gigpo',
  loop: { history: 2, maxSteps: 15, maxTokens: 40, temperature: 1 },
  policy: { preset: 'tiny' },
  sft: {
    tasks: 200,
    validTasks: 20,
    batchSize: 16,
    learningRate: 2e-3,
    maxSteps: 400,
    targetLoss: 0.02,
    evalEvery: 50,
  },
  groupSize: 8,
  tasksPerIteration: 2,
  iterations: 4,
  ppo: { miniBatchSize: 32, learningRate: 2e-4 },
  eval: { every: 2, split: 'valid-unseen', tasks: 24 },
  runId: 'household-gigpo',
} satisfies TrainConfigInput;
