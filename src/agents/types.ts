/**
 * The chat-model interface every agent module talks to. Pinned early because the loops, AgentFlow
 * and `stepwise serve` are written against it in parallel; its owner may add optional fields.
 */
import type { Choices } from '../policy/runtime/choices.ts';
import type { ChatRole, TemplateMessage } from '../policy/tokenizer/tokenizer.ts';

export type { ChatRole };

import type { ToolCall } from '../tools/adapters/openai.ts';

/** A tool call as a model made it: the tools' `ToolCall` (OpenAI's shape; `arguments` is JSON text). */
export type ChatToolCall = ToolCall;

/** A conversation message: the template's role and text, plus OpenAI's tool-call fields. */
export interface ChatMessage extends TemplateMessage {
  /** On assistant messages: the tool calls the model made. */
  toolCalls?: ChatToolCall[];
  /** On tool messages: the call this message answers. */
  toolCallId?: string;
  /** On tool messages: the tool's name. */
  name?: string;
}

/** An OpenAI function-tool definition (what `openAITools()` from src/tools returns). */
export interface ChatToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export interface ChatOptions {
  /** 0 is greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  maxTokens?: number;
  stop?: string[];
  seed?: number;
  tools?: ChatToolDefinition[];
  /**
   * Constrained decoding: the text between `open` and `close` is one of `options`. Honoured by the
   * local policy (src/policy/runtime/choices.ts); remote endpoints ignore it.
   */
  choices?: Choices;
  signal?: AbortSignal;
}

export interface ChatResult {
  text: string;
  /** The exact prompt token ids the model saw (local policy, or a stepwise server). */
  promptTokens?: number[];
  /** The generated token ids, token-exact for training (local policy, or a stepwise server). */
  tokenIds?: number[];
  /** log-prob of each generated token under the model (temperature 1), when the backend has them. */
  logprobs?: number[];
  toolCalls?: ChatToolCall[];
  finishReason: 'stop' | 'length' | 'tool_calls';
}

export interface ChatModel {
  /** For records and logs: 'policy:<name>', 'openai:<model>', 'langchain:<class>'. */
  readonly name: string;
  chat(messages: readonly ChatMessage[], options?: ChatOptions): Promise<ChatResult>;
}
