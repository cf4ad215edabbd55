import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentFlowTrajectory,
  goldModels,
  goldTrace,
  replayGold,
  rolloutAgentFlow,
  runAgentFlowEpisode,
  ScriptedChatModel,
} from '../../src/agents/agentflow/index.ts';
import { agentEnvMaker } from '../../src/agents/loops/rollout.ts';
import { flowGrpo } from '../../src/credit/index.ts';
import { CodeMathGenerator, PROBLEM_KINDS } from '../../src/envs/codemath/generator.ts';
import { createExpert } from '../../src/envs/index.ts';
import { EncyclopediaQA, QUESTION_KINDS } from '../../src/envs/search/generator.ts';
import { openStore } from '../../src/store/index.ts';
import { PythonPool } from '../../src/tools/python/pool.ts';
import { PythonTool } from '../../src/tools/python/tool.ts';
import { recordIteration } from '../../src/training/record.ts';

// Gold traces replayed through the real loop: real prompts, the real web_search index and the real
// Python sandbox; only the replies come from the trace. The env judges the final answer, so a trace
// that does not lead to the right answer fails here.

let pool: PythonPool;
let dir: string;
const source = new EncyclopediaQA();

beforeAll(async () => {
  pool = new PythonPool({ size: 1, announce: false });
  await pool.warm();
  dir = mkdtempSync(path.join(tmpdir(), 'agentflow-gold-'));
});

afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

const makeEnv = () =>
  agentEnvMaker({
    deps: { source, python: new PythonTool({ pool, limits: { timeMs: 30_000, outputChars: 2_000 } }) },
  });

