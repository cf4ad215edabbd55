/**
 * POST /v1/chat/completions: OpenAI chat messages through the policy's chat template; tools are
 * rendered into the system prompt and `<tool_call>` blocks in the reply come back as `tool_calls`.
 */
import { randomUUID } from 'node:crypto';
import type { PolicyChatModel, PolicyChatResult } from '../agents/chat/policy-chat-model.ts';
import { toolCallsFromText } from '../agents/chat/template.ts';
import type { ChatMessage, ChatToolDefinition } from '../agents/types.ts';
import { callSeed } from '../util/random.ts';
import { badRequest, contextOverflow } from './errors.ts';
import type { ChatCompletionRequest, StepwiseTokens } from './protocol.ts';
import type { ServeRecorder } from './recorder.ts';
import { promptIds, type ReplyCache, replyIds, replyKey } from './replies.ts';
import { TextStream } from './text-stream.ts';

/** Where a response goes: one JSON body, or server-sent events. */
export interface Reply {
  json(body: unknown): void;
  event(body: unknown): void;
  end(): void;
}

function contentText(content: ChatCompletionRequest['messages'][number]['content']): string {
  if (content == null) return '';
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

/** The sampling a trainer imposes on a rollout it started (its temperature, its seeds). */
export interface RolloutSampling {
  temperature: number;
  /** Step k of the rollout samples with callSeed(seed, k). */
  seed: number;
  /** Most tokens per reply (the request's own limit applies when smaller). */
  maxTokens?: number;
}

/** A request's rollout (from its headers), with where its steps go. */
export interface RolloutContext {
  rollout: string;
  group: string;
  /** `x-stepwise-anchor`, when given. */
  anchor?: string;
  /** Steps the rollout had recorded when the request arrived (seeds the trainer's sampling). */
  stepIndex: number;
  recorder?: ServeRecorder;
  sampling?: RolloutSampling;
}

/** What a chat completion needs besides the request: the server's replies, and the rollout if any. */
export interface ChatContext {
  replies: ReplyCache;
  rollout?: RolloutContext;
}

/** OpenAI messages -> the agents' ChatMessage ('developer' is a system message here). */
export function toChatMessages(messages: ChatCompletionRequest['messages']): ChatMessage[] {
  return messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: contentText(m.content),
    ...(m.tool_calls?.length
      ? {
          toolCalls: m.tool_calls.map((c) => ({
            id: c.id,
            name: c.function.name,
            arguments: c.function.arguments,
          })),
        }
      : {}),
    ...(m.tool_call_id ? { toolCallId: m.tool_call_id } : {}),
    ...(m.name ? { name: m.name } : {}),
  }));
}

/**
 * With tool_choice 'required' or a named function, the reply is started for the model with the
 * opening of a tool call (the only way to oblige a small local model); those tokens are part of the
 * prompt ids, and of the text the tool calls are parsed from.
 */
function forcedPrefix(req: ChatCompletionRequest, tools: ChatToolDefinition[]): string {
  const choice = req.tool_choice;
  if (!choice || choice === 'auto' || choice === 'none') return '';
  if (tools.length === 0) throw badRequest('tool_choice needs tools; the request has none', 'tool_choice');
  if (choice === 'required') return '<tool_call>{"name": "';
  if (!tools.some((t) => t.function.name === choice.function.name)) {
    throw badRequest(`tool_choice names '${choice.function.name}', which is not in tools`, 'tool_choice');
  }
  return `<tool_call>{"name": ${JSON.stringify(choice.function.name)}, "arguments": `;
}

