/**
 * Recording served rollouts: `x-stepwise-rollout`/`x-stepwise-group` completions as steps in a real
 * store, `POST /v1/rewards` and its refusals (nothing written), and token-exact prompts when the
 * client re-serializes the server's own tool-call replies (the openai client, a real port).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateMessages } from '../../src/agents/chat/template.ts';
import type { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { openSqliteStore, ServedLog, type SqliteStore } from '../../src/store/index.ts';
import { PYTHON_TOOL, toolCallingPolicy } from '../agents/chat-helpers.ts';

let policy: Policy;
let server: PolicyServer;
let client: OpenAI;
let baseURL: string;
let store: SqliteStore;
let dir: string;
const model = 'tiny-test';
type Stepwise = {
  stepwise: { prompt_token_ids: number[]; completion_token_ids: number[]; reencoded_messages: number };
};
const headers = (rollout: string, group?: string) => ({
  'x-stepwise-rollout': rollout,
  ...(group ? { 'x-stepwise-group': group } : {}),
});

beforeAll(async () => {
  policy = await toolCallingPolicy();
  dir = mkdtempSync(join(tmpdir(), 'stepwise-record-'));
  store = openSqliteStore(join(dir, 'served.db'));
  server = new PolicyServer(policy, { port: 0, modelId: model }, new ServedLog(store));
  baseURL = await server.listen();
  client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
}, 60_000);
afterAll(async () => {
  await server.close();
  store.close();
  await policy.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const postReward = (body: unknown) =>
  fetch(`${baseURL}/rewards`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
const count = (table: string) => store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;

describe('recording served rollouts', () => {
  it('records each completion of a rollout as a step, token-exact, then its reward', async () => {
    const messages = [{ role: 'user' as const, content: 'compute' }];
    const first = await client.chat.completions.create(
      { model, messages, tools: [PYTHON_TOOL], temperature: 0, max_tokens: 40 },
      { headers: headers('r1', 'g1') },
    );
    const reply = first.choices[0]!.message;
    expect(reply.tool_calls).toHaveLength(1);
    const ids1 = (first.choices[0] as unknown as Stepwise).stepwise;

    // The client sends the reply back re-serialized: other spacing and key order in the arguments,
    // null content as '', a new call id. The recorded ids must come back, not a re-encoding.
    const call = reply.tool_calls![0]! as { id: string; function: { name: string; arguments: string } };
    const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
    const reserialized = JSON.stringify({ ...args, extra: undefined }, null, 2);
    const back = [
      ...messages,
      {
        role: 'assistant' as const,
        content: '',
        tool_calls: [
          {
            id: 'other-id',
            type: 'function' as const,
            function: { name: 'python', arguments: reserialized },
          },
        ],
      },
      { role: 'tool' as const, tool_call_id: 'other-id', content: '2' },
    ];
    const second = await client.chat.completions.create(
      { model, messages: back, tools: [PYTHON_TOOL], temperature: 0, max_tokens: 8 },
      { headers: headers('r1', 'g1') },
    );
    const ids2 = (second.choices[0] as unknown as Stepwise).stepwise;
    expect(ids2.reencoded_messages).toBe(0);
    const tok = policy.tokenizer;
    const expected = [
      ...ids1.prompt_token_ids,
      ...ids1.completion_token_ids,
      ...tok.applyChatTemplate([{ role: 'tool', content: '2' }], { addGenerationPrompt: true }),
    ];
    expect(ids2.prompt_token_ids).toEqual(expected);
    // A re-encoding would differ: the template renders the call with other spacing.
    const reencoded = tok.applyChatTemplate(
      templateMessages(
        [
          ...messages,
          {
            role: 'assistant',
            content: '',
            toolCalls: [{ id: 'x', name: 'python', arguments: reserialized }],
          },
          { role: 'tool', content: '2' },
        ],
        [PYTHON_TOOL],
      ),
      { addGenerationPrompt: true },
    );
    expect(reencoded).not.toEqual(expected);

    // An assistant message this server never wrote is re-encoded, and counted.
    const foreign = await client.chat.completions.create(
      {
        model,
        messages: [...messages, { role: 'assistant', content: 'I wrote this myself' }, ...messages],
        max_tokens: 4,
      },
      { headers: headers('r2', 'g1') },
    );
    const ids3 = (foreign.choices[0] as unknown as Stepwise).stepwise;
    expect(ids3.reencoded_messages).toBe(1);
    expect(ids3.prompt_token_ids).toEqual(
      tok.applyChatTemplate(
        [...messages, { role: 'assistant', content: 'I wrote this myself' }, ...messages],
        { addGenerationPrompt: true },
      ),
    );

    const ok = await postReward({ rollout: 'r1', reward: 1, step_rewards: [0, 1] });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ object: 'reward', rollout: 'r1', reward: 1, steps: 2 });

    const log = new ServedLog(store);
    const [r1] = log.rewarded();
    expect(r1!.rollout).toBe('r1');
    expect(r1!.group).toBe('g1');
    expect(r1!.won).toBe(true);
    expect(r1!.stepRewards).toEqual([0, 1]);
    expect(r1!.steps.map((s) => s.stepIndex)).toEqual([0, 1]);
    expect(r1!.steps[0]!.promptTokens).toEqual(ids1.prompt_token_ids);
    expect(r1!.steps[0]!.responseTokens).toEqual(ids1.completion_token_ids);
    expect(r1!.steps[1]!.promptTokens).toEqual(ids2.prompt_token_ids);
    expect(r1!.steps[0]!.toolCalls).toEqual([
      { id: call.id, name: 'python', arguments: call.function.arguments },
    ]);
    expect(r1!.steps[1]!.anchor).toBe('2');
    // Behaviour log-probs as the policy scores the recorded ids (float32 in the store).
    const scored = await policy.score(r1!.steps[0]!.promptTokens, r1!.steps[0]!.responseTokens);
    for (const [k, lp] of r1!.steps[0]!.responseLogprobs.entries()) expect(lp).toBeCloseTo(scored[k]!, 3);
    expect(log.rollout('r2')).toMatchObject({ group: 'g1', steps: 1, reward: undefined });
  }, 60_000);

  it('refuses unknown rollouts, bad bodies and second rewards with OpenAI errors, writing nothing', async () => {
    const before = [count('served_rollouts'), count('served_steps')];
    const rewardsBefore = store.db
      .prepare('SELECT count(*) FROM served_rollouts WHERE reward IS NOT NULL')
      .pluck()
      .get();
    const cases: [unknown, number, string | null][] = [
      [{ rollout: 'nope', reward: 1 }, 404, 'rollout_not_found'],
      [{ rollout: 'r2', reward: 'high' }, 400, 'invalid_value'],
      [{ rollout: 'r2' }, 400, 'invalid_value'],
      [{ rollout: 'r2', reward: 1, bonus: 2 }, 400, 'invalid_value'],
      [{ rollout: 'r2', reward: 1, step_rewards: [1, 2] }, 400, 'invalid_value'],
      [{ rollout: 'r1', reward: 0 }, 409, 'reward_exists'],
      [[1, 2], 400, 'invalid_value'],
    ];
    for (const [body, status, code] of cases) {
      const res = await postReward(body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      const err = ((await res.json()) as { error: { code: string; message: string; type: string } }).error;
      expect(err.code).toBe(code);
      expect(err.type).toBe('invalid_request_error');
    }
    const bad = await fetch(`${baseURL}/rewards`, { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    // A finished rollout takes no more completions; a rollout stays in its group.
    const finished = client.chat.completions.create(
      { model, messages: [{ role: 'user', content: 'compute' }], max_tokens: 2 },
      { headers: headers('r1', 'g1') },
    );
    await expect(finished).rejects.toMatchObject({ status: 409, code: 'rollout_finished' });
    const moved = client.chat.completions.create(
      { model, messages: [{ role: 'user', content: 'compute' }], max_tokens: 2 },
      { headers: headers('r2', 'g2') },
    );
    await expect(moved).rejects.toMatchObject({ status: 400, code: 'group_mismatch' });
    const many = client.chat.completions.create(
      { model, messages: [{ role: 'user', content: 'compute' }], max_tokens: 2, n: 2 },
      { headers: headers('r3') },
    );
    await expect(many).rejects.toMatchObject({ status: 400, param: 'n' });
    expect([count('served_rollouts'), count('served_steps')]).toEqual(before);
    expect(
      store.db.prepare('SELECT count(*) FROM served_rollouts WHERE reward IS NOT NULL').pluck().get(),
    ).toBe(rewardsBefore);
  }, 60_000);

  it('takes no rewards when it records nothing', async () => {
    const plain = new PolicyServer(policy, { port: 0, modelId: model });
    const url = await plain.listen();
    try {
      const res = await fetch(`${url}/rewards`, { method: 'POST', body: '{"rollout": "a", "reward": 1}' });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('recording_off');
    } finally {
      await plain.close();
    }
  });
});