describe('gold AgentFlow traces', () => {
  it('search: every question kind replays to the right answer, one web_search turn per hop', async () => {
    const make = makeEnv();
    const wrong: string[] = [];
    for (let i = 0; i < QUESTION_KINDS.length * 2; i++) {
      const kind = QUESTION_KINDS[i % QUESTION_KINDS.length]!;
      const task = source.generate(i % 2 === 0 ? 'train' : 'valid-unseen', 500 + i, kind);
      const trace = goldTrace(task, createExpert('search').demonstrate(task));
      const hops = task.payload.queries!.length;
      expect(trace.turns).toHaveLength(hops);
      const { env, tools } = make('search');
      const t = await runAgentFlowEpisode(env, goldModels(trace), { task, seed: task.seed, tools });
      // Each hop's evidence was found by the search of its turn and kept in the memory.
      task.payload.evidence!.forEach((fact, k) => {
        if (!t.flow.memory[k]!.result.includes(fact))
          wrong.push(`${task.id} turn ${k + 1}: memory lacks "${fact}"`);
      });
      if (!t.won)
        wrong.push(`${task.id} (${kind}): answered ${t.flow.answer}, want ${task.payload.answers[0]}`);
      expect(t.flow.stopReason).toBe('verifier_stop');
      expect(t.flow.turns).toBe(hops);
      expect(
        t.steps.filter((s) => s.role === 'executor').every((s) => s.audit.length === 1 && s.audit[0]!.ok),
      ).toBe(true);
    }
    expect(wrong).toEqual([]);
  });

  it('code/math: every problem kind replays to the right answer through the Python sandbox', async () => {
    const gen = new CodeMathGenerator();
    const make = makeEnv();
    const wrong: string[] = [];
    for (const [i, kind] of PROBLEM_KINDS.entries()) {
      const task = gen.generate('valid-seen', 40 + i, kind);
      const trace = goldTrace(task, createExpert('codemath').demonstrate(task));
      const { env, tools } = make('codemath');
      const t = await runAgentFlowEpisode(env, goldModels(trace), { task, seed: task.seed, tools });
      if (!t.won)
        wrong.push(`${task.id} (${kind}): memory ${JSON.stringify(t.flow.memory)}, answer ${t.flow.answer}`);
      // The Python run printed the answer the generator gives.
      expect(t.flow.memory[0]!.result.trim()).toBe(trace.answer);
    }
    expect(wrong).toEqual([]);
  });

  it('an env without gold AgentFlow traces says so', () => {
    const task = {
      env: 'chess',
      id: 'chess/train/1',
      kind: 'mate',
      split: 'train',
      seed: 1,
      payload: {},
    } as const;
    expect(() => goldTrace(task, { actions: [] })).toThrow(/no AgentFlow gold traces for env "chess"/);
  });

  it('records trajectories in the store as the transcript, with the outcome on every planner sample', async () => {
    const tasks = [0, 1].map((s) => source.generate('train', 900 + s));
    // Two rollouts per task: the first replays gold, the second answers wrongly (a group with both outcomes).
    const trajectories: AgentFlowTrajectory[] = [];
    for (const task of tasks) {
      const trace = goldTrace(task, createExpert('search').demonstrate(task));
      const bad = { ...trace, generator: '<answer>nobody</answer>', answer: 'nobody' };
      for (const [j, tr] of [trace, bad].entries()) {
        const { env, tools } = makeEnv()('search');
        trajectories.push(
          await runAgentFlowEpisode(env, goldModels(tr), {
            task,
            seed: task.seed,
            tools,
            trajectoryId: String(j),
          }),
        );
      }
    }
    expect(trajectories.map((t) => t.won)).toEqual([true, false, true, false]);
    const store = openStore(path.join(dir, 'gold.db'));
    recordIteration(store, 'run', 0, trajectories);
    for (const t of trajectories) {
      const rows = store.trajectory({
        runId: 'run',
        iteration: 0,
        groupId: t.groupId,
        trajectoryId: t.trajectoryId,
      });
      // The stored steps reproduce the transcript: roles, prompts, replies, in order.
      expect(rows.map((r) => [r.role, r.responseText])).toEqual(
        t.flow.steps.map((s) => [s.role, s.response.text]),
      );
      expect(rows.map((r) => r.promptText)).toEqual(t.steps.map((s) => s.promptText));
      expect(rows.every((r) => r.extras.outcomeReward === (t.won ? 1 : 0))).toBe(true);
      expect(rows.at(-1)!.envReward).toBe(t.won ? 1 : 0);
      expect(rows.at(-1)!.done).toBe(true);
      const execs = rows.filter((r) => r.role === 'executor');
      expect(execs.map((r) => r.toolCalls.map((c) => c.tool))).toEqual(execs.map(() => ['web_search']));
    }
    // Flow-GRPO over the planner rows: each group has one right and one wrong rollout, so the
    // right one's planner samples get a positive advantage and the wrong one's a negative.
    const planner = [...store.allSteps({ runId: 'run' })]
      .filter((r) => r.role === 'planner')
      .map((r) => ({ ...r, ...r.extras }));
    const adv = flowGrpo(planner as never).advantages;
    planner.forEach((r, i) => {
      expect(Math.sign(adv[i]!)).toBe(r.won ? 1 : -1);
    });
    store.close();
  });

  it('rolloutAgentFlow gives each trajectory of a group its ids and judges each', async () => {
    const task = source.generate('valid-seen', 77);
    const trace = goldTrace(task, createExpert('search').demonstrate(task));
    // One after another (concurrency 1), so one script holds both trajectories' replies in order.
    const models = goldModels({ ...trace, turns: [...trace.turns, ...trace.turns] });
    const out = await rolloutAgentFlow({
      modules: {
        ...models,
        analyzer: new ScriptedChatModel('analyzer', [trace.analysis, trace.analysis]),
        generator: new ScriptedChatModel('generator', [trace.generator, '<answer>nobody</answer>']),
      },
      tasks: [task],
      groupSize: 2,
      concurrency: 1,
      makeEnv: makeEnv(),
    });
    expect(out.map((t) => [t.groupId, t.trajectoryId, t.seed, t.won, t.outcome])).toEqual([
      [task.id, '0', task.seed, true, 'won'],
      [task.id, '1', task.seed, false, 'answered'],
    ]);
  });

  it('replayGold gives each module’s real prompt beside its gold reply (SFT samples)', async () => {
    // A question of two hops or more, so that the too-small maxTurns below is below its turns.
    const task = [3, 4, 5, 6, 7, 8]
      .map((seed) => source.generate('train', seed))
      .find((t) => t.payload.queries!.length > 1)!;
    const { env, tools } = makeEnv()('search');
    const { trace, trajectory, samples } = await replayGold(env, { task, seed: task.seed, tools });
    expect(trajectory.won).toBe(true);
    const roles = [
      'analyzer',
      ...trace.turns.flatMap(() => ['planner', 'executor', 'verifier']),
      'generator',
    ];
    expect(samples.map((s) => s.role)).toEqual(roles);
    expect(samples.filter((s) => s.role === 'planner').map((s) => s.reply)).toEqual(
      trace.turns.map((t) => t.planner),
    );
    // The verifier of the last turn is asked with the memory holding the last search's result.
    const lastVerifier = samples.filter((s) => s.role === 'verifier').at(-1)!;
    expect(lastVerifier.messages.at(-1)!.content).toContain(task.payload.evidence!.at(-1)!);
    expect(lastVerifier.reply).toContain('<verdict>STOP</verdict>');
    const { env: env2, tools: tools2 } = makeEnv()('search');
    await expect(replayGold(env2, { task, seed: task.seed, tools: tools2 }, { maxTurns: 1 })).rejects.toThrow(
      `has ${trace.turns.length} turns but maxTurns is 1`,
    );
  });
});
