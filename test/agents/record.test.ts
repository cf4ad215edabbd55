import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PolicyChatModel } from '../../src/agents/chat/index.ts';
import { agentEnvMaker, rollout } from '../../src/agents/loops/index.ts';
import type { Trajectory } from '../../src/agents/record.ts';
import {
  EncyclopediaQA,
  gigpo,
  HouseholdGenerator,
  openStore,
  type Policy,
  SearchExpert,
  type SearchTask,
  type StoredStepRow,
} from '../../src/index.ts';
import { groupTrajectories, recordIteration } from '../../src/training/record.ts';
import { domainTokenizer, replies, tinyPolicy } from './loops-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-record-'));
const policies: Policy[] = [];
afterAll(async () => {
  await Promise.all(policies.map((p) => p.dispose()));
  rmSync(dir, { recursive: true, force: true });
});

const source = new EncyclopediaQA();
const makeEnv = agentEnvMaker({ deps: { source } });
const searchTasks = [3, 4].map((s) => source.generate('train', s, 'bridge') as SearchTask);

/** Search trajectories: an expert group (scripted, so it wins) and a group of the untrained policy. */
async function searchTrajectories(): Promise<Trajectory[]> {
  const expert = new SearchExpert().demonstrate(searchTasks[0]!).actions;
  const won = await rollout({
    model: replies(...expert.map((a) => `<think>ok</think>${a}`)),
    tasks: [searchTasks[0]!],
    groupSize: 1,
    makeEnv,
  });
  const policy = tinyPolicy(4);
  policies.push(policy);
  const sampled = await rollout({
    model: new PolicyChatModel(policy),
    tasks: [searchTasks[1]!],
    groupSize: 3,
    makeEnv,
    // A short search result keeps the conversation inside the tiny model's context.
    loops: { search: { maxTurns: 3, sampling: { maxTokens: 12 } } },
  });
  return [...won, ...sampled];
}

const rowsOf = (rows: StoredStepRow[], t: Trajectory) =>
  rows.filter((r) => r.groupId === t.groupId && r.trajectoryId === t.trajectoryId);