export async function chatCompletions(
  model: PolicyChatModel,
  modelId: string,
  req: ChatCompletionRequest,
  reply: Reply,
  context: ChatContext,
): Promise<void> {
  const tok = model.policy.tokenizer;
  const ctx = model.policy.config.contextLength;
  const tools: ChatToolDefinition[] = (req.tools ?? []).map((t) => ({
    type: 'function',
    function: {
      name: t.function.name,
      description: t.function.description,
      parameters: t.function.parameters ?? {},
    },
  }));
  const parseTools = tools.length > 0 && req.tool_choice !== 'none';
  const prefix = forcedPrefix(req, tools);
  const messages = toChatMessages(req.messages);
  const rollout = context.rollout;
  const opening = tok.encode(prefix);
  // Recorded reply ids go into the template where each reply's content goes (either tokenizer).
  const built = promptIds(model, messages, tools, context.replies, rollout?.rollout);
  const prompt = [...built.ids, ...opening];
  const sampling = context.rollout?.sampling;
  const requested = req.max_completion_tokens ?? req.max_tokens;
  const asked =
    sampling?.maxTokens === undefined
      ? requested
      : Math.min(requested ?? sampling.maxTokens, sampling.maxTokens, Math.max(ctx - prompt.length, 1));
  if (asked === 0) throw badRequest('max_tokens must be at least 1', 'max_tokens');
  if (prompt.length >= ctx || (asked != null && prompt.length + asked > ctx)) {
    throw contextOverflow(prompt.length, asked ?? 1, ctx);
  }
  if (req.top_logprobs != null && !req.logprobs) {
    throw badRequest('top_logprobs requires logprobs to be true', 'top_logprobs');
  }
  const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  const n = req.n ?? 1;
  if (rollout && n !== 1) {
    throw badRequest(
      `a request of rollout '${rollout.rollout}' must ask for one choice (n = 1), not ${n}`,
      'n',
    );
  }
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const base = { id, created, model: modelId, system_fingerprint: 'stepwise' };
  const stream = req.stream === true;

  const tokenLogprob = (token: number, logprob: number, top?: { token: number; logprob: number }[]) => ({
    token: tok.decode([token]),
    logprob,
    bytes: Array.from(tok.tokenBytes(token)),
    top_logprobs: (top ?? []).map((t) => ({
      token: tok.decode([t.token]),
      logprob: t.logprob,
      bytes: Array.from(tok.tokenBytes(t.token)),
    })),
  });

  const logprobsOf = (r: PolicyChatResult) =>
    r.tokenIds.map((t, k) => tokenLogprob(t, r.logprobs[k]!, r.topLogprobs?.[k]));

  // Streaming: the role first, then text as it becomes safe to send (all at the end when the reply
  // may turn out to be a tool call), then a closing chunk with the finish reason and token ids.
  const chunk = (index: number, delta: object, extra: object = {}) =>
    reply.event({
      ...base,
      object: 'chat.completion.chunk',
      choices: [{ index, delta, logprobs: null, finish_reason: null, ...extra }],
    });
  if (stream) for (let i = 0; i < n; i++) chunk(i, { role: 'assistant', content: '' });

  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const text = new TextStream(tok, stop);
      return model
        .complete(prompt, {
          temperature: sampling?.temperature ?? req.temperature ?? 1,
          topP: req.top_p ?? 1,
          maxTokens: asked ?? ctx - prompt.length,
          stop,
          seed: sampling
            ? callSeed(sampling.seed, rollout!.stepIndex)
            : req.seed != null
              ? req.seed + i
              : undefined,
          topLogprobs: req.logprobs ? (req.top_logprobs ?? 0) : 0,
          onToken:
            stream && !parseTools
              ? (token, logprob, top) => {
                  const piece = text.push(token);
                  const lp = req.logprobs
                    ? { logprobs: { content: [tokenLogprob(token, logprob, top)] } }
                    : {};
                  if (piece || req.logprobs) chunk(i, { content: piece }, lp);
                }
              : undefined,
        })
        .then((r) => ({ r, text }));
    }),
  );

  const choices = results.map(({ r, text }, index) => {
    const full = prefix + r.text;
    const calls = parseTools ? toolCallsFromText(full) : [];
    const stepwise: StepwiseTokens = {
      prompt_token_ids: prompt,
      completion_token_ids: r.tokenIds,
      reencoded_messages: built.reencoded,
      ...(rollout ? { rollout: rollout.rollout } : {}),
    };
    const finish: 'stop' | 'length' | 'tool_calls' =
      calls.length > 0 ? 'tool_calls' : r.finishReason === 'length' ? 'length' : 'stop';
    const toolCalls = calls.map((c, k) => ({
      index: k,
      id: `call_${randomUUID().slice(0, 8)}_${k}`,
      type: 'function' as const,
      function: { name: c.name, arguments: c.arguments },
    }));
    const content =
      calls.length > 0 ? full.replace(/<tool_call>[\s\S]*?(<\/tool_call>|$)/g, '').trim() || null : full;
    return { r, text, index, stepwise, finish, toolCalls, content, calls, full };
  });

  // Remembered, so that the client sending a reply back gets its sampled ids in the next prompt.
  for (const c of choices) {
    context.replies.add(replyKey(c.content, c.calls), replyIds(tok, opening, c.r.tokenIds), rollout?.rollout);
  }
  if (rollout?.recorder) {
    const c = choices[0]!;
    // Numbered when recorded: concurrent calls of one rollout take the next free index.
    const stepIndex = rollout.recorder.rollout(rollout.rollout)?.steps ?? 0;
    c.stepwise.step_index = stepIndex;
    rollout.recorder.addStep({
      rollout: rollout.rollout,
      group: rollout.group,
      stepIndex,
      model: modelId,
      anchor: rollout.anchor ?? lastObservation(messages),
      messages,
      promptText: tok.decode(prompt),
      promptTokens: prompt,
      responseText: c.full,
      responseTokens: c.r.tokenIds,
      responseLogprobs: c.r.logprobs,
      toolCalls: c.toolCalls.map((t) => ({
        id: t.id,
        name: t.function.name,
        arguments: t.function.arguments,
      })),
      finishReason: c.finish,
      reencoded: built.reencoded,
    });
  }

  const usage = usageOf(
    prompt.length,
    results.map(({ r }) => r),
  );
  if (stream) {
    for (const c of choices) {
      // With tools on nothing was streamed yet: the log-probs of every token go with the reply.
      const lp = parseTools && req.logprobs ? { logprobs: { content: logprobsOf(c.r) } } : {};
      if (c.toolCalls.length > 0) {
        chunk(c.index, { tool_calls: c.toolCalls }, lp);
      } else {
        // Buffered (tools were on) or held back (a possible stop string): send the rest now.
        const rest = parseTools ? (c.content ?? '') : c.text.finish(c.r.text);
        if (rest || parseTools) chunk(c.index, { content: rest }, lp);
      }
      chunk(c.index, {}, { finish_reason: c.finish, stepwise: c.stepwise });
    }
    if (req.stream_options?.include_usage)
      reply.event({ ...base, object: 'chat.completion.chunk', choices: [], usage });
    reply.end();
    return;
  }
  reply.json({
    ...base,
    object: 'chat.completion',
    choices: choices.map((c) => ({
      index: c.index,
      message: {
        role: 'assistant',
        content: c.content,
        refusal: null,
        ...(c.toolCalls.length > 0 ? { tool_calls: c.toolCalls.map(({ index: _i, ...t }) => t) } : {}),
      },
      logprobs: req.logprobs ? { content: logprobsOf(c.r), refusal: null } : null,
      finish_reason: c.finish,
      stepwise: c.stepwise,
    })),
    usage,
  });
}

/** The default anchor of a step: the text of the last message that is not the assistant's. */
function lastObservation(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role !== 'assistant') return messages[i]!.content;
  }
  return '';
}

export function usageOf(promptTokens: number, results: readonly PolicyChatResult[]) {
  const completion = results.reduce((s, r) => s + r.tokenIds.length, 0);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
  };
}
