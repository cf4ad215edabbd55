/**
 * The household loop (GiGPO/HGPO's ALFWorld agent): each step the model sees the task, its history
 * (the whole conversation in the 'growing' format, or the last H observation/action pairs in the
 * references' 'windowed' one), the current observation and the admissible commands, and answers
 * `<think>...</think><action>...</action>`. A response without those tags is invalid: the env
 * receives nothing, the world stays as it was, and the step is recorded with `valid: false`
 * (it still counts toward the step limit). A command the env cannot execute (not admissible: it
 * answers "Nothing happens.") is recorded `valid: false` too, as the env reports it, so the
 * invalid-action penalty applies to doing nothing.
 */
import { z } from 'zod';
import type { HouseholdTask } from '../../envs/household/generator.ts';
import type { Env } from '../../envs/types.ts';
import {
  ActionChoice,
  actionChoices,
  type HouseholdTurn,
  householdMessages,
  INVALID_ACTION_NOTE,
  PromptFormat,
  parseHouseholdResponse,
} from '../prompts/household.ts';
import type { AgentStep, Trajectory, TrajectoryOutcome } from '../record.ts';
import type { ChatModel } from '../types.ts';
import {
  ask,
  auditSince,
  CONTEXT_FULL,
  chatOptions,
  type Episode,
  finish,
  LoopOptions,
  parseOptions,
  responseFields,
  TIMED_OUT,
} from './shared.ts';

export const HouseholdLoopOptions = LoopOptions.extend({
  /**
   * 'growing': the whole conversation, each prompt extending the last token for token (the prefix
   * cache reuses the previous turn's keys and values); 'windowed': the references' single message
   * with the last `history` steps.
   */
  promptFormat: PromptFormat.default('growing'),
  /** H: earlier (observation, action) pairs shown in the 'windowed' prompt. */
  history: z.number().int().min(0).default(2),
  /** Steps (valid or not) before the trajectory ends; the env's own limit applies too. */
  maxSteps: z.number().int().min(1).default(50),
  /** 'admissible': the command is decoded as one of the admissible ones (the local policy only). */
  actions: ActionChoice.default('free'),
});
export type HouseholdLoopOptions = z.output<typeof HouseholdLoopOptions>;

export { INVALID_ACTION_NOTE };

export async function runHousehold(
  env: Env<HouseholdTask>,
  model: ChatModel,
  episode: Episode<HouseholdTask>,
  options: z.input<typeof HouseholdLoopOptions> = {},
): Promise<Trajectory> {
  const opts = parseOptions(HouseholdLoopOptions, options, 'household');
  const started = performance.now();
  const deadline = opts.timeLimitMs === undefined ? undefined : Date.now() + opts.timeLimitMs;
  let observation = await env.reset(episode.seed, episode.task);
  const task = env.task!;
  const trajectoryId = episode.trajectoryId ?? '0';
  const steps: AgentStep[] = [];
  const past: HouseholdTurn[] = [];
  let outcome: TrajectoryOutcome = 'turn_limit';

  while (steps.length < opts.maxSteps) {
    const anchor = env.anchor;
    const admissible = env.admissibleActions?.() ?? [];
    const messages = householdMessages({
      format: opts.promptFormat,
      history: opts.history,
      task: task.payload.goalText,
      past,
      observation,
      admissible,
    });
    const choices = actionChoices(opts.actions, admissible);
    const call = {
      ...chatOptions(opts.sampling, { seed: episode.seed, trajectoryId }, steps.length),
      ...(choices ? { choices } : {}),
    };
    const result = await ask(model, messages, call, deadline);
    if (result === TIMED_OUT || result === CONTEXT_FULL) {
      outcome = result === TIMED_OUT ? 'time_limit' : 'context_limit';
      break;
    }
    const decision = parseHouseholdResponse(result.text);
    const auditFrom = episode.tools?.audit.length ?? 0;
    const step: AgentStep = {
      stepIndex: steps.length,
      role: opts.role,
      ...responseFields(model, messages, result),
      action: undefined,
      observation,
      anchor,
      envReward: 0,
      valid: decision.valid,
      done: false,
      audit: [],
      extras: {},
    };
    steps.push(step);
    const reply = { text: result.text, tokenIds: result.tokenIds };
    if (!decision.valid) {
      step.extras.invalidReason = decision.reason;
      past.push({ observation, action: INVALID_ACTION_NOTE, reply, admissible });
      continue;
    }
    const r = await env.step(decision.action);
    step.action = decision.action;
    step.valid = r.info.valid;
    if (!r.info.valid) step.extras.invalidReason = 'not an admissible command (the env did nothing)';
    step.observation = r.observation;
    step.envReward = r.reward;
    step.audit = auditSince(episode.tools, auditFrom);
    past.push({ observation, action: decision.action, reply, admissible });
    observation = r.observation;
    if (r.done) {
      outcome = r.info.won ? 'won' : 'turn_limit';
      break;
    }
  }
  return finish({ ...episode, task, trajectoryId }, steps, outcome, started);
}
