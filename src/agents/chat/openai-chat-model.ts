/**
 * Any OpenAI-compatible endpoint (OpenAI, vLLM, a `stepwise serve`) through the official SDK.
 */
import OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';
import type { ChatMessage, ChatModel, ChatOptions, ChatResult, ChatToolCall } from '../types.ts';
import { toolCallsFromText } from './template.ts';

export const OpenAIChatConfig = z.object({
  model: z.string().min(1),
  /** e.g. http://127.0.0.1:8000/v1 for a local server; the SDK's default (OpenAI) when unset. */
  baseURL: z.string().url().optional(),
  /** Falls back to OPENAI_API_KEY; local servers accept any value. */
  apiKey: z.string().optional(),
  /**
   * Ask for per-token log-probs (needed to train on the replies). Some hosted models reject the
   * parameter; turn it off for those.
   */
  logprobs: z.boolean().default(true),
  /** Defaults for calls that do not set them (unset: the server's defaults). */
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.number().int().min(1).optional(),
  maxRetries: z.number().int().min(0).default(2),
  timeoutMs: z.number().int().positive().default(120_000),
});
export type OpenAIChatConfig = z.infer<typeof OpenAIChatConfig>;

/** What a stepwise server adds to each choice (see src/serve). */
interface StepwiseChoiceExtra {
  stepwise?: { prompt_token_ids?: number[]; completion_token_ids?: number[] };
}

export function toOpenAIMessages(messages: readonly ChatMessage[]): ChatCompletionMessageParam[] {
  return messages.map((m, i): ChatCompletionMessageParam => {
    switch (m.role) {
      case 'system':
        return { role: 'system', content: m.content };
      case 'user':
        return { role: 'user', content: m.content };
      case 'assistant':
        return {
          role: 'assistant',
          content: m.content,
          ...(m.toolCalls?.length
            ? {
                tool_calls: m.toolCalls.map((c) => ({
                  id: c.id,
                  type: 'function' as const,
                  function: { name: c.name, arguments: c.arguments },
                })),
              }
            : {}),
        };
      case 'tool':
        if (!m.toolCallId) {
          throw new Error(
            `message ${i} is a tool message without toolCallId; OpenAI needs the id of the call it answers`,
          );
        }
        return { role: 'tool', content: m.content, tool_call_id: m.toolCallId };

      default:
        throw new Error(
          `message ${i} has role '${(m as ChatMessage).role}'; expected system, user, assistant or tool`,
        );
    }
  });
}

export class OpenAIChatModel implements ChatModel {
  readonly name: string;
  readonly config: OpenAIChatConfig;
  readonly client: OpenAI;

  constructor(config: z.input<typeof OpenAIChatConfig>) {
    this.config = parseOrThrow(OpenAIChatConfig, config, 'invalid OpenAIChatModel config');
    this.name = `openai:${this.config.model}`;
    this.client = new OpenAI({
      baseURL: this.config.baseURL,
      apiKey: this.config.apiKey ?? process.env.OPENAI_API_KEY ?? 'not-needed',
      maxRetries: this.config.maxRetries,
      timeout: this.config.timeoutMs,
    });
  }

  async chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatResult> {
    const c = this.config;
    const temperature = options.temperature ?? c.temperature;
    const maxTokens = options.maxTokens ?? c.maxTokens;
    // topK is not part of the OpenAI API, so it is not sent.
    const body: ChatCompletionCreateParamsNonStreaming = {
      model: c.model,
      messages: toOpenAIMessages(messages),
      ...(temperature !== undefined ? { temperature } : {}),
      ...(options.topP !== undefined ? { top_p: options.topP } : {}),
      ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
      ...(options.stop?.length ? { stop: options.stop } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.tools?.length ? { tools: options.tools } : {}),
      ...(c.logprobs ? { logprobs: true } : {}),
    };
    const response = await this.client.chat.completions.create(body, { signal: options.signal });
    return fromCompletion(response, (options.tools?.length ?? 0) > 0);
  }
}

/** A chat completion's first choice as a ChatResult. */
export function fromCompletion(response: ChatCompletion, withTools: boolean): ChatResult {
  const choice = response.choices[0];
  if (!choice) throw new Error(`the chat completion ${response.id} has no choices`);
  const text = choice.message.content ?? '';
  let toolCalls: ChatToolCall[] = (choice.message.tool_calls ?? []).flatMap((t) =>
    t.type === 'function' ? [{ id: t.id, name: t.function.name, arguments: t.function.arguments }] : [],
  );
  // Servers without a tool-call parser return small models' `<tool_call>` text as content.
  if (toolCalls.length === 0 && withTools) toolCalls = toolCallsFromText(text);
  const extra = (choice as typeof choice & StepwiseChoiceExtra).stepwise;
  const logprobs = choice.logprobs?.content?.map((t) => t.logprob);
  const finishReason =
    toolCalls.length > 0 || choice.finish_reason === 'tool_calls' || choice.finish_reason === 'function_call'
      ? 'tool_calls'
      : choice.finish_reason === 'length'
        ? 'length'
        : 'stop';
  return {
    text,
    ...(extra?.prompt_token_ids ? { promptTokens: extra.prompt_token_ids } : {}),
    ...(extra?.completion_token_ids ? { tokenIds: extra.completion_token_ids } : {}),
    ...(logprobs && logprobs.length > 0 ? { logprobs } : {}),
    ...(toolCalls.length > 0 ? { toolCalls } : {}),
    finishReason,
  };
}
