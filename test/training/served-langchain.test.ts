/**
 * The LangChain scenario, short: scenarios/langchain-agent.ts's `createAgent` agent (ChatOpenAI on
 * the recording endpoint, the search env's web_search as a LangChain tool) trained for two GiGPO
 * iterations on a tiny policy. Checks that the stored steps are the ids and log-probs the policy
 * sampled for that agent (read from the raw responses LangChain received), and that the update
 * changed what the endpoint serves the agent's next rollouts. (The tiny policy, SFT'd in the env's
 * `<search>` format, writes no well-formed tool call, so these trajectories are one completion
 * each; the same agent calling its tool through the endpoint, with the tool call's ids spliced
 * into the next prompt, is served-langchain-tools.test.ts, multi-turn rollouts in served.test.ts.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { langchainAgent, config as scenario } from '../../scenarios/langchain-agent.ts';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import type { ServedAgent } from '../../src/training/families/served.ts';
import { type TrainResult, train } from '../../src/training/trainer.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-langchain-'));
const db = join(dir, 'langchain.db');

const config = {
  ...scenario,
  envOptions: { ...scenario.envOptions, encyclopedia: { people: 60 } },
  loop: { maxTokens: 16, temperature: 1 },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
  sft: { tasks: 8, validTasks: 2, maxSteps: 4, batchSize: 8, learningRate: 3e-3, evalEvery: 10 },
  groupSize: 2,
  tasksPerIteration: 2,
  iterations: 2,
  ppo: { miniBatchSize: 8, learningRate: 1e-3 },
  eval: { every: 0, tasks: 2 },
  db,
} satisfies TrainConfigInput;

interface Sampled {
  prompt: number[];
  completion: number[];
  logprobs: number[] | undefined;
}
/** Every completion LangChain received, by rollout (from the raw response bodies). */
const sampled = new Map<string, Sampled[]>();
const probes = new Map<number, number[]>();
let iteration = -1;

/** The fetch ChatOpenAI uses: passes everything through and keeps the server's token ids. */
const watching: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const rollout = new Headers(init?.headers).get('x-stepwise-rollout');
  if (rollout && res.ok) {
    const body = (await res.clone().json()) as {
      choices: { stepwise: { prompt_token_ids: number[]; completion_token_ids: number[] } }[];
    };
    const s = body.choices[0]!.stepwise;
    sampled.set(rollout, [
      ...(sampled.get(rollout) ?? []),
      { prompt: s.prompt_token_ids, completion: s.completion_token_ids, logprobs: undefined },
    ]);
  }
  return res;
};

const inner = langchainAgent({ fetch: watching, recursionLimit: 5 });
/** The scenario's agent, plus one greedy probe of the endpoint per iteration (outside any rollout). */
const agent: ServedAgent = async (run) => {
  if (iteration >= 0 && !probes.has(iteration)) {
    probes.set(iteration, []);
    const res = await fetch(`${run.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: run.model,
        messages: [{ role: 'user', content: run.prompt }],
        temperature: 0,
        max_tokens: 4,
        logprobs: true,
      }),
    });
    const body = (await res.json()) as { choices: { logprobs: { content: { logprob: number }[] } }[] };
    probes.set(
      iteration,
      body.choices[0]!.logprobs.content.map((c) => c.logprob),
    );
  }
  return inner(run);
};

let result: TrainResult;

beforeAll(async () => {
  result = await train(config, {
    log: () => {},
    servedAgent: agent,
    onProgress: (e) => {
      if (e.type === 'start' && e.phase === 'rollout') iteration = e.iteration!;
      if (e.type === 'start' && e.phase === 'update') iteration = -1;
    },
  });
}, 600_000);

describe('scenarios/langchain-agent.ts, short', () => {
  it('records the ids LangChain was served, token for token, and trains on them', () => {
    expect(result.iterationsRun).toBe(2);
    const store = openStore(db, { readonly: true });
    try {
      expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
      let steps = 0;
      for (const it of [0, 1]) {
        for (const g of store.groups(config.runId, it)) {
          expect(g.trajectories).toHaveLength(config.groupSize);
          for (const t of g.trajectories) {
            const stored = store.trajectory({
              runId: config.runId,
              iteration: it,
              groupId: g.groupId,
              trajectoryId: t.trajectoryId,
            });
            const served = sampled.get(stored[0]!.extras.rollout as string)!;
            expect(stored.map((s) => [...s.responseTokens])).toEqual(served.map((s) => s.completion));
            expect(stored.map((s) => [...s.promptTokens])).toEqual(served.map((s) => s.prompt));
            for (const s of stored) {
              expect(s.extras.reencoded).toBe(0);
              expect(s.responseLogprobs.length).toBe(s.responseTokens.length);
              expect(s.advantages[0]!.estimator).toBe('gigpo');
              steps++;
            }
          }
        }
      }
      expect(steps).toBeGreaterThanOrEqual(2 * config.tasksPerIteration * config.groupSize);
    } finally {
      store.close();
    }
  });

  it('serves the updated policy to the next rollouts', () => {
    const [a, b] = [probes.get(0)!, probes.get(1)!];
    expect(a.length).toBeGreaterThan(0);
    const gap = Math.max(...a.map((v, k) => Math.abs(v - b[k]!)));
    expect(gap).toBeGreaterThan(1e-3);
  });
});
