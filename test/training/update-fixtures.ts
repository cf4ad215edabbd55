/**
 * What the update's exactness tests share: real household rollouts of a small policy, their steps
 * as train steps with made-up advantages, and the relative error two gradients differ by.
 */
import { PolicyChatModel } from '../../src/agents/chat/index.ts';
import { rollout } from '../../src/agents/loops/rollout.ts';
import type { Trajectory } from '../../src/agents/record.ts';
import { HouseholdGenerator, Policy } from '../../src/index.ts';
import type { TrainStep } from '../../src/training/credit.ts';
import { domainTokenizer } from '../agents/loops-helpers.ts';

/** G rollouts of two train tasks, at most 3 steps of 12 tokens, in the given prompt format. */
export function householdRollouts(
  policy: Policy,
  options: { promptFormat: 'growing' | 'windowed'; groupSize: number; seed: number },
): Promise<Trajectory[]> {
  const tasks = [0, 1].map((s) => new HouseholdGenerator().generate('train', s));
  return rollout({
    model: new PolicyChatModel(policy),
    tasks,
    groupSize: options.groupSize,
    loops: {
      household: {
        promptFormat: options.promptFormat,
        maxSteps: 3,
        sampling: { maxTokens: 12, seed: options.seed },
      },
    },
  });
}

/** Train steps with made-up advantages (a different one per step, so that a mix-up shows). */
export function trainSteps(trajectories: readonly Trajectory[]): TrainStep[] {
  return trajectories.flatMap((t, i) =>
    t.steps.map((s, j) => ({
      prompt: s.promptTokens,
      response: s.responseTokens,
      advantage: ((i * 7 + j * 3) % 5) - 2 + 0.25,
      trajectory: `${t.groupId}/${t.trajectoryId}`,
      group: t.groupId,
      logprobs: s.responseLogprobs,
    })),
  );
}

/** |a - b| / |b| over all entries. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return Math.sqrt(diff / Math.max(norm, 1e-30));
}

/**
 * The largest relative difference between two policies' first AdamW moments after one step from
 * the same weights: (1 - beta1) x the gradient, so this compares their gradients.
 */
export function gradientError(a: Policy, b: Policy): number {
  const ma = a.runner.getOptimizerState()!.m;
  let worst = 0;
  for (const [name, g] of b.runner.getOptimizerState()!.m)
    worst = Math.max(worst, relativeError(ma.get(name)!, g));
  return worst;
}

/**
 * The exactness tests' RL loss: a step too small to matter and no clipping, so that after one
 * update the first AdamW moment is (1 - beta1) x the gradient (`gradientError`).
 */
export const ONE_STEP_RL_LOSS = {
  kind: 'rl' as const,
  learningRate: 1e-9,
  maxGradNorm: 1e9,
  klCoef: 0.01,
  entropyCoef: 0.001,
};

/** Two fresh tiny policies holding `policy`'s weights: two updates that start from the same point. */
export function weightCopies(policy: Policy, seed: number): [Policy, Policy] {
  const copy = () => {
    const p = Policy.create({ model: 'tiny', tokenizer: domainTokenizer(), seed });
    p.runner.setParams(policy.runner.getParams());
    return p;
  };
  return [copy(), copy()];
}
