/**
 * The request bodies the server accepts, as zod schemas (OpenAI's names and ranges). Unknown fields
 * are ignored, as OpenAI-compatible servers commonly do; known fields with bad values are 400s.
 */
import { z } from 'zod';

const Stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();

const Sampling = {
  model: z.string().min(1),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  max_tokens: z.number().int().min(0).nullish(),
  stop: Stop,
  n: z.number().int().min(1).max(16).nullish(),
  seed: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
};

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const Content = z.union([z.string(), z.array(TextPart)]).nullish();

const ToolCall = z.object({
  id: z.string(),
  type: z.literal('function').optional(),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export const ChatMessageIn = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: Content,
  name: z.string().optional(),
  tool_calls: z.array(ToolCall).nullish(),
  tool_call_id: z.string().optional(),
});

const FunctionTool = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const ChatCompletionRequest = z.object({
  ...Sampling,
  max_completion_tokens: z.number().int().min(1).nullish(),
  messages: z.array(ChatMessageIn).min(1),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(FunctionTool).nullish(),
  tool_choice: z
    .union([
      z.enum(['none', 'auto', 'required']),
      z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }),
    ])
    .nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z.object({
  ...Sampling,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(z.number().int().min(0)).min(1),
    z.array(z.array(z.number().int().min(0)).min(1)).min(1),
  ]),
  echo: z.boolean().nullish(),
  /** Legacy completions: the number of top log-probs per token (0..5); null for none. */
  logprobs: z.number().int().min(0).max(5).nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** The extra field on every choice: token-exact ids for training on served rollouts. */
export interface StepwiseTokens {
  prompt_token_ids: number[];
  completion_token_ids: number[];
  /** Chat: assistant messages of the request matched to no reply of this server, so re-encoded. */
  reencoded_messages?: number;
  /** Chat with `x-stepwise-rollout`: the rollout and the step this completion was recorded as. */
  rollout?: string;
  step_index?: number;
}

/** POST /v1/rewards: a rollout's outcome, and optionally one reward per recorded step. */
export const RewardRequest = z.strictObject({
  rollout: z.string().min(1),
  reward: z.number().finite(),
  won: z.boolean().optional(),
  step_rewards: z.array(z.number().finite()).optional(),
});
export type RewardRequest = z.infer<typeof RewardRequest>;
