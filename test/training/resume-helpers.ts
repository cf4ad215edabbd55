/**
 * Shared by the resume test and its child process: the runs' config (the door task, a tiny model)
 * and the door family with a watch on its iteration rollouts, which tells which policy object an
 * iteration rolled out with and lets the child stop in the middle of an iteration.
 */
import { join } from 'node:path';
import { Policy } from '../../src/policy/policy.ts';
import { parseTrainConfig, type TrainConfigInput } from '../../src/training/config.ts';
import { makeFamily } from '../../src/training/families/index.ts';
import type { TaskFamily } from '../../src/training/family.ts';
import { train } from '../../src/training/trainer.ts';
import { doorHooks, doorTokenizer, TINY_MODEL } from './helpers.ts';

/**
 * A run from the SFT checkpoint `sft` (also its reference). The learning rate is high enough that
 * every iteration moves the policy's log-probs well past the sampler's float32 noise, so a run that
 * continued from the wrong weights shows.
 */
export function resumeConfig(db: string, sft: string, iterations: number) {
  return {
    loop: { history: 0, maxSteps: 1, maxTokens: 24 },
    policy: { checkpoint: sft },
    sft: { enabled: false },
    estimator: 'grpo',
    groupSize: 4,
    tasksPerIteration: 2,
    iterations,
    ppo: { miniBatchSize: 4, learningRate: 3e-3, maxKl: 10 },
    eval: { every: 0, tasks: 2 },
    db,
  } satisfies TrainConfigInput;
}

/** The SFT run that makes the checkpoint the resumed runs start from (iterations: 0). */
export function sftConfig(db: string) {
  return {
    loop: { history: 0, maxSteps: 1, maxTokens: 24 },
    policy: { model: TINY_MODEL },
    estimator: 'grpo',
    iterations: 0,
    eval: { every: 0, tasks: 2 },
    sft: { tasks: 16, validTasks: 4, maxSteps: 20, batchSize: 8, learningRate: 3e-3, evalEvery: 10 },
    db,
  } satisfies TrainConfigInput;
}

/** Calls around the n-th iteration rollout of this process (0, 1, ...; greedy evaluations not counted). */
export interface RolloutWatch {
  before?(policy: Policy, n: number): void;
  after?(policy: Policy, n: number): void;
}

/** The door family of `config` (the trainer's own household family on the door env), watched. */
export async function watchedDoorFamily(config: unknown, watch: RolloutWatch): Promise<TaskFamily> {
  const family = await makeFamily(parseTrainConfig(config), doorHooks);
  let n = 0;
  return {
    ...family,
    async rollout(policy, request) {
      if (request.temperature === 0) return family.rollout(policy, request);
      const k = n++;
      watch.before?.(policy, k);
      const trajectories = await family.rollout(policy, request);
      watch.after?.(policy, k);
      return trajectories;
    },
  };
}

/** Train the SFT checkpoint of `sftConfig` in `dir` (quietly); returns its folder. */
export async function trainSft(dir: string): Promise<string> {
  const result = await train(sftConfig(join(dir, 'sft.db')), {
    ...doorHooks,
    tokenizer: doorTokenizer(),
    log: () => {},
  });
  return result.referenceCheckpoint;
}

export type Weights = Map<string, Float32Array>;

/** The policy's parameters, copied (getParams gives views of tensors the next update overwrites). */
export const snapshot = (policy: Policy): Weights =>
  new Map([...policy.runner.getParams()].map(([name, values]) => [name, Float32Array.from(values)]));

/** A checkpoint's parameters. */
export async function weightsOf(checkpoint: string): Promise<Weights> {
  const policy = await Policy.load(checkpoint);
  try {
    return snapshot(policy);
  } finally {
    await policy.dispose();
  }
}
