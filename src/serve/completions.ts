/**
 * POST /v1/completions: plain text (or token ids) continued without the chat template. With
 * `echo` and `logprobs` it scores the prompt too (the first token has no log-prob), which is how
 * OpenAI-style clients score text; `max_tokens: 0` then only scores.
 */
import { randomUUID } from 'node:crypto';
import type { PolicyChatModel, PolicyChatResult } from '../agents/chat/policy-chat-model.ts';
import type { PolicyTokenizer } from '../policy/tokenizer/tokenizer.ts';
import type { Reply } from './chat-completions.ts';
import { badRequest, contextOverflow } from './errors.ts';
import type { CompletionRequest, StepwiseTokens } from './protocol.ts';
import { TextStream } from './text-stream.ts';

type Top = { token: number; logprob: number }[];

function promptIds(tok: PolicyTokenizer, prompt: CompletionRequest['prompt']): number[][] {
  const list: (string | number[])[] =
    typeof prompt === 'string'
      ? [prompt]
      : typeof prompt[0] === 'number'
        ? [prompt as number[]]
        : (prompt as (string | number[])[]);
  return list.map((p) => {
    const ids = typeof p === 'string' ? tok.encode(p) : p;
    if (ids.length === 0) throw badRequest('the prompt is empty; expected at least one token', 'prompt');
    const bad = ids.find((t) => t >= tok.vocabSize);
    if (bad !== undefined) {
      throw badRequest(`token id ${bad} is outside the vocabulary (0..${tok.vocabSize - 1})`, 'prompt');
    }
    return ids;
  });
}

/** The legacy `logprobs` object; `top` entries are null where there are none (scored prompt tokens). */
function legacyLogprobs(
  tok: PolicyTokenizer,
  ids: number[],
  lps: (number | null)[],
  tops: (Top | null | undefined)[],
  offset0 = 0,
) {
  const tokens = ids.map((t) => tok.decode([t]));
  let offset = offset0;
  const text_offset = tokens.map((s) => {
    const at = offset;
    offset += s.length;
    return at;
  });
  return {
    tokens,
    token_logprobs: lps,
    top_logprobs: tops.map((t) =>
      t ? Object.fromEntries(t.map((e) => [tok.decode([e.token]), e.logprob])) : null,
    ),
    text_offset,
  };
}

export async function completions(
  model: PolicyChatModel,
  modelId: string,
  req: CompletionRequest,
  reply: Reply,
): Promise<void> {
  const tok = model.policy.tokenizer;
  const ctx = model.policy.config.contextLength;
  const prompts = promptIds(tok, req.prompt);
  const maxTokens = req.max_tokens ?? 16;
  for (const p of prompts) {
    if (p.length + maxTokens > ctx || p.length >= ctx) throw contextOverflow(p.length, maxTokens, ctx);
  }
  if (maxTokens === 0 && !req.echo) {
    throw badRequest('max_tokens is 0 without echo: nothing to return', 'max_tokens');
  }
  const n = req.n ?? 1;
  const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  const top = req.logprobs ?? null;
  const base = {
    id: `cmpl-${randomUUID()}`,
    created: Math.floor(Date.now() / 1000),
    model: modelId,
    system_fingerprint: 'stepwise',
  };
  const stream = req.stream === true;
  const chunk = (index: number, text: string, extra: object = {}) =>
    reply.event({
      ...base,
      object: 'text_completion',
      choices: [{ index, text, logprobs: null, finish_reason: null, ...extra }],
    });

  // Prompt log-probs for echo: token i scored after tokens 0..i-1.
  const promptScores =
    req.echo && top !== null
      ? await model.policy.scoreBatch(
          prompts.map((p) => ({ prompt: p.slice(0, 1), continuation: p.slice(1) })),
        )
      : [];
  const rows = prompts.flatMap((prompt, p) => Array.from({ length: n }, (_, j) => ({ prompt, p, j })));
  const echoPart = (index: number) => {
    const { prompt, p } = rows[index]!;
    const text = tok.decode(prompt);
    const logprobs =
      top === null
        ? null
        : legacyLogprobs(
            tok,
            prompt,
            [null, ...promptScores[p]!],
            prompt.map(() => null),
          );
    return { text, logprobs };
  };
  if (stream && req.echo) {
    for (const index of rows.keys()) {
      const e = echoPart(index);
      chunk(index, e.text, { logprobs: e.logprobs });
    }
  }

  const empty: PolicyChatResult = {
    text: '',
    promptTokens: [],
    tokenIds: [],
    logprobs: [],
    finishReason: 'length',
  };
  const generated = await Promise.all(
    rows.map(({ prompt, j }, index) => {
      if (maxTokens === 0)
        return Promise.resolve({ r: { ...empty, promptTokens: prompt }, ts: new TextStream(tok, []) });
      const text = new TextStream(tok, stop);
      return model
        .complete(prompt, {
          temperature: req.temperature ?? 1,
          topP: req.top_p ?? 1,
          maxTokens,
          stop,
          seed: req.seed != null ? req.seed + j : undefined,
          topLogprobs: top ?? 0,
          onToken: stream
            ? (token, logprob, t) => {
                const piece = text.push(token);
                const lp =
                  top === null
                    ? {}
                    : { logprobs: legacyLogprobs(tok, [token], [logprob], [top > 0 ? t : null]) };
                if (piece || top !== null) chunk(index, piece, lp);
              }
            : undefined,
        })
        .then((r) => ({ r, ts: text }));
    }),
  );

  const finish = (g: PolicyChatResult) => (g.finishReason === 'length' ? 'length' : 'stop');
  const stepwiseOf = (index: number): StepwiseTokens => ({
    prompt_token_ids: rows[index]!.prompt,
    completion_token_ids: generated[index]!.r.tokenIds,
  });
  const promptTokens = prompts.reduce((s, p) => s + p.length, 0) * n;
  const completionTokens = generated.reduce((s, g) => s + g.r.tokenIds.length, 0);
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };

  if (stream) {
    for (const [index, { r, ts }] of generated.entries()) {
      chunk(index, ts.finish(r.text), { finish_reason: finish(r), stepwise: stepwiseOf(index) });
    }
    if (req.stream_options?.include_usage)
      reply.event({ ...base, object: 'text_completion', choices: [], usage });
    reply.end();
    return;
  }
  const choices = generated.map(({ r: g }, index) => {
    let text = g.text;
    let logprobs = null;
    if (top !== null) {
      logprobs = legacyLogprobs(tok, g.tokenIds, g.logprobs, g.topLogprobs ?? g.tokenIds.map(() => null));
    }
    if (req.echo) {
      const e = echoPart(index);
      if (e.logprobs && logprobs) {
        const shifted = logprobs.text_offset.map((o) => o + e.text.length);
        logprobs = {
          tokens: [...e.logprobs.tokens, ...logprobs.tokens],
          token_logprobs: [...e.logprobs.token_logprobs, ...logprobs.token_logprobs],
          top_logprobs: [...e.logprobs.top_logprobs, ...logprobs.top_logprobs],
          text_offset: [...e.logprobs.text_offset, ...shifted],
        };
      }
      text = e.text + text;
    }
    return { index, text, logprobs, finish_reason: finish(g), stepwise: stepwiseOf(index) };
  });
  reply.json({ ...base, object: 'text_completion', choices, usage });
}
