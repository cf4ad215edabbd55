/**
 * What an agent loop returns, and how it goes into the trajectory store.
 *
 * An `AgentStep` is one decision of one agent (the store's step row): the prompt it saw (messages,
 * their text, and the exact token ids when the backend has them), the response (text, token ids,
 * behaviour log-probs, tool calls), what the env or tool made of it, and the audit records of the
 * tool calls it caused. A `Trajectory` is one rollout of a task. `recordIteration` writes a set of
 * trajectories, grouped by their `groupId`, as one iteration of a run.
 */
import type { Task } from '../envs/types.ts';
import type { GroupInput, Json, StepInput, TrajectoryInput, TrajectoryStore } from '../store/index.ts';
import type { AuditRecord } from '../tools/types.ts';
import type { ChatMessage, ChatToolCall } from './types.ts';

export interface AgentStep {
  /** Position in the trajectory, from 0. */
  stepIndex: number;
  /** The agent that decided: 'agent' in the single-agent loops; 'planner', 'executor'... in AgentFlow. */
  role: string;
  /** The ChatModel's name ('policy:...', 'openai:...'). */
  model: string;
  /** The messages the model was given. */
  messages: ChatMessage[];
  /** The messages as one text (`renderMessages`): the store's promptText. */
  promptText: string;
  /** Prompt token ids as the model saw them; empty when the backend does not report them. */
  promptTokens: number[];
  responseText: string;
  /** Generated token ids (the end token included); empty when the backend does not report them. */
  responseTokens: number[];
  /** Behaviour log-prob of each response token; empty when the backend does not report them. */
  responseLogprobs: number[];
  /** Tool calls the model made in this response (structured ones; text forms stay in responseText). */
  toolCalls: ChatToolCall[];
  /** The action the env received, or undefined when it received nothing (an invalid household response). */
  action: string | undefined;
  /** What came back: the env's observation or the tool's result, as the model will read it. */
  observation: string;
  /** The raw observation this decision was made on, without history (GiGPO/HGPO group on it). */
  anchor: string;
  envReward: number;
  /** The response was well formed. */
  valid: boolean;
  /** The trajectory ended after this step (the env said done, or a loop limit was reached). */
  done: boolean;
  /** The tool calls this step caused, as the tool runner audited them. */
  audit: AuditRecord[];
  /** Loop-specific facts kept with the row (IGPO's `answered` and `outcomeReward`, the reason a response was invalid). */
  extras: Record<string, Json>;
}

/**
 * How a trajectory ended. 'won': the goal holds or the answer is right; 'answered': an answer was
 * given and it is wrong; 'turn_limit': the env's or the loop's step limit; 'time_limit': the loop's
 * wall-clock limit; 'context_limit': the conversation outgrew the model's context.
 */
export type TrajectoryOutcome = 'won' | 'answered' | 'turn_limit' | 'time_limit' | 'context_limit';

export interface Trajectory {
  /** The G rollouts of one task in one iteration share a groupId (default: the task id). */
  groupId: string;
  /** Unique inside its group. */
  trajectoryId: string;
  task: Task;
  /** The seed given to `env.reset`. */
  seed: number;
  steps: AgentStep[];
  outcome: TrajectoryOutcome;
  won: boolean;
  /** Sum of the steps' env rewards. */
  episodeReturn: number;
  /** Wall-clock time of the rollout. */
  durationMs: number;
}

/** The store's step row for an agent step. */
export function stepInput(step: AgentStep): StepInput {
  const extras: Record<string, Json> = {
    ...step.extras,
    model: step.model,
    observation: step.observation,
  };
  if (step.action !== undefined) extras.action = step.action;
  // The model's structured tool calls are kept apart from the audit (`toolCalls` is the audit's row field).
  if (step.toolCalls.length > 0) extras.requestedToolCalls = step.toolCalls.map((c) => ({ ...c }));
  return {
    stepIndex: step.stepIndex,
    role: step.role,
    anchor: step.anchor,
    promptText: step.promptText,
    promptTokens: step.promptTokens,
    responseText: step.responseText,
    responseTokens: step.responseTokens,
    responseLogprobs: step.responseLogprobs,
    envReward: step.envReward,
    valid: step.valid,
    done: step.done,
    extras,
    toolCalls: step.audit,
  };
}

export function trajectoryInput(t: Trajectory): TrajectoryInput {
  return {
    trajectoryId: t.trajectoryId,
    outcome: t.outcome,
    won: t.won,
    episodeReturn: t.episodeReturn,
    steps: t.steps.map(stepInput),
  };
}

/**
 * Trajectories grouped by `groupId`, in order of first appearance. Every trajectory of a group
 * must play the same task from the same seed (that is what makes it a group). Trajectories without
 * steps (a time limit hit before the first response) are left out: the store keeps decisions, and
 * they made none.
 */
export function groupTrajectories(trajectories: readonly Trajectory[]): GroupInput[] {
  const groups = new Map<string, { first: Trajectory; members: Trajectory[] }>();
  for (const t of trajectories) {
    if (t.steps.length === 0) continue;
    const g = groups.get(t.groupId);
    if (!g) {
      groups.set(t.groupId, { first: t, members: [t] });
      continue;
    }
    if (t.task.id !== g.first.task.id || t.seed !== g.first.seed) {
      throw new Error(
        `group ${t.groupId}: trajectory ${t.trajectoryId} plays task ${t.task.id} with seed ${t.seed}, ` +
          `but trajectory ${g.first.trajectoryId} plays ${g.first.task.id} with seed ${g.first.seed}; ` +
          'a group must share its task and seed',
      );
    }
    if (g.members.some((m) => m.trajectoryId === t.trajectoryId)) {
      throw new Error(`group ${t.groupId}: two trajectories have the id ${t.trajectoryId}`);
    }
    g.members.push(t);
  }
  return [...groups.entries()].map(([groupId, { first, members }]) => ({
    groupId,
    taskId: first.task.id,
    taskType: first.task.kind,
    seed: first.seed,
    split: first.task.split,
    trajectories: members.map(trajectoryInput),
  }));
}

/** Rollout figures of a set of trajectories, as iteration metrics. */
export function rolloutMetrics(trajectories: readonly Trajectory[]): Record<string, number> {
  const n = trajectories.length;
  const steps = trajectories.flatMap((t) => t.steps);
  const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  return {
    success_rate: mean(trajectories.map((t) => (t.won ? 1 : 0))),
    mean_return: mean(trajectories.map((t) => t.episodeReturn)),
    mean_length: mean(trajectories.map((t) => t.steps.length)),
    invalid_rate: mean(steps.map((s) => (s.valid ? 0 : 1))),
    response_tokens: steps.reduce((a, s) => a + s.responseTokens.length, 0),
    trajectories: n,
  };
}

/**
 * Writes the trajectories as iteration `iteration` of run `runId` (one transaction), with
 * `rolloutMetrics` plus `metrics`. The run is created when it does not exist yet.
 */
export function recordIteration(
  store: TrajectoryStore,
  runId: string,
  iteration: number,
  trajectories: readonly Trajectory[],
  options: { metrics?: Record<string, number>; runConfig?: Json } = {},
): void {
  if (!store.run(runId)) store.createRun(runId, options.runConfig ?? {});
  store.writeIteration(runId, {
    iteration,
    groups: groupTrajectories(trajectories),
    metrics: { ...rolloutMetrics(trajectories), ...options.metrics },
  });
}
