/**
 * Any LangChain chat model (ChatOpenAI, ChatAnthropic, ChatOllama, ...) behind the ChatModel
 * interface. Sampling settings (temperature, top-p, max tokens) belong to the LangChain model's
 * own constructor, since each provider names them differently; stop, tools and signal pass through.
 */
import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import {
  AIMessage,
  type BaseMessage,
  HumanMessage,
  SystemMessage,
  ToolMessage,
} from '@langchain/core/messages';
import type { ChatMessage, ChatModel, ChatOptions, ChatResult, ChatToolCall } from '../types.ts';

export function toLangChainMessages(messages: readonly ChatMessage[]): BaseMessage[] {
  return messages.map((m, i) => {
    switch (m.role) {
      case 'system':
        return new SystemMessage(m.content);
      case 'user':
        return new HumanMessage(m.content);
      case 'assistant':
        return new AIMessage({
          content: m.content,
          tool_calls: (m.toolCalls ?? []).map((c) => ({
            id: c.id,
            name: c.name,
            args: parseArgs(c.arguments),
          })),
        });
      case 'tool':
        if (!m.toolCallId)
          throw new Error(`message ${i} is a tool message without toolCallId; LangChain needs it`);
        return new ToolMessage({ content: m.content, tool_call_id: m.toolCallId, name: m.name });

      default:
        throw new Error(
          `message ${i} has role '${(m as ChatMessage).role}'; expected system, user, assistant or tool`,
        );
    }
  });
}

function parseArgs(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : { input: v };
  } catch {
    return { input: text };
  }
}

function textOf(content: BaseMessage['content']): string {
  if (typeof content === 'string') return content;
  return content
    .map((part) => (typeof part === 'string' ? part : part.type === 'text' ? String(part.text) : ''))
    .join('');
}

export class LangChainChatModel implements ChatModel {
  readonly name: string;

  constructor(
    readonly model: BaseChatModel,
    options: { name?: string } = {},
  ) {
    this.name = `langchain:${options.name ?? model.constructor.name}`;
  }

  async chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatResult> {
    const tools = options.tools ?? [];
    if (tools.length > 0 && !this.model.bindTools) {
      throw new Error(`${this.name} cannot call tools: the LangChain model has no bindTools`);
    }
    // LangChain's own minimal tool shape ({name, description, schema}), which every provider converts.
    const specs = tools.map((t) => ({
      name: t.function.name,
      description: t.function.description ?? '',
      schema: { type: 'object', properties: {}, ...t.function.parameters },
    }));
    const runnable = tools.length > 0 ? this.model.bindTools!(specs) : this.model;
    const out = (await runnable.invoke(toLangChainMessages(messages), {
      ...(options.stop?.length ? { stop: options.stop } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    })) as AIMessage;
    const toolCalls: ChatToolCall[] = (out.tool_calls ?? []).map((c, k) => ({
      id: c.id ?? `call_${k}`,
      name: c.name,
      arguments: JSON.stringify(c.args ?? {}),
    }));
    // Providers that return log-probs (ChatOpenAI with logprobs: true) put them in response_metadata.
    const meta = (out.response_metadata ?? {}) as {
      finish_reason?: string;
      logprobs?: { content?: { logprob: number }[] };
    };
    const logprobs = meta.logprobs?.content?.map((t) => t.logprob);
    return {
      text: textOf(out.content),
      ...(logprobs?.length ? { logprobs } : {}),
      ...(toolCalls.length > 0 ? { toolCalls } : {}),
      finishReason: toolCalls.length > 0 ? 'tool_calls' : meta.finish_reason === 'length' ? 'length' : 'stop',
    };
  }
}
