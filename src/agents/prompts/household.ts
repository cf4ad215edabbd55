/**
 * The household prompt, laid out as the GiGPO and HGPO references prompt ALFWorld: one user
 * message with the task, the last H (observation, action) pairs, the current observation and the
 * admissible commands, asking for `<think>...</think>` then `<action>...</action>`. The wording
 * is ours; the structure (and so what a model sees at each step) follows theirs.
 */
import type { ChatMessage } from '../types.ts';

/** One earlier step as the history shows it. */
export interface HouseholdTurn {
  observation: string;
  /** The command sent to the env, or the raw response when it was invalid (the env got nothing). */
  action: string;
}

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

const ASK =
  'Now choose your next action. First think step by step about the situation, inside <think> </think>. ' +
  'Then write exactly one of the admissible actions inside <action> </action>.';

export function householdPrompt(input: HouseholdPromptInput): ChatMessage[] {
  const admissible = input.admissible.map((a) => `'${a}'`).join(', ');
  const lines: string[] = [];
  if (input.stepCount === 0) {
    // At the first step the observation already states the task (as in the references).
    lines.push('You are an agent acting in a household text world.');
    lines.push(`Your current observation is: ${input.observation}`);
  } else {
    lines.push(`You are an agent acting in a household text world. Your task is to: ${input.task}`);
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
  lines.push('');
  lines.push(ASK);
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
