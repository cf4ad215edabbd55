// The loops on a served policy: a real `stepwise serve` server on 127.0.0.1 (port 0), reached with
// the official `openai` client through OpenAIChatModel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIChatModel } from '../../src/agents/chat/index.ts';
import { agentEnvMaker, rollout, runHousehold } from '../../src/agents/loops/index.ts';
import {
  EncyclopediaQA,
  HouseholdEnv,
  HouseholdGenerator,
  Policy,
  type SearchTask,
} from '../../src/index.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { domainTokenizer, tinyPolicy } from './loops-helpers.ts';

const policies: Policy[] = [];
const servers: PolicyServer[] = [];
let remote: OpenAIChatModel;

async function serve(policy: Policy): Promise<OpenAIChatModel> {
  policies.push(policy);
  const server = new PolicyServer(policy, { port: 0, modelId: 'tiny' });
  servers.push(server);
  return new OpenAIChatModel({
    model: 'tiny',
    baseURL: await server.listen(),
    apiKey: 'local',
    maxRetries: 0,
  });
}

beforeAll(async () => {
  remote = await serve(tinyPolicy(6));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(policies.map((p) => p.dispose()));
});

describe('loops on a served policy', () => {
  it('household: token ids and log-probs come back through the server, token-exact', async () => {
    const tasks = [0, 1].map((s) => new HouseholdGenerator().generate('train', s));
    const ts = await rollout({
      model: remote,
      tasks,
      groupSize: 2,
      loops: { household: { maxSteps: 2, sampling: { maxTokens: 16 } } },
    });
    const tok = domainTokenizer();
    expect(ts.length).toBe(4);
    for (const t of ts) {
      expect(t.steps.length).toBe(2);
      for (const s of t.steps) {
        expect(s.model).toBe('openai:tiny');
        // The server saw the same prompt the local template makes: the stored text decodes from its ids.
        expect(tok.decode(s.promptTokens)).toBe(s.promptText);
        expect(s.responseTokens.length).toBeGreaterThan(0);
        expect(s.responseLogprobs.length).toBe(s.responseTokens.length);
      }
    }
    expect(ts[0]!.steps[0]!.responseTokens).not.toEqual(ts[1]!.steps[0]!.responseTokens);
  });

  it('search: the conversation goes through the OpenAI API', async () => {
    const source = new EncyclopediaQA();
    const task = source.generate('train', 9) as SearchTask;
    const ts = await rollout({
      model: remote,
      tasks: [task],
      groupSize: 2,
      makeEnv: agentEnvMaker({ deps: { source } }),
      loops: { search: { maxTurns: 2, sampling: { maxTokens: 12 } } },
    });
    for (const t of ts) {
      expect(t.steps.length).toBeGreaterThan(0);
      expect(['turn_limit', 'answered', 'won', 'context_limit']).toContain(t.outcome);
      for (const s of t.steps) expect(s.responseTokens.length).toBe(s.responseLogprobs.length);
    }
  });

  it("a prompt longer than the served model's context ends the trajectory as context_limit", async () => {
    const small = await serve(
      Policy.create({
        model: { width: 16, layers: 1, heads: 2, contextLength: 64 },
        tokenizer: domainTokenizer(),
      }),
    );
    const task = new HouseholdGenerator().generate('train', 2);
    const t = await runHousehold(new HouseholdEnv() as never, small, { task, seed: 2 });
    expect(t.outcome).toBe('context_limit');
  });
});
