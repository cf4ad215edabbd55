import { afterAll, describe, expect, it } from 'vitest';
import { ContextOverflowError, PolicyChatModel } from '../../src/agents/chat/index.ts';
import { templateMessages, toolCallsFromText } from '../../src/agents/chat/template.ts';
import type { ChatMessage } from '../../src/agents/types.ts';
import { tinyPolicy } from './chat-helpers.ts';

const policy = tinyPolicy();
afterAll(() => policy.dispose());

const convo = (q: string): ChatMessage[] => [
  { role: 'system', content: 'You are a household agent.' },
  { role: 'user', content: q },
];

describe('PolicyChatModel', () => {
  it('returns the exact prompt ids, token ids and log-probs that the policy scores the same', async () => {
    const model = new PolicyChatModel(policy, { maxTokens: 12 });
    const r = await model.chat(convo('go to fridge 1'), { seed: 3 });
    expect(r.promptTokens).toEqual(
      policy.tokenizer.applyChatTemplate(convo('go to fridge 1'), { addGenerationPrompt: true }),
    );
    expect(r.tokenIds.length).toBeGreaterThan(0);
    expect(r.tokenIds.length).toBeLessThanOrEqual(12);
    expect(r.logprobs).toHaveLength(r.tokenIds.length);
    const scored = await policy.score(r.promptTokens, r.tokenIds);
    for (let i = 0; i < scored.length; i++) expect(r.logprobs[i]).toBeCloseTo(scored[i]!, 3);
    const end = policy.tokenizer.endId;
    const plain = r.tokenIds.filter((t) => t !== end);
    expect(r.text).toBe(policy.tokenizer.decode(plain));
    expect(r.finishReason).toBe(r.tokenIds.at(-1) === end ? 'stop' : 'length');
  });

  it('batches concurrent calls into one decode batch, each with its own options', async () => {
    const model = new PolicyChatModel(policy, { batchWaitMs: 20, shareBatches: false });
    const before = { ...model.batcher.stats };
    const limits = [3, 5, 8, 13];
    const results = await Promise.all(
      limits.map((n, i) => model.chat(convo(`take apple ${i}`), { maxTokens: n, temperature: 1, seed: 7 })),
    );
    expect(model.batcher.stats.batches - before.batches).toBe(1);
    expect(model.batcher.stats.rows - before.rows).toBe(4);
    results.forEach((r, i) => {
      expect(r.tokenIds.length).toBeLessThanOrEqual(limits[i]!);
      if (r.finishReason === 'length') expect(r.tokenIds).toHaveLength(limits[i]!);
    });
    // A row's tokens do not depend on its batch: the same call alone gives the same greedy reply.
    const alone = await model.chat(convo('take apple 2'), { maxTokens: 8, temperature: 0 });
    const together = await Promise.all([
      model.chat(convo('a much longer question about the countertop and the fridge'), {
        maxTokens: 4,
        temperature: 0,
      }),
      model.chat(convo('take apple 2'), { maxTokens: 8, temperature: 0 }),
    ]);
    expect(together[1]!.tokenIds).toEqual(alone.tokenIds);
  });

  it('per-row options override the batch options only where set', async () => {
    const prompts = [convo('a'), convo('b')];
    const greedy = await policy.generate(prompts, { temperature: 0, maxNewTokens: 6, stopTokens: [] });
    const mixed = await policy.generate(prompts, {
      temperature: 0,
      maxNewTokens: 6,
      stopTokens: [],
      rows: [{}, { maxNewTokens: 2 }],
    });
    expect(mixed[0]!.tokens).toEqual(greedy[0]!.tokens);
    expect(mixed[1]!.tokens).toEqual(greedy[1]!.tokens.slice(0, 2));
    await expect(policy.generate(prompts, { rows: [{}] })).rejects.toThrow(/1 row options for 2 prompts/);
  });

  it('shares decode batches between models on one policy unless told not to', async () => {
    const planner = new PolicyChatModel(policy, { name: 'planner', maxTokens: 3 });
    const verifier = new PolicyChatModel(policy, { name: 'verifier', maxTokens: 3 });
    expect(planner.batcher).toBe(verifier.batcher);
    const before = planner.batcher.stats.batches;
    await Promise.all([planner.chat(convo('a')), verifier.chat(convo('b')), planner.chat(convo('c'))]);
    expect(planner.batcher.stats.batches - before).toBe(1);
    const own = new PolicyChatModel(policy, { shareBatches: false });
    expect(own.batcher).not.toBe(planner.batcher);
  });

  it('drops a call aborted while it waits for its batch; the others still run', async () => {
    const model = new PolicyChatModel(policy, { maxTokens: 3, batchWaitMs: 100, shareBatches: false });
    const controller = new AbortController();
    const aborted = model.chat(convo('a'), { signal: controller.signal });
    const kept = model.chat(convo('b'));
    controller.abort(new Error('no longer needed'));
    await expect(aborted).rejects.toThrow('no longer needed');
    expect((await kept).tokenIds.length).toBeGreaterThan(0);
    expect(model.batcher.stats).toEqual({ batches: 1, rows: 1 });
  });

  it('rejects a prompt that fills the context with ContextOverflowError, without failing the batch', async () => {
    const model = new PolicyChatModel(policy, { maxTokens: 4, batchWaitMs: 20, shareBatches: false });
    const long = 'take apple 1 from countertop 1. '.repeat(200);
    const [bad, good] = await Promise.allSettled([model.chat(convo(long)), model.chat(convo('look'))]);
    expect(bad.status).toBe('rejected');
    expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(ContextOverflowError);
    expect(good.status).toBe('fulfilled');
  });

  it('renders tools into the system prompt and reads tool calls back from text', () => {
    const tools = [
      {
        type: 'function' as const,
        function: { name: 'python', description: 'run code', parameters: { type: 'object' } },
      },
    ];
    const msgs = templateMessages(
      [
        { role: 'user', content: 'compute' },
        {
          role: 'assistant',
          content: '',
          toolCalls: [{ id: 'c1', name: 'python', arguments: '{"code":"1"}' }],
        },
        { role: 'tool', content: '1', toolCallId: 'c1', name: 'python' },
      ],
      tools,
    );
    expect(msgs[0]!.role).toBe('system');
    expect(msgs[0]!.content).toContain('"name":"python"');
    expect(msgs[2]!.content).toBe('<tool_call>{"name":"python","arguments":{"code":"1"}}</tool_call>');
    expect(toolCallsFromText(`ok ${msgs[2]!.content}`)).toEqual([
      { id: 'call_0', name: 'python', arguments: '{"code":"1"}' },
    ]);
    expect(toolCallsFromText('<tool_call>{not json</tool_call>')).toEqual([]);
  });
});
