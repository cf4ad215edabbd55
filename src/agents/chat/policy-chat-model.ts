/**
 * The local backend: a stepwise Policy behind the ChatModel interface, with concurrent calls
 * sharing decode batches.
 */
import { z } from 'zod';
import type { Policy } from '../../policy/policy.ts';
import type { Generation } from '../../policy/runtime/generate.ts';
import { parseOrThrow } from '../../util/zod.ts';
import type { ChatMessage, ChatModel, ChatOptions, ChatResult } from '../types.ts';
import { GenerateBatcher, type TokenCallback } from './batcher.ts';
import { templateMessages, toolCallsFromText } from './template.ts';

export const PolicyChatConfig = z.object({
  /** Shown in records: 'policy:<name>'. */
  name: z.string().default('policy'),
  /** Defaults for calls that do not set them. 0 is greedy. */
  temperature: z.number().min(0).default(1),
  topP: z.number().gt(0).max(1).default(1),
  topK: z.number().int().min(0).default(0),
  maxTokens: z.number().int().min(1).default(256),
  /** Calls without a seed take seed, seed + 1, ... in call order (reproducible runs). */
  seed: z.number().int().default(0),
  /** Most rows per decode batch. */
  maxBatch: z.number().int().min(1).default(64),
  /** An idle model starts decoding once no call has arrived for this long, in ms... */
  batchWaitMs: z.number().min(0).default(3),
  /** ...or this long after the batch's first call, whichever comes first. */
  batchMaxWaitMs: z.number().min(0).default(50) /**
   * Share decode batches with every other PolicyChatModel on the same Policy (the first one's
   * batch settings apply); false gives this model batches of its own.
   */,
  shareBatches: z.boolean().default(true),
});
export type PolicyChatConfig = z.infer<typeof PolicyChatConfig>;

/** Per-call extras of the local backend (used by `stepwise serve`). */
export interface PolicyChatExtras {
  /** Log-probs of the k most likely tokens at each step. */
  topLogprobs?: number;
  /** Sees each token as it is sampled (streaming). */
  onToken?: TokenCallback;
}

export interface PolicyChatResult extends ChatResult {
  promptTokens: number[];
  tokenIds: number[];
  logprobs: number[];
  topLogprobs?: { token: number; logprob: number }[][];
}

export class PolicyChatModel implements ChatModel {
  readonly name: string;
  readonly config: PolicyChatConfig;
  readonly batcher: GenerateBatcher;
  private nextSeed: number;

  constructor(
    readonly policy: Policy,
    config: z.input<typeof PolicyChatConfig> = {},
  ) {
    this.config = parseOrThrow(PolicyChatConfig, config, 'invalid PolicyChatModel config');
    this.name = `policy:${this.config.name}`;
    this.nextSeed = this.config.seed;
    const options = {
      maxBatch: this.config.maxBatch,
      waitMs: this.config.batchWaitMs,
      maxWaitMs: this.config.batchMaxWaitMs,
    };
    this.batcher = this.config.shareBatches
      ? GenerateBatcher.shared(policy, options)
      : new GenerateBatcher(policy, options);
  }

  /**
   * The exact prompt token ids a call with these messages and tools would see. Assistant messages
   * with `tokenIds` contribute those ids; `onReencoded` hears of each one the template could not
   * keep (its index in `messages`).
   */
  promptTokens(
    messages: readonly ChatMessage[],
    options: Pick<ChatOptions, 'tools'> & { onReencoded?: (message: number) => void } = {},
  ): number[] {
    const tok = this.policy.tokenizer;
    // A model's own template (Hugging Face) renders tools and tool calls the way it was trained.
    if (tok.rendersTools) {
      return tok.applyChatTemplate(messages, {
        addGenerationPrompt: true,
        tools: options.tools,
        onReencoded: options.onReencoded,
      });
    }
    const rendered = templateMessages(messages, options.tools);
    // templateMessages adds at most one system message, at the front, for the tools.
    const offset = rendered.length - messages.length;
    return tok.applyChatTemplate(rendered, {
      addGenerationPrompt: true,
      onReencoded: options.onReencoded && ((i) => options.onReencoded!(i - offset)),
    });
  }

  async chat(
    messages: readonly ChatMessage[],
    options: ChatOptions & PolicyChatExtras = {},
  ): Promise<PolicyChatResult> {
    if (messages.length === 0) throw new Error('chat: no messages; expected at least one');
    const prompt = this.promptTokens(messages, options);
    return this.complete(prompt, options);
  }

  /** Continue raw prompt token ids (the chat template already applied, or plain text). */
  async complete(prompt: number[], options: ChatOptions & PolicyChatExtras = {}): Promise<PolicyChatResult> {
    const c = this.config;
    const g = await this.batcher.submit(
      prompt,
      {
        temperature: options.temperature ?? c.temperature,
        topP: options.topP ?? c.topP,
        topK: options.topK ?? c.topK,
        maxNewTokens: options.maxTokens ?? c.maxTokens,
        stop: options.stop ?? [],
        seed: options.seed ?? this.nextSeed++,
        topLogprobs: options.topLogprobs ?? 0,
        ...(options.choices ? { choices: options.choices } : {}),
      },
      { onToken: options.onToken, signal: options.signal },
    );
    return this.result(prompt, g, (options.tools?.length ?? 0) > 0);
  }

  private result(prompt: number[], g: Generation, withTools: boolean): PolicyChatResult {
    const text = g.text ?? '';
    const toolCalls = withTools ? toolCallsFromText(text) : [];
    return {
      text,
      promptTokens: prompt,
      tokenIds: g.tokens,
      logprobs: g.logprobs,
      ...(g.topLogprobs ? { topLogprobs: g.topLogprobs } : {}),
      ...(toolCalls.length > 0 ? { toolCalls } : {}),
      finishReason: toolCalls.length > 0 ? 'tool_calls' : g.finishReason,
    };
  }
}
