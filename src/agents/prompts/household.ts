/**
 * The household prompt formats (`PromptFormat`). 'windowed' is laid out as the GiGPO and HGPO
 * references prompt ALFWorld: one user message with the task, the last H (observation, action)
 * pairs, the current observation and the admissible commands, asking for `<think>...</think>` then
 * `<action>...</action>` (the instruction opens the prompt here, where the references close it). 'growing' is a conversation: the first observation (which states the
 * task) once, then each turn appends the reply as sampled and a user message with the new
 * observation and admissible commands, so that each prompt extends the previous prompt and reply
 * token for token (the prefix cache then prefills only what a turn appended) and the whole
 * trajectory trains as one sequence. The wording is ours.
 */
import { z } from 'zod';
import type { Choices } from '../../policy/runtime/choices.ts';
import type { ChatMessage } from '../types.ts';

/**
 * How a loop lays out a trajectory's history: 'growing' (the whole conversation, each prompt
 * extends the last) or 'windowed' (one message with the last `history` steps, the references').
 */
export const PromptFormat = z.enum(['growing', 'windowed']);
export type PromptFormat = z.infer<typeof PromptFormat>;

/**
 * How the command is written: 'free' (any text inside the action tags; a command the env cannot
 * execute is an invalid no-op) or 'admissible' (constrained decoding to one of the admissible
 * commands, src/policy/runtime/choices.ts; the local policy only).
 */
export const ActionChoice = z.enum(['free', 'admissible']);
export type ActionChoice = z.infer<typeof ActionChoice>;

/** The generation constraint of `actions` in a state with these admissible commands (none for 'free'). */
export function actionChoices(actions: ActionChoice, admissible: readonly string[]): Choices | undefined {
  if (actions === 'free' || admissible.length === 0) return undefined;
  return { open: '<action>', close: '</action>', options: [...admissible] };
}

/** One earlier step as the history shows it. */
export interface HouseholdTurn {
  observation: string;
  /** The command sent to the env, or the raw response when it was invalid (the env got nothing). */
  action: string;
  /**
   * The reply as the model gave it ('growing' shows it; 'windowed' shows `action` only), with its
   * sampled token ids when there are some (the next prompt then holds exactly those ids).
   */
  reply?: { text: string; tokenIds?: readonly number[] };
  /** The admissible commands shown with `observation` ('growing' shows them again each step). */
  admissible?: readonly string[];
}

/** What `householdMessages` lays out: the current state and every earlier step of the trajectory. */
export interface HouseholdState {
  format: PromptFormat;
  /** H of the 'windowed' format. */
  history: number;
  task: string;
  /** Every step taken so far, oldest first. */
  past: readonly HouseholdTurn[];
  observation: string;
  admissible: readonly string[];
}

/** The prompt of the current step in `state.format`. */
export function householdMessages(state: HouseholdState): ChatMessage[] {
  if (state.format === 'windowed') {
    return householdPrompt({
      task: state.task,
      stepCount: state.past.length,
      history: state.history === 0 ? [] : state.past.slice(-state.history),
      observation: state.observation,
      admissible: state.admissible,
    });
  }
  return householdConversation(state);
}

/**
 * The 'growing' format: the first observation (it states the task), the admissible commands and
 * the instruction once; then per step the reply and a user message with what came back.
 */
export function householdConversation(state: Omit<HouseholdState, 'format' | 'history'>): ChatMessage[] {
  const shown = (i: number) =>
    i < state.past.length
      ? { observation: state.past[i]!.observation, admissible: state.past[i]!.admissible }
      : { observation: state.observation, admissible: state.admissible };
  const first = shown(0);
  const messages: ChatMessage[] = [
    {
      role: 'user',
      content: [
        INTRODUCTION,
        `Your current observation is: ${first.observation}`,
        `Your admissible actions now are: [${quoted(admissibleOf(first.admissible, 0))}].`,
      ].join('\n'),
    },
  ];
  for (const [i, turn] of state.past.entries()) {
    if (!turn.reply) {
      throw new Error(
        `householdConversation: step ${i} has no reply; the growing format shows every reply (expected turn.reply)`,
      );
    }
    messages.push({
      role: 'assistant',
      content: turn.reply.text,
      ...(turn.reply.tokenIds ? { tokenIds: turn.reply.tokenIds } : {}),
    });
    const next = shown(i + 1);
    const lines = [
      ...(turn.action === INVALID_ACTION_NOTE ? [`Your response was invalid (${INVALID_ACTION_NOTE}).`] : []),
      `Your current observation is: ${next.observation}`,
      `Your admissible actions now are: [${quoted(admissibleOf(next.admissible, i + 1))}].`,
    ];
    messages.push({ role: 'user', content: lines.join('\n') });
  }
  return messages;
}

