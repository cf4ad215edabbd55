/**
 * A task family: what the trainer needs to know about one (env, agent) pair. The trainer's loop
 * (draw tasks, roll out, credit, update, evaluate) is the same for every family; what differs is
 * where tasks come from, how the expert's demonstrations are prompted, how a group is rolled out,
 * which steps are trained, and what the estimator reads beyond the outcome (IGPO's values).
 *
 * Families: household (the household ReAct loop, families/household.ts), search and codemath (the
 * tool loops, families/tool-qa.ts), agentflow (the AgentFlow planner, families/agentflow.ts), served
 * (the user's own agent through a recording endpoint, families/served.ts).
 */
import type { AgentEnv } from '../agents/loops/rollout.ts';
import type { AgentStep, Trajectory } from '../agents/record.ts';
import type { ChatMessage } from '../agents/types.ts';
import type { StepRow } from '../credit/types.ts';
import type { Expert, Split, Task } from '../envs/types.ts';
import type { Policy } from '../policy/policy.ts';
import type { Tokenizer } from '../policy/tokenizer/tokenizer.ts';
import type { TrainConfig } from './config.ts';
import type { EvalResult } from './context.ts';
import type { ServedAgent } from './families/served.ts';
import type { SftExtras } from './sft.ts';

/** One expert decision, prompted exactly as the loop prompts the policy, with the reply it should give. */
export interface Demonstrated {
  messages: ChatMessage[];
  reply: string;
  /** The AgentFlow module that decides (planner, executor...); absent in single-agent loops. */
  role?: string;
}

export interface RolloutRequest {
  tasks: readonly Task[];
  /** G trajectories per task, from the task's seed. */
  groupSize: number;
  temperature: number;
  /** Seed of the sampling. */
  seed: number;
  /** Only these members of each group (a distributed worker's one sample); default all G. */
  samples?: readonly number[];
  /** Called as each trajectory ends (progress bars). */
  onTrajectory?: (trajectory: Trajectory) => void;
  /** What the trajectories are for: training (default) or an evaluation (the served family's recorded source trains only). */
  purpose?: 'train' | 'eval';
}

export interface TaskFamily {
  /** The task of (split, seed). */
  task(split: Split, seed: number): Task;
  /** The expert's decisions on `tasks`, as the loop would prompt them. */
  demonstrations(tasks: readonly Task[]): Promise<Demonstrated[]>;
  /** G trajectories of every task, in task order, with `policy` deciding. */
  rollout(policy: Policy, request: RolloutRequest): Promise<Trajectory[]>;
  /** Steps whose response is trained (default: every step with response tokens). */
  trainable?(step: AgentStep): boolean;
  /**
   * With `policy.adapters`: the adapter the steps of a role run on (undefined: the base model), so
   * SFT trains each adapter on its own role's demonstrations.
   */
  adapterOf?(role: string | undefined): string | undefined;
  /** With `policy.adapters`: the adapter RL updates (its steps are the `trainable` ones). */
  trainedAdapter?: string;
  /**
   * The estimator's input rows, one per trainable step (default `creditRows`). IGPO's values come
   * from scoring the gold answer with `policy`, so this may score.
   */
  creditRows?(trajectories: readonly Trajectory[], policy: Policy): Promise<StepRow[]>;
  /**
   * Greedy evaluation of `tasks` (one rollout each, in task order) by the family's own faster
   * path (household: lock-step batches); default: `rollout` at temperature 0.
   */
  evaluate?(policy: Policy, split: Split, tasks: readonly Task[]): Promise<EvalResult>;
  /** Per-trajectory figures besides success, averaged in evaluations (search: f1, exact_match). */
  scores?(trajectory: Trajectory): Record<string, number>;
  /** Text a fresh policy's tokenizer is trained on, besides the demonstrations (default: the envs' corpus). */
  tokenizerText?(): Promise<string[]>;
  /**
   * What this family adds to SFT when the config asks for it: a held-out selection figure
   * (`sft.selectTasks`) and DAgger labels (`sft.dagger`). A family without it trains on
   * demonstrations alone.
   */
  sftExtras?(): Promise<SftExtras>;
  /** Releases what the family holds (sandboxes, servers). */
  close?(): Promise<void>;
  /** The env of one trajectory with its tools (tool-using families; the served family's agents use them). */
  makeEnv?: (name: string) => AgentEnv;
}

/** What the caller may swap in: a task family of its own (tests, user envs), a ready tokenizer. */
export interface FamilyHooks {
  /** A whole family of the caller's own; the config's env and agent are then only labels. */
  family?: TaskFamily;
  /** The task of (split, seed); default: the env's generator. */
  tasks?: (split: Split, seed: number) => Task;
  /** Makes the env of one trajectory; default: agentEnvMaker with `envOptions`. */
  makeEnv?: (name: string) => AgentEnv;
  /** The SFT demonstrator; default: the env's expert. */
  expert?: Expert;
  /** Tokenizer of a fresh policy; default: trained on the envs' text and the demonstrations. */
  tokenizer?: Tokenizer;
  /** Agent 'served': the user's agent function, run once per trajectory against the recording endpoint. */
  servedAgent?: ServedAgent;
}

/** A family's maker, by config. */
export type FamilyMaker = (config: TrainConfig, hooks: FamilyHooks) => TaskFamily | Promise<TaskFamily>;

/** The estimator's input rows of trajectories: outcome and rewards only (GRPO, GiGPO, HGPO, RLOO). */
export function creditRows(
  trajectories: readonly Trajectory[],
  trainable: (step: AgentStep) => boolean = () => true,
): StepRow[] {
  return trajectories.flatMap((t) =>
    t.steps.filter(trainable).map((s) => ({
      groupId: t.groupId,
      trajectoryId: t.trajectoryId,
      stepIndex: s.stepIndex,
      anchor: s.anchor,
      envReward: s.envReward,
      valid: s.valid,
      episodeReturn: t.episodeReturn,
      role: s.role,
    })),
  );
}
