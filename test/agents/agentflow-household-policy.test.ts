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
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { HouseholdExpert } from '../../src/envs/household/expert.ts';
import { Policy } from '../../src/policy/policy.ts';
import type { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { openStore } from '../../src/store/index.ts';
import { recordIteration } from '../../src/training/record.ts';
import { expectPlannerRescored, expectTokenExactSteps } from './agentflow-helpers.ts';
import {
  household,
  householdEnvMaker,
  householdFlowTokenizer,
  smallHouseholdConfig,
} from './agentflow-household-helpers.ts';

// Household AgentFlow on an untrained tiny local policy: its replies are noise, so the loop must
// cope with every malformed reply, and the steps it records must be token-exact (prompt ids are the
// chat template of the recorded messages, log-probs are what the policy gives the recorded tokens).

let tokenizer: Tokenizer;
let dir: string;
const policies: Policy[] = [];
let trajectories: AgentFlowTrajectory[];
let trained: PolicyChatModel;
let frozen: PolicyChatModel;

beforeAll(async () => {
  tokenizer = await householdFlowTokenizer();
  dir = mkdtempSync(path.join(tmpdir(), 'agentflow-household-policy-'));
  const tiny = (seed: number) => {
    const p = Policy.create({ model: 'tiny', tokenizer, seed });
    policies.push(p);
    return p;
  };
  // The planner on the policy being trained; the other modules on a frozen copy of another one.
  trained = new PolicyChatModel(tiny(1), { name: 'train' });
  frozen = new PolicyChatModel(tiny(2), { name: 'frozen' });
  trajectories = await rolloutAgentFlow({
    modules: { planner: trained, executor: frozen, verifier: frozen, generator: frozen, analyzer: frozen },
    tasks: [household.generate('train', 11), household.generate('valid-unseen', 12)],
    groupSize: 2,
    config: smallHouseholdConfig,
    makeEnv: householdEnvMaker,
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(policies.map((p) => p.dispose()));
  rmSync(dir, { recursive: true, force: true });
});

describe('household AgentFlow on an untrained local policy', () => {
  it('runs every trajectory to the generator, malformed replies recorded as steps', () => {
    expect(trajectories.map((t) => [t.task.env, t.trajectoryId])).toEqual([
      ['household', '0'],
      ['household', '1'],
      ['household', '0'],
      ['household', '1'],
    ]);
    for (const t of trajectories) {
      expect(t.steps[0]!.role).toBe('analyzer');
      expect(t.steps.at(-1)!.role).toBe('generator');
      expect(t.steps.at(-1)!.done).toBe(true);
      expect(t.flow.errors).toEqual([]);
      // Two turns of a few hundred tokens each: the tiny context holds them, the turn limit ends them.
      expect(t.flow.stopReason).toBe('turn_limit');
      expect(t.flow.turns).toBe(2);
      // The query carries the task and the first admissible commands.
      expect(t.flow.query).toMatch(/Your task is to: .+\nAdmissible commands: .*go to /);
      const planners = t.steps.filter((s) => s.role === 'planner');
      expect(planners.length).toBe(t.flow.memory.length);
      planners.forEach((s, k) => {
        if (!s.valid) expect(t.flow.memory[k]!.result).toMatch(/^(could not parse the plan|tool not found)/);
      });
      // Noise does not win: no reward, and the outcome says why the trajectory ended.
      expect([t.won, t.episodeReturn]).toEqual([false, 0]);
      for (const s of t.steps) expect(s.model).toBe(s.role === 'planner' ? 'policy:train' : 'policy:frozen');
    }
  });

  it('records token-exact steps: template prompt ids, response ids and the policy’s own log-probs', async () => {
    expectTokenExactSteps(trajectories, (s) => (s.role === 'planner' ? trained : frozen), tokenizer, {
      promptText: true,
    });
    // The planner samples (Flow-GRPO's): re-scored by the policy, the same log-probs.
    const planner = await expectPlannerRescored(trajectories, trained.policy, 4);
    expect(planner.length).toBeGreaterThan(0);
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
        expect(r.extras.outcomeReward).toBe(0);
      });
    }
    store.close();
  });

  it('runs the executor on the policy after gold plans: its malformed calls are recorded, the world untouched', async () => {
    const task = household.generate('train', 21);
    const gold = goldModels(goldTrace(task, new HouseholdExpert().demonstrate(task)));
    const env = new HouseholdEnv();
    const t = await runAgentFlowEpisode(
      env,
      { ...gold, executor: new PolicyChatModel(trained.policy, { name: 'exec' }) },
      { task, seed: task.seed },
      smallHouseholdConfig,
    );
    const execs = t.steps.filter((s) => s.role === 'executor');
    expect(execs.length).toBe(2);
    expect(execs.every((s) => s.responseTokens.length > 0 && !s.valid && s.audit.length === 0)).toBe(true);
    for (const m of t.flow.memory) {
      expect(m.tool).toBe('household');
      expect(m.result).toMatch(/^(could not parse the tool call|tool call names|invalid arguments)/);
    }
    expect(env.stepCount).toBe(0);
    expect([t.won, t.outcome]).toEqual([false, 'turn_limit']);
  });
});
