import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentFlowTrajectory, rolloutAgentFlow } from '../../src/agents/agentflow/index.ts';
import { OpenAIChatModel } from '../../src/agents/chat/openai-chat-model.ts';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { expectPlannerRescored, expectTokenExactSteps } from './agentflow-helpers.ts';
import {
  household,
  householdEnvMaker,
  householdFlowTokenizer,
  smallHouseholdConfig,
} from './agentflow-household-helpers.ts';

// Household AgentFlow with every module on a served policy: a real `stepwise serve` server on
// 127.0.0.1 (port 0), reached through the official `openai` client. The server returns the prompt
// and completion token ids, so the recorded steps are as token-exact as the local backend's.

let policy: Policy;
let server: PolicyServer;
let trajectories: AgentFlowTrajectory[];
const model = 'tiny-household-flow';

beforeAll(async () => {
  policy = Policy.create({ model: 'tiny', tokenizer: await householdFlowTokenizer(), seed: 5 });
  server = new PolicyServer(policy, { port: 0, modelId: model });
  const baseURL = await server.listen();
  const served = new OpenAIChatModel({ model, baseURL, apiKey: 'unused', maxRetries: 0 });
  trajectories = await rolloutAgentFlow({
    modules: { planner: served, executor: served, verifier: served, generator: served },
    tasks: [household.generate('valid-seen', 31), household.generate('valid-seen', 32)],
    groupSize: 2,
    config: smallHouseholdConfig,
    makeEnv: householdEnvMaker,
  });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await policy?.dispose();
});

describe('household AgentFlow on a served policy through the openai client', () => {
  it('runs each trajectory to the generator', () => {
    expect(trajectories.map((t) => [t.task.env, t.trajectoryId])).toEqual([
      ['household', '0'],
      ['household', '1'],
      ['household', '0'],
      ['household', '1'],
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
    const planner = await expectPlannerRescored(trajectories, policy, 3);
    expect(planner.length).toBe(3);
  });

  it('batched the concurrent trajectories’ requests on the server', () => {
    const calls = trajectories.reduce((n, t) => n + t.steps.length, 0);
    expect(server.model.batcher.stats.rows).toBe(calls);
    expect(server.model.batcher.stats.batches).toBeLessThan(calls);
  });
});
