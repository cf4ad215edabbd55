import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentFlowTrajectory, rolloutAgentFlow } from '../../src/agents/agentflow/index.ts';
import { OpenAIChatModel } from '../../src/agents/chat/openai-chat-model.ts';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { PythonPool } from '../../src/tools/python/pool.ts';
import {
  agentFlowTokenizer,
  codemath,
  envMaker,
  expectPlannerRescored,
  expectTokenExactSteps,
  smallConfig,
  source,
} from './agentflow-helpers.ts';

// AgentFlow with every module on a served policy: a real `stepwise serve` server on 127.0.0.1 (port
// 0), reached through the official `openai` client. The server returns the prompt and completion
// token ids, so the recorded steps are as token-exact as the local backend's.

let pool: PythonPool;
let policy: Policy;
let server: PolicyServer;
let served: OpenAIChatModel;
let trajectories: AgentFlowTrajectory[];
const model = 'tiny-flow';

beforeAll(async () => {
  pool = new PythonPool({ size: 1, announce: false });
  await pool.warm();
  policy = Policy.create({ model: 'tiny', tokenizer: await agentFlowTokenizer(pool), seed: 4 });
  server = new PolicyServer(policy, { port: 0, modelId: model });
  const baseURL = await server.listen();
  served = new OpenAIChatModel({ model, baseURL, apiKey: 'unused', maxRetries: 0 });
  trajectories = await rolloutAgentFlow({
    modules: { planner: served, executor: served, verifier: served, generator: served },
    tasks: [source.generate('valid-seen', 31), codemath.generate('valid-seen', 32, 'sum')],
    groupSize: 2,
    config: smallConfig,
    makeEnv: envMaker(pool),
  });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await policy?.dispose();
  await pool?.close();
});

describe('AgentFlow on a served policy through the openai client', () => {
  it('runs each trajectory to the generator on search and code/math', () => {
    expect(trajectories.map((t) => [t.task.env, t.trajectoryId])).toEqual([
      ['search', '0'],
      ['search', '1'],
      ['codemath', '0'],
      ['codemath', '1'],
    ]);
    for (const t of trajectories) {
      expect(t.steps.map((s) => s.role).slice(0, 2)).toEqual(['analyzer', 'planner']);
      expect(t.steps.at(-1)!.role).toBe('generator');
      expect(t.flow.errors).toEqual([]);
      expect(t.flow.memory.length).toBe(t.flow.turns);
      for (const s of t.steps) expect(s.model).toBe(`openai:${model}`);
    }
  });

  it('records the server’s token ids and log-probs, which the local policy reproduces', async () => {
    const local = new PolicyChatModel(policy);
    // The server applied the same chat template to the same messages.
    expectTokenExactSteps(trajectories, () => local, policy.tokenizer);
    await expectPlannerRescored(trajectories, policy, 3);
  });

  it('batched the concurrent trajectories’ requests on the server', () => {
    const calls = trajectories.reduce((n, t) => n + t.steps.length, 0);
    expect(server.model.batcher.stats.rows).toBe(calls);
    expect(server.model.batcher.stats.batches).toBeLessThan(calls);
  });
});
