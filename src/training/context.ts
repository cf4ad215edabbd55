/**
 * What every phase of a run shares: the `RunContext` (config, store, policies, family, hooks), the
 * hooks a caller passes to `train`, and the typed progress events a run reports through them (the
 * CLI draws them as bars; the library draws nothing).
 */
import type { Split } from '../envs/types.ts';
import type { Policy } from '../policy/policy.ts';
import type { TrajectoryStore } from '../store/index.ts';
import type { TrainConfig } from './config.ts';
import type { FamilyHooks, TaskFamily } from './family.ts';
import type { RolloutResult } from './rollout.ts';

/** Success on an evaluation split, overall and per task type. */
export interface EvalResult {
  split: Split;
  tasks: number;
  success: number;
  meanReturn: number;
  invalidRate: number;
  byType: Record<string, { tasks: number; success: number }>;
  /** Means of the family's own figures (search: f1, exact_match), as fractions. */
  scores: Record<string, number>;
  /**
   * Per task, in task order: 1 won, 0 not. Two evaluations of one split pair up task by task (the
   * same seeds); absent when read back from the store, which keeps rates only.
   */
  outcomes?: number[];
  /** Per task, in task order, each family figure of `scores` (search: f1): pairs up like `outcomes`. */
  taskScores?: Record<string, number[]>;
}

/** The splits a run is evaluated on before and after its iterations. */
export const EVAL_SPLITS = ['valid-seen', 'valid-unseen'] as const;
export type Evaluations = Record<(typeof EVAL_SPLITS)[number], EvalResult>;

/**
 * A run's progress, as events: a phase starts with its total, advances, and ends (also when it
 * stops early: SFT at its target loss, an update at a divergence).
 */
export type ProgressEvent =
  | {
      type: 'start';
      /** SFT optimizer steps, an iteration's trajectories, or its PPO mini-batches. */
      phase: 'sft' | 'rollout' | 'update';
      /** The RL iteration (rollout and update). */
      iteration?: number;
      total: number;
    }
  | {
      type: 'advance';
      phase: 'sft' | 'rollout' | 'update';
      /** Units done so far in this phase. */
      done: number;
      /** SFT: the last training loss and validation loss. */
      loss?: number;
      validLoss?: number;
    }
  | { type: 'end'; phase: 'sft' | 'rollout' | 'update' };

/** What the caller may swap in (a family of its own, a tokenizer), and how the run reports. */
export interface TrainHooks extends FamilyHooks {
  /**
   * The starting checkpoint's evaluations, when the caller already has them (runs that share one
   * SFT checkpoint, as the learning benchmark's): stored as this run's "before" instead of re-run.
   */
  before?: Evaluations;
  /** Continue a stored run of the same id instead of refusing it. */
  resume?: boolean;
  /** Progress events (the CLI draws them as bars); default: none. */
  onProgress?: (event: ProgressEvent) => void;
  /** One line per iteration and per phase; default console.log. */
  log?: (line: string) => void;
  /**
   * Rolls out iteration `it` in place of the in-process rollout: src/distributed's `queueRollout`
   * enqueues one job per (task, sample) for `stepwise worker`s. `policyDir` holds the weights the
   * policy has now (the checkpoint the workers load).
   */
  rollout?: (ctx: RunContext, it: number, policyDir: string) => Promise<RolloutResult>;
}

/** What a run has before its policies exist: what its start (SFT or resume) works with. */
export interface RunBase {
  config: TrainConfig;
  store: TrajectoryStore;
  family: TaskFamily;
  hooks: TrainHooks;
  log: (line: string) => void;
  progress: (event: ProgressEvent) => void;
}

/** One run's shared state, passed to each phase instead of a list of positional arguments. */
export interface RunContext extends RunBase {
  /** The policy being trained. */
  policy: Policy;
  /** The frozen reference (the SFT checkpoint) the KL term is measured against. */
  reference: Policy;
}

export const mean = (xs: ArrayLike<number>): number => {
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i]!;
  return xs.length === 0 ? 0 : sum / xs.length;
};

export const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
