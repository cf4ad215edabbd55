import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentFlowTrajectory,
  goldModels,
  goldTrace,
  rolloutAgentFlow,
  runAgentFlowEpisode,
} from '../../src/agents/agentflow/index.ts';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { createExpert } from '../../src/envs/index.ts';
import { Policy } from '../../src/policy/policy.ts';
import type { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { openStore } from '../../src/store/index.ts';
import { PythonPool } from '../../src/tools/python/pool.ts';
import { recordIteration } from '../../src/training/record.ts';
import {
  agentFlowTokenizer,
  codemath,
  envMaker,
  expectPlannerRescored,
  expectTokenExactSteps,
  smallConfig,
  source,
} from './agentflow-helpers.ts';

// AgentFlow on an untrained tiny local policy. Its replies are noise, so the loop must cope with
// every malformed module reply, and the steps it records must be token-exact: the prompt ids are
// the chat template of the recorded messages, and the recorded log-probs are what the policy
// itself gives the recorded response tokens.

let pool: PythonPool;
let tokenizer: Tokenizer;
let dir: string;
const policies: Policy[] = [];
const makeEnv = () => envMaker(pool);
const config = smallConfig;

beforeAll(async () => {
  pool = new PythonPool({ size: 1, announce: false });
  await pool.warm();
  tokenizer = await agentFlowTokenizer(pool);
  dir = mkdtempSync(path.join(tmpdir(), 'agentflow-policy-'));
});

afterAll(async () => {
  await Promise.all(policies.map((p) => p.dispose()));
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

function tinyPolicy(seed: number): Policy {
  const p = Policy.create({ model: 'tiny', tokenizer, seed });
  policies.push(p);
  return p;
}

describe('AgentFlow on an untrained local policy', () => {
  let trajectories: AgentFlowTrajectory[];
  let trained: PolicyChatModel;
  let frozen: PolicyChatModel;

  beforeAll(async () => {
    // The planner on the policy being trained; the other modules on a frozen copy of another one.
    trained = new PolicyChatModel(tinyPolicy(1), { name: 'train' });
    frozen = new PolicyChatModel(tinyPolicy(2), { name: 'frozen' });
    trajectories = await rolloutAgentFlow({
      modules: { planner: trained, executor: frozen, verifier: frozen, generator: frozen, analyzer: frozen },
      tasks: [source.generate('train', 11), codemath.generate('train', 12, 'product')],
      groupSize: 2,
      config,
      makeEnv: makeEnv(),
    });
  });

  it('runs every trajectory to the generator on search and code/math, malformed replies recorded', () => {
    expect(trajectories.map((t) => [t.task.env, t.trajectoryId])).toEqual([
      ['search', '0'],
      ['search', '1'],
      ['codemath', '0'],
      ['codemath', '1'],
    ]);
    for (const t of trajectories) {
      expect(t.steps[0]!.role).toBe('analyzer');
      expect(t.steps.at(-1)!.role).toBe('generator');
      expect(t.steps.at(-1)!.done).toBe(true);
      expect(['turn_limit', 'verifier_stop', 'context_limit']).toContain(t.flow.stopReason);
      expect(t.flow.errors.filter((e) => !/context/.test(e))).toEqual([]);
      // A memory record is a success only when the executor's call ran and the tool succeeded.
      for (const m of t.flow.memory) {
        const exec = t.steps.find((s) => s.role === 'executor' && s.extras.turn === m.turn);
        expect(m.ok).toBe(exec?.audit[0]?.ok === true);
      }
      const planners = t.steps.filter((s) => s.role === 'planner');
      expect(planners.length).toBe(t.flow.memory.length);
      planners.forEach((s, k) => {
        const record = t.flow.memory[k]!;
        if (!s.valid) expect(record.result).toMatch(/^(could not parse the plan|tool not found)/);
      });
      // Roles ran on their own models.
      for (const s of t.steps) expect(s.model).toBe(s.role === 'planner' ? 'policy:train' : 'policy:frozen');
    }
  });

  it('records token-exact steps: template prompt ids, response ids and the policy’s own log-probs', async () => {
    expectTokenExactSteps(trajectories, (s) => (s.role === 'planner' ? trained : frozen), tokenizer, {
      promptText: true,
    });
    // The planner samples (the Flow-GRPO samples): re-scored by the policy, the same log-probs.
    await expectPlannerRescored(trajectories, trained.policy, 4);
  });

  it('samples the G rollouts of a group differently and shares decode batches between them', () => {
    const first = (t: AgentFlowTrajectory) => t.steps.find((s) => s.role === 'planner')!;
    expect(first(trajectories[0]!).promptTokens).toEqual(first(trajectories[1]!).promptTokens);
    expect(first(trajectories[0]!).responseTokens).not.toEqual(first(trajectories[1]!).responseTokens);
    const plannerCalls = trajectories.reduce(
      (n, t) => n + t.steps.filter((s) => s.role === 'planner').length,
      0,
    );
    expect(trained.batcher.stats.rows).toBe(plannerCalls);
    expect(trained.batcher.stats.batches).toBeLessThan(plannerCalls);
  });

  it('writes the trajectories into the store and reads back the same tokens and log-probs', () => {
    const store = openStore(path.join(dir, 'policy.db'));
    recordIteration(store, 'flow', 0, trajectories);
    for (const t of trajectories) {
      const rows = store.trajectory({
        runId: 'flow',
        iteration: 0,
        groupId: t.groupId,
        trajectoryId: t.trajectoryId,
      });
      expect(rows.map((r) => r.role)).toEqual(t.steps.map((s) => s.role));
      rows.forEach((r, i) => {
        const s = t.steps[i]!;
        expect([...r.promptTokens]).toEqual(s.promptTokens);
        expect([...r.responseTokens]).toEqual(s.responseTokens);
        expect([...r.responseLogprobs]).toEqual(s.responseLogprobs.map((x) => Math.fround(x)));
        expect(r.extras.outcomeReward).toBe(t.won ? 1 : 0);
      });
    }
    store.close();
  });

  it('runs the executor on the policy after a gold plan: its malformed call is recorded, the loop goes on', async () => {
    const task = source.generate('train', 21);
    const gold = goldModels(goldTrace(task, createExpert('search').demonstrate(task)));
    const { env, tools } = makeEnv()('search');
    const t = await runAgentFlowEpisode(
      env,
      { ...gold, executor: new PolicyChatModel(tinyPolicy(3), { name: 'exec' }) },
      { task, seed: task.seed, tools },
      config,
    );
    const execs = t.steps.filter((s) => s.role === 'executor');
    expect(execs.length).toBe(t.flow.turns);
    expect(execs.every((s) => s.responseTokens.length > 0 && !s.valid)).toBe(true);
    for (const m of t.flow.memory) {
      expect(m.tool).toBe('web_search');
      expect(m.result).toMatch(/^(could not parse the tool call|tool call names|invalid arguments)/);
    }
    // Nothing was searched, so the gold answer was a guess the env still judged.
    expect(tools!.audit).toEqual([]);
    expect(t.steps.at(-1)!.role).toBe('generator');
  });
});
