// The OpenAI backend against a real `stepwise serve` on localhost: token-exact results across the wire.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIChatModel, PolicyChatModel } from '../../src/agents/chat/index.ts';
import type { ChatMessage } from '../../src/agents/types.ts';
import type { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { PYTHON_TOOL, toolCallingPolicy } from './chat-helpers.ts';

let policy: Policy;
let server: PolicyServer;
let remote: OpenAIChatModel;

beforeAll(async () => {
  policy = await toolCallingPolicy();
  server = new PolicyServer(policy, { port: 0, modelId: 'tiny' });
  remote = new OpenAIChatModel({
    baseURL: await server.listen(),
    model: 'tiny',
    apiKey: 'unused',
    maxRetries: 0,
  });
}, 60_000);
afterAll(async () => {
  await server.close();
  await policy.dispose();
});

describe('OpenAIChatModel', () => {
  it('returns the prompt ids, token ids and log-probs of a stepwise server', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'look around' }];
    const r = await remote.chat(messages, { maxTokens: 8, seed: 2 });
    expect(remote.name).toBe('openai:tiny');
    expect(r.promptTokens).toEqual(new PolicyChatModel(policy).promptTokens(messages));
    expect(r.tokenIds!.length).toBeGreaterThan(0);
    expect(r.logprobs).toHaveLength(r.tokenIds!.length);
    const scored = await policy.score(r.promptTokens!, r.tokenIds!);
    for (const [k, lp] of r.logprobs!.entries()) expect(lp).toBeCloseTo(scored[k]!, 3);
    // The same call on the local backend gives the same tokens (same seed, same sampler).
    const local = await new PolicyChatModel(policy).chat(messages, { maxTokens: 8, seed: 2 });
    expect(r.tokenIds).toEqual(local.tokenIds);
    expect(r.text).toBe(local.text);
  });

  it('returns tool calls and sends a tool-calling transcript token-exactly', async () => {
    const r = await remote.chat([{ role: 'user', content: 'compute' }], {
      tools: [PYTHON_TOOL],
      temperature: 0,
    });
    expect(r.finishReason).toBe('tool_calls');
    expect(r.toolCalls).toHaveLength(1);
    expect(r.toolCalls![0]!.name).toBe('python');
    expect(JSON.parse(r.toolCalls![0]!.arguments)).toEqual({ code: 'print(1 + 1)' });

    const next: ChatMessage[] = [
      { role: 'user', content: 'compute' },
      { role: 'assistant', content: '', toolCalls: r.toolCalls },
      { role: 'tool', content: '2', toolCallId: r.toolCalls![0]!.id, name: 'python' },
    ];
    const r2 = await remote.chat(next, { tools: [PYTHON_TOOL], maxTokens: 4 });
    // The server recognises its own reply and puts back the ids it sampled, not a re-encoding of
    // the client's re-serialized tool call: the local template with those ids gives the same prompt.
    const sampled = next.map((m) => (m.role === 'assistant' ? { ...m, tokenIds: r.tokenIds } : m));
    expect(r2.promptTokens).toEqual(
      new PolicyChatModel(policy).promptTokens(sampled, { tools: [PYTHON_TOOL] }),
    );
  });

  it("raises the SDK's errors with the server's status codes", async () => {
    const wrong = new OpenAIChatModel({
      baseURL: server.url,
      model: 'other',
      apiKey: 'unused',
      maxRetries: 0,
    });
    await expect(wrong.chat([{ role: 'user', content: 'hi' }])).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(remote.chat([{ role: 'user', content: 'hi' }], { temperature: 9 })).rejects.toBeInstanceOf(
      OpenAI.BadRequestError,
    );
  });
});
