/**
 * Tool calls in the tool-using loops. A model may act through OpenAI tool calls instead of tags:
 * a `web_search` call is the env action `<search>query</search>`, a `python` call is
 * `<python>code</python>`. One action per turn: the first call is run, later ones are answered
 * with a note. Tools that the env does not run (anything else) reach the model as an error.
 */
import type { ChatMessage, ChatToolCall } from '../types.ts';

export interface ToolCallAction {
  /** The env action the first call stands for (the response text when it could not be read). */
  action?: string;
  /** The call that became the action. */
  callId?: string;
  /** Why the first call could not be followed (shown to the model; the step is invalid). */
  error?: string;
}

/** The env action of a response's tool calls, or undefined when it made none. */
export function actionFromToolCalls(
  calls: readonly ChatToolCall[],
  toolTags: Record<string, { tag: string; field: string }>,
): ToolCallAction | undefined {
  const call = calls[0];
  if (!call) return undefined;
  const known = toolTags[call.name];
  if (!known) {
    return {
      callId: call.id,
      error: `Tool "${call.name}" not found (available: ${Object.keys(toolTags).join(', ')}).`,
    };
  }
  let args: unknown;
  try {
    args = JSON.parse(call.arguments);
  } catch (err) {
    return {
      callId: call.id,
      error: `Arguments of ${call.name} are not valid JSON: ${(err as Error).message}.`,
    };
  }
  const body = (args as Record<string, unknown> | null)?.[known.field];
  if (typeof body !== 'string' || body.trim() === '') {
    return {
      callId: call.id,
      error: `${call.name} needs a non-empty string "${known.field}" argument, e.g. {"${known.field}": "..."}.`,
    };
  }
  return { callId: call.id, action: `<${known.tag}>${body.trim()}</${known.tag}>` };
}

/**
 * The messages that answer a turn. Tool calls get one tool message each (OpenAI requires every
 * call answered, and accepts tool messages only as answers to calls). A text action's result, or
 * the env's complaint about a reply without an action, comes back as a user message: there is no
 * call for a tool message to answer, and every backend accepts that conversation.
 */
export function answerToolCalls(
  calls: readonly ChatToolCall[],
  fromCalls: ToolCallAction | undefined,
  observation: string,
): ChatMessage[] {
  if (calls.length === 0) return [{ role: 'user', content: observation }];
  return calls.map((c) => ({
    role: 'tool',
    name: c.name,
    toolCallId: c.id,
    content:
      c.id === fromCalls?.callId ? observation : 'Not run: one tool call per turn; call it again next turn.',
  }));
}
