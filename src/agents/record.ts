/**
 * What an agent loop returns: an `AgentStep` is one decision of one agent (a step row once stored):
 * the prompt it saw (messages, their text, and the exact token ids when the backend has them), the
 * response (text, token ids, behaviour log-probs, tool calls), what the env or tool made of it, and
 * the audit records of the tool calls it caused. A `Trajectory` is one rollout of a task;
 * `rolloutMetrics` sums a set of them up. Writing them to the store is training's job
 * (`src/training/record.ts`).
 */
import type { Task } from '../envs/types.ts';
import type { AuditRecord } from '../tools/types.ts';
import type { Json } from '../util/json.ts';
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
