// POST /v1/completions: plain text (or token ids) continued without the chat template. With
// `echo` and `logprobs` it scores the prompt too (the first token has no log-prob), which is how
// OpenAI-style clients score text; `max_tokens: 0` then only scores.
import { randomUUID } from 'node:crypto';
import type { PolicyChatModel } from '../agents/chat/policy-chat-model.ts';
import type { Reply } from './chat-completions.ts';
import { badRequest, contextOverflow } from './errors.ts';
import type { CompletionRequest, StepwiseTokens } from './protocol.ts';

function promptIds(model: PolicyChatModel, prompt: CompletionRequest['prompt']): number[][] {
  const tok = model.policy.tokenizer;
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

export async function completions(
  model: PolicyChatModel,
  modelId: string,
  req: CompletionRequest,
  reply: Reply,
): Promise<void> {
  if (req.stream)
    throw badRequest('stream is not supported on /v1/completions; use /v1/chat/completions', 'stream');
  const tok = model.policy.tokenizer;
  const ctx = model.policy.config.contextLength;
  const prompts = promptIds(model, req.prompt);
  const maxTokens = req.max_tokens ?? 16;
  for (const p of prompts)
    if (p.length + maxTokens > ctx || p.length >= ctx) throw contextOverflow(p.length, maxTokens, ctx);
  if (maxTokens === 0 && !req.echo)
    throw badRequest('max_tokens is 0 without echo: nothing to return', 'max_tokens');
  const n = req.n ?? 1;
  const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  const top = req.logprobs ?? null;

  const rows = prompts.flatMap((prompt) => Array.from({ length: n }, (_, j) => ({ prompt, j })));
  const generated = await Promise.all(
    rows.map(({ prompt, j }) =>
      maxTokens === 0
        ? Promise.resolve({
            text: '',
            tokenIds: [] as number[],
            logprobs: [] as number[],
            topLogprobs: undefined,
            finishReason: 'length' as const,
          })
        : model.complete(prompt, {
            temperature: req.temperature ?? 1,
            topP: req.top_p ?? 1,
            maxTokens,
            stop,
            seed: req.seed != null ? req.seed + j : undefined,
            topLogprobs: top ?? 0,
          }),
    ),
  );
  // Prompt log-probs for echo: token i scored after tokens 0..i-1.
  const promptScores =
    req.echo && top !== null
      ? await model.policy.scoreBatch(
          prompts.map((p) => ({ prompt: p.slice(0, 1), continuation: p.slice(1) })),
        )
      : [];

  const choices = rows.map(({ prompt }, index) => {
    const g = generated[index]!;
    const promptIndex = Math.floor(index / n);
    const promptText = tok.decode(prompt);
    const text = req.echo ? promptText + g.text : g.text;
    const stepwise: StepwiseTokens = { prompt_token_ids: prompt, completion_token_ids: g.tokenIds };
    let logprobs = null;
    if (top !== null) {
      const ids = req.echo ? [...prompt, ...g.tokenIds] : g.tokenIds;
      const lps: (number | null)[] = req.echo
        ? [null, ...promptScores[promptIndex]!, ...g.logprobs]
        : g.logprobs;
      // Top log-probs exist for generated tokens; the prompt's (scored, not sampled) are null.
      const tops = req.echo ? [...prompt.map(() => null), ...(g.topLogprobs ?? [])] : (g.topLogprobs ?? []);
      const tokens = ids.map((t) => tok.decode([t]));
      let offset = 0;
      const text_offset = tokens.map((s) => {
        const at = offset;
        offset += s.length;
        return at;
      });
      logprobs = {
        tokens,
        token_logprobs: lps,
        top_logprobs: ids.map((_, k) => {
          const t = tops[k];
          return t && top > 0 ? Object.fromEntries(t.map((e) => [tok.decode([e.token]), e.logprob])) : null;
        }),
        text_offset,
      };
    }
    return {
      index,
      text,
      logprobs,
      finish_reason: g.finishReason === 'length' ? 'length' : 'stop',
      stepwise,
    };
  });
  const promptTokens = prompts.reduce((s, p) => s + p.length, 0);
  const completionTokens = generated.reduce((s, g) => s + g.tokenIds.length, 0);
  reply.json({
    id: `cmpl-${randomUUID()}`,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: modelId,
    system_fingerprint: 'stepwise',
    choices,
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  });
}
