/**
 * What the single-agent loops share: their common options, one trajectory's input, the model call
 * under the wall-clock limit, and the bookkeeping that turns a response into an `AgentStep`.
 */
import { z } from 'zod';
import type { Task } from '../../envs/types.ts';
import type { ToolRunner } from '../../tools/policy.ts';
import type { AuditRecord } from '../../tools/types.ts';
import { DeadlineError, withDeadline } from '../../util/deadline.ts';
import { callSeed } from '../../util/random.ts';
import { parseOrThrow } from '../../util/zod.ts';
import { ContextOverflowError } from '../chat/batcher.ts';
import { renderMessages } from '../prompts/render.ts';
import type { AgentStep, Trajectory, TrajectoryOutcome } from '../record.ts';
import type { ChatMessage, ChatModel, ChatOptions, ChatResult } from '../types.ts';

/** Sampling of every model call of a loop. */
export const LoopSampling = z.object({
  /** 1 samples from the policy as it is (RL rollouts); 0 is greedy. */
  temperature: z.number().min(0).default(1),
  topP: z.number().gt(0).max(1).optional(),
  topK: z.number().int().min(1).optional(),
  /** Response length cap, in tokens. */
  maxTokens: z.number().int().min(1).default(256),
  stop: z.array(z.string().min(1)).optional(),
  /**
   * Base of the per-call seeds. Each call gets its own seed from (this, the trajectory's seed and
   * id, the step), so the G rollouts of a group sample differently and a rerun samples the same.
   */
  seed: z.number().int().default(0),
});

/** Options every loop has. */
export const LoopOptions = z.object({
  sampling: LoopSampling.default(LoopSampling.parse({})),
  /** Wall-clock limit of one trajectory, in milliseconds (a model call running over is abandoned). */
  timeLimitMs: z.number().positive().optional(),
  /** The `role` of the recorded steps. */
  role: z.string().min(1).default('agent'),
});
export type LoopOptions = z.output<typeof LoopOptions>;

/** Parse loop options, naming the bad field in the error. */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, loop: string): z.output<S> {
  return parseOrThrow(schema, input ?? {}, `invalid ${loop} loop options`);
}

/** One trajectory to roll out. */
export interface Episode<T extends Task = Task> {
  /** The task (a group's shared one); without it the env makes one from `seed`. */
  task?: T;
  /** The seed given to `env.reset`. */
  seed: number;
  /** Default: the task's id. */
  groupId?: string;
  /** Default: '0'. */
  trajectoryId?: string;
  /**
   * The runner the env's tools are called through (see `runnerTool`): its audit records of each
   * step go on that step.
   */
  tools?: ToolRunner;
}

/** Marks a model call abandoned because the trajectory ran out of time. */
export const TIMED_OUT: unique symbol = Symbol('timed out');
/** Marks a model call refused because the prompt does not fit the model's context. */
export const CONTEXT_FULL: unique symbol = Symbol('context full');

/** A backend's "the prompt is too long" error: the local policy's, or an OpenAI-compatible server's. */
export function isContextOverflow(err: unknown): boolean {
  if (err instanceof ContextOverflowError) return true;
  const e = err as { code?: unknown; error?: { code?: unknown } } | null;
  return e?.code === 'context_length_exceeded' || e?.error?.code === 'context_length_exceeded';
}

/**
 * Calls the model, giving up at `deadline` (ms since the epoch): the call's signal is aborted and
 * the loop moves on without waiting for a backend that ignores it. A prompt too long for the
 * model's context is `CONTEXT_FULL` (the trajectory ends there); other errors are thrown.
 */
export async function ask(
  model: ChatModel,
  messages: readonly ChatMessage[],
  options: ChatOptions,
  deadline: number | undefined,
): Promise<ChatResult | typeof TIMED_OUT | typeof CONTEXT_FULL> {
  try {
    return await askInTime(model, messages, options, deadline);
  } catch (err) {
    if (isContextOverflow(err)) return CONTEXT_FULL;
    throw err;
  }
}

async function askInTime(
  model: ChatModel,
  messages: readonly ChatMessage[],
  options: ChatOptions,
  deadline: number | undefined,
): Promise<ChatResult | typeof TIMED_OUT> {
  if (deadline === undefined) return model.chat(messages, options);
  const left = deadline - Date.now();
  if (left <= 0) return TIMED_OUT;
  try {
    return await withDeadline(
      left,
      (signal) => model.chat(messages, { ...options, signal }),
      options.signal,
      () => new DeadlineError(left, 'the trajectory reached its time limit'),
    );
  } catch (err) {
    // Our own limit is the time limit, not a failure (whatever the model threw once aborted).
    if (err instanceof DeadlineError) return TIMED_OUT;
    throw err;
  }
}

/** The chat options of step `stepIndex` of a trajectory (its own seed, see LoopSampling.seed). */
export function chatOptions(
  sampling: z.output<typeof LoopSampling>,
  episode: { seed: number; trajectoryId: string },
  stepIndex: number,
): ChatOptions {
  const { seed, ...rest } = sampling;
  return { ...rest, seed: callSeed(seed, episode.seed, episode.trajectoryId, stepIndex) };
}

/** The response half of a step, from the model's result. */
export function responseFields(
  model: ChatModel,
  messages: readonly ChatMessage[],
  result: ChatResult,
): Pick<
  AgentStep,
  | 'model'
  | 'messages'
  | 'promptText'
  | 'promptTokens'
  | 'responseText'
  | 'responseTokens'
  | 'responseLogprobs'
  | 'toolCalls'
> {
  // Token ids and log-probs are kept only together, one log-prob per token: that is what training
  // needs, and a backend giving one without the other (a hosted model's log-probs over its own
  // tokenizer, say) cannot train this policy.
  const tokens = result.tokenIds ?? [];
  const aligned = result.logprobs !== undefined && result.logprobs.length === tokens.length;
  return {
    model: model.name,
    messages: messages.map((m) => ({ ...m })),
    promptText: renderMessages(messages),
    promptTokens: result.promptTokens ?? [],
    responseText: result.text,
    responseTokens: aligned ? tokens : [],
    responseLogprobs: aligned ? result.logprobs! : [],
    toolCalls: result.toolCalls ?? [],
  };
}

/** The audit records the runner made since `from` (its audit list of this trajectory). */
export function auditSince(tools: ToolRunner | undefined, from: number): AuditRecord[] {
  return tools ? tools.audit.slice(from) : [];
}

/** The finished trajectory. */
export function finish(
  episode: { task: Task; seed: number; groupId?: string; trajectoryId?: string },
  steps: AgentStep[],
  outcome: TrajectoryOutcome,
  started: number,
): Trajectory {
  const last = steps.at(-1);
  if (last) last.done = true;
  return {
    groupId: episode.groupId ?? episode.task.id,
    trajectoryId: episode.trajectoryId ?? '0',
    task: episode.task,
    seed: episode.seed,
    steps,
    outcome,
    won: outcome === 'won',
    episodeReturn: steps.reduce((sum, s) => sum + s.envReward, 0),
    durationMs: performance.now() - started,
  };
}
