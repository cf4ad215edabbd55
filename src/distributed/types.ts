/**
 * What the learner and the workers of a distributed run agree on: the queue's name, a rollout
 * job's data (one (task, group sample) of an iteration, tagged with the policy version that must
 * roll it out), and the options both sides take.
 */

/** The pg-boss queue rollout jobs go through. */
export const ROLLOUT_QUEUE = 'stepwise-rollout';

/**
 * One rollout job: sample `sample` of the group of task `taskIndex` in attempt `attempt` of
 * iteration `iteration`. Its key (run, iteration, attempt, task, sample) is the staged row's
 * primary key, so a job run twice (a retry after its lease expired) stores one trajectory.
 */
export interface RolloutJob {
  runId: string;
  iteration: number;
  /** Dynamic sampling's attempt (0 without it). */
  attempt: number;
  taskIndex: number;
  /** The task, as the learner drew it: `family.task(split, taskSeed)`. */
  split: string;
  taskSeed: number;
  sample: number;
  groupSize: number;
  temperature: number;
  /** Sampling seed of the attempt (the in-process rollout's `seed`), so samples match a single-process run. */
  seed: number;
  /**
   * The policy version the job is for: the number of updates its weights have had, which is the
   * iteration it rolls out. Workers drop a job older than the run's version by more than
   * `maxStaleness`; the learner recomputes such rows.
   */
  policyVersion: number;
  /** The checkpoint folder of that version, on a path every worker reaches (a shared filesystem). */
  policyDir: string;
  maxStaleness: number;
}

/** How jobs are leased and retried (pg-boss's expiration and retries). */
export interface LeaseOptions {
  /**
   * Seconds a worker may hold a job: a job still active after this (its worker was killed, or
   * hangs) expires and is retried by another worker. Longer than the slowest rollout.
   */
  leaseSeconds: number;
  /** Retries after a failure or an expired lease, before the job fails for good. */
  retryLimit: number;
}

export const DEFAULT_LEASE: LeaseOptions = { leaseSeconds: 600, retryLimit: 5 };
