/** Chat messages as one text in the policy's chat-template layout (a step's `promptText`). */
import type { ChatMessage } from '../types.ts';

/**
 * Chat messages as one text, in the layout of the local policy's chat template
 * (`<|role|>content<|end|>` per message, then `<|assistant|>` for the reply), which is what the
 * store keeps as a step's `promptText`. For a local policy without tools, decoding the step's
 * prompt token ids gives exactly this text. Tool calls of assistant messages are written as the
 * `<tool_call>{"name": ..., "arguments": ...}</tool_call>` text that small models are trained on.
 */
export function renderMessages(messages: readonly ChatMessage[], options: { reply?: boolean } = {}): string {
  let text = '';
  for (const m of messages) text += `<|${m.role}|>${messageContent(m)}<|end|>`;
  return options.reply === false ? text : `${text}<|assistant|>`;
}

/** A message's content with its tool calls appended as `<tool_call>` blocks. */
export function messageContent(m: ChatMessage): string {
  if (!m.toolCalls || m.toolCalls.length === 0) return m.content;
  const calls = m.toolCalls.map(
    (c) =>
      `<tool_call>${JSON.stringify({ name: c.name, arguments: parseArguments(c.arguments) })}</tool_call>`,
  );
  return [m.content, ...calls].filter((part) => part !== '').join('\n');
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