describe('recordIteration', () => {
  it('writes every step as played, and the stored rows reproduce the transcript', async () => {
    const trajectories = await searchTrajectories();
    // Both kinds of follow-up turn occur: search results (the expert) and complaints (the untrained policy).
    expect(trajectories[0]!.steps.length).toBeGreaterThan(1);
    expect(trajectories.slice(1).some((t) => t.steps.length > 1 && t.steps[0]!.promptTokens.length > 0)).toBe(
      true,
    );
    const store = openStore(join(dir, 'search.db'));
    recordIteration(store, 'search-run', 0, trajectories, { runConfig: { loop: 'search' } });

    const groups = store.groups('search-run', 0);
    expect(
      groups.map((g) => [g.groupId, g.taskId, g.taskType, g.seed, g.split, g.trajectories.length]),
    ).toEqual([
      [searchTasks[0]!.id, searchTasks[0]!.id, 'bridge', searchTasks[0]!.seed, 'train', 1],
      [searchTasks[1]!.id, searchTasks[1]!.id, 'bridge', searchTasks[1]!.seed, 'train', 3],
    ]);
    expect(groups[0]!.trajectories[0]).toMatchObject({ outcome: 'won', won: true, episodeReturn: 1 });

    const rows = store.trainingRows('search-run', 0);
    expect(rows.length).toBe(trajectories.reduce((n, t) => n + t.steps.length, 0));
    const tok = domainTokenizer();
    for (const t of trajectories) {
      const stored = rowsOf(rows, t);
      expect(stored.length).toBe(t.steps.length);
      for (const [k, s] of t.steps.entries()) {
        const r = stored[k]!;
        expect([r.stepIndex, r.role, r.anchor, r.envReward, r.valid, r.done]).toEqual([
          k,
          'agent',
          s.anchor,
          s.envReward,
          s.valid,
          s.done,
        ]);
        expect([r.promptText, r.responseText]).toEqual([s.promptText, s.responseText]);
        expect(Array.from(r.promptTokens)).toEqual(s.promptTokens);
        expect(Array.from(r.responseTokens)).toEqual(s.responseTokens);
        expect(Array.from(r.responseLogprobs)).toEqual(Array.from(Float32Array.from(s.responseLogprobs)));
        expect(r.extras).toMatchObject({ observation: s.observation, model: s.model });
        if (k === 0) continue;
        // The transcript: each prompt is the previous prompt, the previous response and what
        // answered it (the search result, or the env's complaint about an invalid reply), in the
        // chat template's layout...
        const prev = stored[k - 1]!;
        expect(r.promptText).toBe(
          `${prev.promptText}${prev.responseText}<|end|><|user|>${prev.extras.observation}<|end|><|assistant|>`,
        );
        // ...and the local policy saw exactly those tokens, the earlier prompt's ids unchanged.
        if (r.promptTokens.length > 0) {
          expect(tok.decode(Array.from(r.promptTokens))).toBe(r.promptText);
          expect(Array.from(r.promptTokens.subarray(0, prev.promptTokens.length))).toEqual(
            Array.from(prev.promptTokens),
          );
        }
      }
    }
    // Tool-call audit records went in with their steps.
    const expertSteps = store.trajectory({
      runId: 'search-run',
      iteration: 0,
      groupId: searchTasks[0]!.id,
      trajectoryId: '0',
    });
    expect(expertSteps.map((s) => s.toolCalls.map((c) => c.tool))).toEqual(
      trajectories[0]!.steps.map((s) => s.audit.map((a) => a.tool)),
    );
    expect(expertSteps[0]!.toolCalls[0]).toEqual(trajectories[0]!.steps[0]!.audit[0]);
    expect(expertSteps.at(-1)!.extras).toMatchObject({ answered: true, outcomeReward: 1 });
    // Rollout metrics were written with the iteration.
    expect(store.metricSeries('search-run', 'trajectories')).toEqual([{ iteration: 0, value: 4 }]);
    expect(store.metricSeries('search-run', 'success_rate')[0]!.value).toBeCloseTo(
      trajectories.filter((t) => t.won).length / 4,
    );
    expect(store.check().ok).toBe(true);
    store.close();
  });

  it('stores household groups that GiGPO can credit straight from the rows', async () => {
    const policy = tinyPolicy(5);
    policies.push(policy);
    const tasks = [0, 1].map((s) => new HouseholdGenerator().generate('train', s));
    const trajectories = await rollout({
      model: new PolicyChatModel(policy),
      tasks,
      groupSize: 2,
      loops: { household: { maxSteps: 2, sampling: { maxTokens: 8 } } },
    });
    const store = openStore(join(dir, 'household.db'));
    recordIteration(store, 'hh', 0, trajectories);
    const rows = store.trainingRows('hh', 0);
    expect(rows.length).toBe(8);
    const credit = gigpo(rows as never);
    expect(credit.advantages.length).toBe(8);
    expect(Array.from(credit.advantages).every(Number.isFinite)).toBe(true);
    expect(() => recordIteration(store, 'hh', 0, trajectories)).toThrow(/already stored/);
    store.close();
  });

  it('refuses a group whose trajectories play different tasks, and leaves out empty ones', () => {
    const task = new HouseholdGenerator().generate('train', 1);
    const other = new HouseholdGenerator().generate('train', 2);
    const base: Trajectory = {
      groupId: 'g',
      trajectoryId: '0',
      task,
      seed: task.seed,
      steps: [],
      outcome: 'time_limit',
      won: false,
      episodeReturn: 0,
      durationMs: 0,
    };
    const step = {
      stepIndex: 0,
      role: 'agent',
      model: 'm',
      messages: [],
      promptText: 'p',
      promptTokens: [],
      responseText: 'r',
      responseTokens: [],
      responseLogprobs: [],
      toolCalls: [],
      action: undefined,
      observation: 'o',
      anchor: 'a',
      envReward: 0,
      valid: false,
      done: true,
      audit: [],
      extras: {},
    };
    const full = { ...base, steps: [step] };
    expect(
      groupTrajectories([base, { ...full, trajectoryId: '1' }])[0]!.trajectories.map((t) => t.trajectoryId),
    ).toEqual(['1']);
    expect(() =>
      groupTrajectories([full, { ...full, trajectoryId: '1', task: other, seed: other.seed }]),
    ).toThrow(/group g: trajectory 1 plays task household\/train\/2/);
    expect(() => groupTrajectories([full, full])).toThrow(/two trajectories have the id 0/);
  });
});
