// The server against the official openai client, on a real localhost port.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { PYTHON_TOOL, TOOL_REPLY, tinyPolicy, toolCallingPolicy } from '../agents/chat-helpers.ts';

let policy: Policy;
let server: PolicyServer;
let client: OpenAI;
let baseURL: string;
const model = 'tiny-test';

beforeAll(async () => {
  policy = await toolCallingPolicy();
  server = new PolicyServer(policy, { port: 0, modelId: model, batchWaitMs: 20 });
  baseURL = await server.listen();
  client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
}, 60_000);
afterAll(async () => {
  await server.close();
  await policy.dispose();
});

const user = (content: string) => [{ role: 'user' as const, content }];
type WithStepwise = { stepwise: { prompt_token_ids: number[]; completion_token_ids: number[] } };

describe('stepwise serve', () => {
  it('lists its one model', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual([model]);
    expect((await client.models.retrieve(model)).id).toBe(model);
  });

  it('answers a chat completion with token ids and log-probs the policy agrees with', async () => {
    const r = await client.chat.completions.create({
      model,
      messages: user('look around'),
      max_tokens: 10,
      seed: 5,
      logprobs: true,
      top_logprobs: 3,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe(model);
    const choice = r.choices[0]!;
    const ids = (choice as unknown as WithStepwise).stepwise;
    expect(ids.prompt_token_ids).toEqual(
      policy.tokenizer.applyChatTemplate(user('look around'), { addGenerationPrompt: true }),
    );
    expect(ids.completion_token_ids.length).toBeLessThanOrEqual(10);
    expect(r.usage).toEqual({
      prompt_tokens: ids.prompt_token_ids.length,
      completion_tokens: ids.completion_token_ids.length,
      total_tokens: ids.prompt_token_ids.length + ids.completion_token_ids.length,
    });
    const plain = ids.completion_token_ids.filter((t) => t !== policy.tokenizer.endId);
    expect(choice.message.content).toBe(policy.tokenizer.decode(plain));
    expect(['stop', 'length']).toContain(choice.finish_reason);
    const lps = choice.logprobs!.content!;
    expect(lps).toHaveLength(ids.completion_token_ids.length);
    const scored = await policy.score(ids.prompt_token_ids, ids.completion_token_ids);
    lps.forEach((e, k) => {
      expect(e.logprob).toBeCloseTo(scored[k]!, 3);
      expect(e.top_logprobs).toHaveLength(3);
      expect(e.top_logprobs[0]!.logprob).toBeGreaterThanOrEqual(e.top_logprobs[1]!.logprob);
      expect(e.logprob).toBeLessThanOrEqual(e.top_logprobs[0]!.logprob + 1e-6);
    });
  });

  it('streams the same text, cut at a stop string, with the token ids on the last chunk', async () => {
    const ask = { model, messages: user('go to the fridge'), max_tokens: 24, temperature: 0 };
    const whole = await client.chat.completions.create(ask);
    const text = whole.choices[0]!.message.content!;
    expect(text.length).toBeGreaterThan(4);
    const stop = text.slice(3, 5);
    const cut = text.slice(0, text.indexOf(stop));
    const stopped = await client.chat.completions.create({ ...ask, stop: [stop] });
    expect(stopped.choices[0]!.message.content).toBe(cut);
    expect(stopped.choices[0]!.finish_reason).toBe('stop');

    const cases: [string[], string][] = [
      [[], text],
      [[stop], cut],
    ];
    for (const [stops, expected] of cases) {
      const stream = await client.chat.completions.create({
        ...ask,
        stop: stops,
        stream: true,
        stream_options: { include_usage: true },
      });
      let streamed = '';
      let last: unknown;
      let usage: unknown;
      for await (const chunk of stream) {
        expect(chunk.object).toBe('chat.completion.chunk');
        if (chunk.usage) usage = chunk.usage;
        const c = chunk.choices[0];
        if (!c) continue;
        streamed += c.delta.content ?? '';
        if (c.finish_reason) last = c;
      }
      expect(streamed).toBe(expected);
      expect((last as WithStepwise).stepwise.prompt_token_ids.length).toBeGreaterThan(0);
      expect(usage).toBeDefined();
    }
  });

  it('gives n choices, identical when greedy and seeded per choice otherwise', async () => {
    const greedy = await client.chat.completions.create({
      model,
      messages: user('take apple'),
      n: 3,
      max_tokens: 6,
      temperature: 0,
    });
    expect(greedy.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(greedy.choices.map((c) => c.message.content)).size).toBe(1);
    const a = await client.chat.completions.create({
      model,
      messages: user('x'),
      n: 2,
      max_tokens: 8,
      seed: 9,
    });
    const b = await client.chat.completions.create({
      model,
      messages: user('x'),
      n: 2,
      max_tokens: 8,
      seed: 9,
    });
    expect(a.choices.map((c) => c.message.content)).toEqual(b.choices.map((c) => c.message.content));
  });

  it('answers with tool_calls when the model writes a <tool_call>, streamed or not', async () => {
    const ask = { model, messages: user('compute'), tools: [PYTHON_TOOL], temperature: 0, max_tokens: 60 };
    const r = await client.chat.completions.create(ask);
    const c = r.choices[0]!;
    expect(c.finish_reason).toBe('tool_calls');
    const call = c.message.tool_calls![0]!;
    expect(call.type).toBe('function');
    if (call.type !== 'function') throw new Error('expected a function call');
    expect(call.function.name).toBe('python');
    expect(JSON.parse(call.function.arguments)).toEqual({ code: 'print(1 + 1)' });
    const ids = (c as unknown as WithStepwise).stepwise.completion_token_ids;
    expect(policy.tokenizer.decode(ids.filter((t) => t !== policy.tokenizer.endId))).toBe(TOOL_REPLY);

    const stream = await client.chat.completions.create({ ...ask, stream: true, logprobs: true });
    const calls: unknown[] = [];
    let finish: string | null = null;
    let logprobs = 0;
    for await (const chunk of stream) {
      const d = chunk.choices[0];
      if (d?.delta.tool_calls) calls.push(...d.delta.tool_calls);
      if (d?.finish_reason) finish = d.finish_reason;
      logprobs += d?.logprobs?.content?.length ?? 0;
    }
    expect(finish).toBe('tool_calls');
    expect(calls).toMatchObject([{ index: 0, function: { name: 'python' } }]);
    expect(logprobs).toBe(ids.length);

    const none = await client.chat.completions.create({ ...ask, tool_choice: 'none' });
    expect(none.choices[0]!.message.tool_calls).toBeUndefined();

    // A named tool_choice starts the reply with the call's opening: its tokens join the prompt ids.
    const named = await client.chat.completions.create({
      ...ask,
      tool_choice: { type: 'function', function: { name: 'python' } },
    });
    expect(named.choices[0]!.finish_reason).toBe('tool_calls');
    const forced = (named.choices[0] as unknown as WithStepwise).stepwise.prompt_token_ids;
    const plain = (c as unknown as WithStepwise).stepwise.prompt_token_ids;
    expect(forced.slice(0, plain.length)).toEqual(plain);
    expect(policy.tokenizer.decode(forced.slice(plain.length))).toBe(
      '<tool_call>{"name": "python", "arguments": ',
    );
    await expect(
      client.chat.completions.create({
        ...ask,
        tool_choice: { type: 'function', function: { name: 'nope' } },
      }),
    ).rejects.toMatchObject({ status: 400, param: 'tool_choice' });
  });

  it('scores text with /v1/completions echo + logprobs', async () => {
    const prompt = 'take apple 1 from countertop 1';
    const r = await client.completions.create({ model, prompt, echo: true, logprobs: 0, max_tokens: 0 });
    const c = r.choices[0]!;
    expect(c.text).toBe(prompt);
    const ids = policy.tokenizer.encode(prompt);
    expect(c.logprobs!.token_logprobs![0]).toBeNull();
    const scored = await policy.score(ids.slice(0, 1), ids.slice(1));
    for (const [k, lp] of c.logprobs!.token_logprobs!.slice(1).entries())
      expect(lp).toBeCloseTo(scored[k]!, 3);
    expect(c.logprobs!.tokens!.join('')).toBe(prompt);

    const g = await client.completions.create({ model, prompt, max_tokens: 5, logprobs: 2, echo: true });
    const ids2 = (g.choices[0] as unknown as WithStepwise).stepwise;
    expect(ids2.prompt_token_ids).toEqual(ids);
    expect(g.choices[0]!.logprobs!.tokens).toHaveLength(ids.length + ids2.completion_token_ids.length);
    expect(g.choices[0]!.text.startsWith(prompt)).toBe(true);
  });

  it('streams /v1/completions and streamed chat log-probs with their top entries', async () => {
    const ask = { model, prompt: 'go to countertop 1', max_tokens: 8, seed: 4 };
    const whole = await client.completions.create(ask);
    const stream = await client.completions.create({ ...ask, stream: true });
    let text = '';
    let last: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]!.text;
      if (chunk.choices[0]!.finish_reason) last = chunk.choices[0];
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect((last as WithStepwise).stepwise).toEqual((whole.choices[0] as unknown as WithStepwise).stepwise);

    const chat = await client.chat.completions.create({
      model,
      messages: user('look'),
      max_tokens: 5,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    const entries = [];
    for await (const chunk of chat) entries.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(entries.length).toBeGreaterThan(0);
    for (const e of entries) {
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.logprob).toBeLessThanOrEqual(e.top_logprobs[0]!.logprob + 1e-6);
    }
  });

  it('batches concurrent requests into shared decodes', async () => {
    // Counts, not timing: the first request's prefill is held until eight more requests are queued
    // behind it, however long they take to arrive; the nine then decode in the same steps. An
    // untrained policy, so no reply ends at its first token.
    const untrained = tinyPolicy(3);
    const patient = new PolicyServer(untrained, { port: 0, modelId: model });
    const c = new OpenAI({ baseURL: await patient.listen(), apiKey: 'unused', maxRetries: 0 });
    const batcher = patient.model.batcher;
    const runner = untrained.runner;
    const extend = runner.extend.bind(runner);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // The spies call the real methods: the first prefill just starts once released.
    const prefills = vi.spyOn(runner, 'extend').mockImplementationOnce(async (...args) => {
      await held;
      return extend(...args);
    });
    const decodes = vi.spyOn(runner, 'decodeSlots');
    const submitted = vi.spyOn(batcher, 'submit');
    const ask = (i: number) =>
      c.chat.completions.create({ model, messages: user(`q${i}`), max_tokens: 6, seed: i });
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise((r) => setTimeout(r, 10));
    };
    try {
      const first = ask(0);
      await until(() => prefills.mock.calls.length === 1);
      const rest = Array.from({ length: 8 }, (_, i) => ask(i + 1));
      await until(() => submitted.mock.calls.length === 9);
      release();
      const rs = await Promise.all([first, ...rest]);
      expect(rs).toHaveLength(9);
      for (const r of rs) expect(r.choices[0]!.message.content).toEqual(expect.any(String));
      // One busy period served all nine, and its decode steps ran them as one batch.
      expect(batcher.stats).toEqual({ batches: 1, rows: 9 });
      expect(Math.max(...decodes.mock.calls.map(([, tokens]) => tokens.length))).toBe(9);
    } finally {
      release();
      prefills.mockRestore();
      decodes.mockRestore();
      submitted.mockRestore();
      await patient.close();
    }
  });

  it('lets a request join a running decode between steps, with the reply it gets alone', async () => {
    // An untrained policy decoding greedily: a long reply that keeps the decode running.
    const untrained = tinyPolicy(2);
    const s = new PolicyServer(untrained, { port: 0, modelId: model });
    const c = new OpenAI({ baseURL: await s.listen(), apiKey: 'unused', maxRetries: 0 });
    const ask = () =>
      c.chat.completions.create({ model, messages: user('take apple 1'), max_tokens: 12, seed: 4 });
    try {
      const alone = await ask();
      const busy0 = s.model.batcher.stats.batches;
      const stream = await c.chat.completions.create({
        model,
        messages: user('go to fridge 1'),
        max_tokens: 300,
        temperature: 0,
        stream: true,
      });
      let joined: ReturnType<typeof ask> | undefined;
      let chunksAfterJoin = 0;
      for await (const chunk of stream) {
        if (!chunk.choices[0]?.delta.content) continue;
        if (joined) chunksAfterJoin++;
        else joined = ask();
      }
      const together = await joined!;
      const ids = (r: typeof alone) =>
        (r.choices[0] as unknown as WithStepwise).stepwise.completion_token_ids;
      expect(ids(together)).toEqual(ids(alone));
      // One busy period: the second request ran inside the first one's decode, which went on.
      expect(s.model.batcher.stats.batches - busy0).toBe(1);
      expect(chunksAfterJoin).toBeGreaterThan(ids(together).length);
    } finally {
      await s.close();
      await untrained.dispose();
    }
  });

  it('answers errors in OpenAI shape with the right status codes', async () => {
    const bad = await fetch(`${baseURL}/chat/completions`, { method: 'POST', body: '{"model": ' });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { message: string; type: string } };
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toMatch(/JSON/);

    const unknown = client.chat.completions.create({ model: 'gpt-nope', messages: user('hi') });
    await expect(unknown).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(unknown).rejects.toMatchObject({ status: 404, code: 'model_not_found' });

    const long = 'take apple 1 from countertop 1. '.repeat(200);
    await expect(client.chat.completions.create({ model, messages: user(long) })).rejects.toMatchObject({
      status: 400,
      code: 'context_length_exceeded',
    });
    await expect(
      client.chat.completions.create({ model, messages: user('hi'), max_tokens: 100_000 }),
    ).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded' });

    await expect(
      client.chat.completions.create({ model, messages: user('hi'), temperature: 7 }),
    ).rejects.toMatchObject({ status: 400, param: 'temperature' });
    await expect(
      client.chat.completions.create({ model, messages: user('hi'), top_logprobs: 2 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(client.chat.completions.create({ model, messages: [] })).rejects.toMatchObject({
      status: 400,
      param: 'messages',
    });

    const route = await fetch(`${baseURL}/nothing`);
    expect(route.status).toBe(404);
    const method = await fetch(`${baseURL}/chat/completions`);
    expect(method.status).toBe(405);
    // The server is still healthy after all that.
    const ok = await client.chat.completions.create({ model, messages: user('hi'), max_tokens: 2 });
    expect(ok.choices).toHaveLength(1);
  });
});