/** What the history shows for a step whose response was invalid (the env received nothing). */
export const INVALID_ACTION_NOTE = 'invalid response, no action taken';

function admissibleOf(list: readonly string[] | undefined, step: number): readonly string[] {
  if (!list) {
    throw new Error(
      `householdConversation: step ${step} has no admissible list; the growing format shows each step's (expected turn.admissible)`,
    );
  }
  return list;
}

const quoted = (list: readonly string[]) => list.map((a) => `'${a}'`).join(', ');

export interface HouseholdPromptInput {
  /** The goal, e.g. "put a clean mug in coffeemachine." */
  task: string;
  /** Steps taken so far (invalid ones included). */
  stepCount: number;
  /** The most recent steps, oldest first (the caller keeps the last H). */
  history: readonly HouseholdTurn[];
  observation: string;
  admissible: readonly string[];
}

/**
 * Who the agent is and how to answer, first in every prompt. The references close their prompt
 * with the instruction; here it opens it, so that the part of the prompt that never changes is a
 * prefix: the prefix cache prefills it once for all rollouts, and the shared-prefix update and SFT
 * train it once per batch (issue 13; docs/ARCHITECTURE.md, "Prompts that share their opening").
 */
const INTRODUCTION =
  'You are an agent acting in a household text world. At each step, first think step by step about ' +
  'the situation, inside <think> </think>. Then write exactly one of the admissible actions inside ' +
  '<action> </action>.';

export function householdPrompt(input: HouseholdPromptInput): ChatMessage[] {
  const admissible = input.admissible.map((a) => `'${a}'`).join(', ');
  const lines: string[] = [INTRODUCTION];
  if (input.stepCount === 0) {
    // At the first step the observation already states the task (as in the references).
    lines.push(`Your current observation is: ${input.observation}`);
  } else {
    lines.push(`Your task is to: ${input.task}`);
    const n = input.history.length;
    const first = input.stepCount - n + 1;
    const pairs = input.history
      .map((t, i) => `[Observation ${first + i}: '${t.observation}', Action ${first + i}: '${t.action}']`)
      .join('\n');
    lines.push(
      `You have taken ${input.stepCount} step(s) so far. Your last ${n} observation(s) and the action you took after each:\n${pairs}`,
    );
    lines.push(
      `You are now at step ${input.stepCount + 1}; your current observation is: ${input.observation}`,
    );
  }
  lines.push(`Your admissible actions now are: [${admissible}].`);
  return [{ role: 'user', content: lines.join('\n') }];
}

/** What a household response says: the command, or why it is invalid. */
export type HouseholdDecision = { valid: true; action: string } | { valid: false; reason: string };

const THINK = /<think>[\s\S]*?<\/think>/;
const ACTION = /<action>([\s\S]*?)<\/action>/;

/**
 * A valid response has a `<think>...</think>` block and, after it, `<action>...</action>` with a
 * non-empty command (the first one counts; lower-cased and trimmed, as the references read it).
 * Whether the command is admissible is the env's business: it answers "Nothing happens."
 */
export function parseHouseholdResponse(text: string): HouseholdDecision {
  const think = THINK.exec(text);
  if (!think) return { valid: false, reason: 'no <think>...</think> block' };
  const rest = text.slice(think.index + think[0].length);
  const action = ACTION.exec(rest);
  if (!action) return { valid: false, reason: 'no <action>...</action> after </think>' };
  const command = action[1]!.trim().toLowerCase().replace(/\s+/g, ' ');
  if (command === '') return { valid: false, reason: 'the <action> block is empty' };
  return { valid: true, action: command };
}
