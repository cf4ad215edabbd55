/**
 * An iteration's rollouts: G trajectories per task from the same seed, with dynamic sampling
 * (ALGORITHMS.md: keep the groups whose outcomes differ and roll more tasks, up to a retry limit).
 * Task and sampling seeds derive from the run seed and the iteration, so a redone iteration rolls
 * out the same tasks with the same samples.
 */
import type { Trajectory } from '../agents/record.ts';
import { hashSeed } from '../util/random.ts';
import type { RunContext } from './context.ts';

/** What an iteration rolled out. */
export interface RolloutResult {
  /** The trajectories trained on (dynamic sampling's kept groups, or all when none was kept). */
  trajectories: Trajectory[];
  /** Every trajectory rolled out, dropped ones included (they count toward the env-step budget). */
  all: Trajectory[];
  seconds: number;
  /**
   * The policy's parameter version during the rollout (`Runner.paramsVersion`); undefined when it
   * changed meanwhile. An update at this version takes its behaviour log-probs from the rollout.
   */
  policyVersion?: number;
  /**
   * Prompt tokens the policy prefilled (the prefix cache's hits excluded), dropped groups included;
   * undefined when other processes rolled out (queue workers).
   */
  prefilledTokens?: number;
}

/** Seed of the k-th task of an iteration's attempt: distinct per (run seed, iteration, attempt, k). */
export function taskSeed(seed: number, iteration: number, attempt: number, k: number): number {
  return hashSeed(`task:${seed}:${iteration}:${attempt}:${k}`) % 2 ** 30;
}

/** Trajectories of the groups whose members did not all end with the same return. */
export function informativeGroups(trajectories: readonly Trajectory[]): Trajectory[] {
  const returns = new Map<string, Set<number>>();
  for (const t of trajectories) {
    const set = returns.get(t.groupId) ?? new Set<number>();
    set.add(t.episodeReturn);
    returns.set(t.groupId, set);
  }
  return trajectories.filter((t) => returns.get(t.groupId)!.size > 1);
}

/** Roll out `tasksPerIteration` groups of iteration `it` (more attempts with dynamic sampling). */
export async function rollout(ctx: RunContext, it: number): Promise<RolloutResult> {
  const { config, family, policy } = ctx;
  const started = performance.now();
  const version = policy.runner.paramsVersion;
  const prefilled = policy.runner.work.prefilledTokens;
  const sampling = hashSeed(`sample:${config.seed}:${it}`) % 2 ** 30;
  const want = config.tasksPerIteration;
  const dynamic = config.dynamicSampling.enabled;
  let kept: Trajectory[] = [];
  let all: Trajectory[] = [];
  for (let attempt = 0; attempt < (dynamic ? config.dynamicSampling.retries + 1 : 1); attempt++) {
    const have = new Set(kept.map((t) => t.groupId)).size;
    if (have >= want) break;
    const tasks = Array.from({ length: want - have }, (_, k) =>
      family.task(config.split, taskSeed(config.seed, it, attempt, k)),
    );
    ctx.progress({ type: 'start', phase: 'rollout', iteration: it, total: tasks.length * config.groupSize });
    let done = 0;
    const batch = await family.rollout(policy, {
      tasks,
      groupSize: config.groupSize,
      temperature: config.loop.temperature,
      seed: sampling + attempt,
      onTrajectory: () => ctx.progress({ type: 'advance', phase: 'rollout', done: ++done }),
    });
    ctx.progress({ type: 'end', phase: 'rollout' });
    all = all.concat(batch);
    kept = kept.concat(dynamic ? informativeGroups(batch) : batch);
  }
  // Nothing informative at all: train on everything (the advantages are then zero, KL still counts).
  return {
    trajectories: kept.length > 0 ? kept : all,
    all,
    seconds: (performance.now() - started) / 1000,
    policyVersion: policy.runner.paramsVersion === version ? version : undefined,
    prefilledTokens: policy.runner.work.prefilledTokens - prefilled,
  };
}
