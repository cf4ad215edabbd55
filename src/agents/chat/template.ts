/**
 * How chat messages with tools become the policy's plain chat template, and how tool calls are read
 * back out of its text. Small open models are trained on the same text form: tool definitions as
 * JSON in the system prompt, calls as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
 */
import type { TemplateMessage } from '../../policy/tokenizer/tokenizer.ts';
import { parseTextToolCalls } from '../../tools/adapters/openai.ts';
import type { ChatMessage, ChatToolCall, ChatToolDefinition } from '../types.ts';

/** The system-prompt section that lists the tools and says how to call them. */
export function renderTools(tools: readonly ChatToolDefinition[]): string {
  const lines = tools.map((t) =>
    JSON.stringify({
      name: t.function.name,
      description: t.function.description ?? '',
      parameters: t.function.parameters,
    }),
  );
  return [
    '# Tools',
    'You may call one or more of these tools (JSON Schema of each):',
    ...lines,
    'To call a tool, write <tool_call>{"name": "<tool name>", "arguments": {<arguments>}}</tool_call>.',
  ].join('\n');
}

/** A tool call as the text the model writes for it. */
export function renderToolCall(call: ChatToolCall): string {
  let args: unknown = call.arguments;
  try {
    args = JSON.parse(call.arguments);
  } catch {
    // Not JSON: keep the text as it was, so the transcript shows exactly what was asked.
  }
  return `<tool_call>${JSON.stringify({ name: call.name, arguments: args })}</tool_call>`;
}

/**
 * Messages (+ tools) -> the template's {role, content} messages. Tools go into the first system
 * message (one is added when there is none); an assistant's tool calls follow its text.
 */
export function templateMessages(
  messages: readonly ChatMessage[],
  tools: readonly ChatToolDefinition[] = [],
): TemplateMessage[] {
  const out: TemplateMessage[] = messages.map((m) => {
    // Sampled ids already hold the reply's tool calls as the text the model wrote.
    if (m.tokenIds) return { role: m.role, content: m.content, tokenIds: m.tokenIds };
    if (m.role === 'assistant' && m.toolCalls && m.toolCalls.length > 0) {
      const calls = m.toolCalls.map(renderToolCall).join('\n');
      return { role: 'assistant', content: m.content ? `${m.content}\n${calls}` : calls };
    }
    return { role: m.role, content: m.content };
  });
  if (tools.length > 0) {
    const section = renderTools(tools);
    const first = out[0];
    if (first?.role === 'system') out[0] = { role: 'system', content: `${first.content}\n\n${section}` };
    else out.unshift({ role: 'system', content: section });
  }
  return out;
}

/** The well-formed tool calls in a reply's text (malformed ones stay visible in the text). */
export function toolCallsFromText(text: string): ChatToolCall[] {
  const calls: ChatToolCall[] = [];
  for (const c of parseTextToolCalls(text)) {
    if (c.ok) calls.push({ id: c.id, name: c.name, arguments: c.arguments });
  }
  return calls;
}
