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
import { TASK_TYPES } from '../../src/envs/household/catalog.ts';
import { HOUSEHOLD_WIN_REWARD, HouseholdEnv } from '../../src/envs/household/env.ts';
import { HouseholdExpert } from '../../src/envs/household/expert.ts';
import { HouseholdGenerator } from '../../src/envs/household/generator.ts';
import { openStore } from '../../src/store/index.ts';
import { recordIteration } from '../../src/training/record.ts';

// AgentFlow on the household world, where the planner's one tool is the world: gold traces from
// the household expert replay through the real loop (real prompts, the real env stepped by the
// executor's calls), and the env decides the win. A trace whose commands do not reach the goal
// fails here.

const generator = new HouseholdGenerator();
const expert = new HouseholdExpert();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'agentflow-household-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const episodeOf = (task: ReturnType<HouseholdGenerator['generate']>, trajectoryId = '0') => ({
  task,
  seed: task.seed,
  trajectoryId,
});

describe('AgentFlow on household: gold traces', () => {
  it('every task type replays to a win, one turn per expert command, the win on the last command', async () => {
    const failures: string[] = [];
    for (const [i, kind] of TASK_TYPES.entries()) {
      for (const split of ['train', 'valid-unseen'] as const) {
        const task = generator.generate(split, 60 + i, kind);
        const commands = expert.demonstrate(task).actions;
        const { trace, trajectory: t, samples } = await replayGold(new HouseholdEnv(), episodeOf(task));
        if (!t.won) failures.push(`${task.id} (${kind}): not won, memory ${JSON.stringify(t.flow.memory)}`);
        expect(trace.turns).toHaveLength(commands.length);
        expect(t.flow.stopReason).toBe('verifier_stop');
        expect(t.flow.turns).toBe(commands.length);
        // The executor's calls were the expert's commands, in order, each audited as a household call.
        const execs = t.steps.filter((s) => s.role === 'executor');
        expect(execs.map((s) => s.action)).toEqual(
          commands.map((c) => `household(${JSON.stringify({ command: c })})`),
        );
        expect(execs.every((s) => s.audit.length === 1 && s.audit[0]!.tool === 'household')).toBe(true);
        // The env's reward sits on the step whose command reached the goal: the last executor step.
        expect(execs.map((s) => s.envReward)).toEqual(
          commands.map((_, k) => (k === commands.length - 1 ? HOUSEHOLD_WIN_REWARD : 0)),
        );
        expect(t.episodeReturn).toBe(HOUSEHOLD_WIN_REWARD);
        expect(t.steps.every((s) => s.extras.outcomeReward === HOUSEHOLD_WIN_REWARD)).toBe(true);
        // The verifier says CONTINUE until the last command, then STOP.
        const verdicts = samples.filter((s) => s.role === 'verifier').map((s) => s.reply);
        expect(verdicts.map((v) => v.includes('<verdict>STOP</verdict>'))).toEqual(
          commands.map((_, k) => k === commands.length - 1),
        );
        expect(t.steps.at(-1)!.role).toBe('generator');
        expect(t.flow.answer).toBe(trace.answer);
      }
    }
    expect(failures).toEqual([]);
  });

  it('the planner sees the admissible commands: in the query first, then after each command', async () => {
    const task = generator.generate('train', 5, 'pick_heat_then_place_in_recep');
    const env = new HouseholdEnv();
    env.resetSync(task.seed, task);
    const firstCommands = env.admissibleActions();
    const { trajectory: t } = await replayGold(new HouseholdEnv(), episodeOf(task));
    const planners = t.steps.filter((s) => s.role === 'planner');
    expect(planners[0]!.messages.at(-1)!.content).toContain(
      `Admissible commands: ${firstCommands.join(', ')}`,
    );
    // The second planner's memory holds what the first command returned, with the next commands.
    const firstResult = t.flow.memory[0]!.result;
    expect(firstResult).toMatch(/^You arrive at .+\nAdmissible commands: .*go to /);
    expect(planners[1]!.messages.at(-1)!.content).toContain(firstResult);
  });

  it('an inadmissible, malformed or late command is an observation; an unknown tool a recorded step', async () => {
    const task = generator.generate('train', 7, 'pick_and_place_simple');
    const gold = goldTrace(task, expert.demonstrate(task));
    const call = (command: string) =>
      `<tool_call>${JSON.stringify({ name: 'household', arguments: { command } })}</tool_call>`;
    const plan = '<sub_goal>act</sub_goal><tool>household</tool><context>-</context>';
    const continueVerdict = '<verdict>CONTINUE</verdict>';
    // Turn 1 an unknown tool, turn 2 nonsense, turn 3 a command the world has no use for, then the
    // gold commands (which win), then one command too many.
    const modules = {
      analyzer: new ScriptedChatModel('analyzer', [gold.analysis]),
      planner: new ScriptedChatModel('planner', [
        '<sub_goal>x</sub_goal><tool>teleport</tool><context>-</context>',
        plan,
        plan,
        ...gold.turns.map((g) => g.planner),
        plan,
      ]),
      executor: new ScriptedChatModel('executor', [
        call('fly to the moon'),
        call('go to shelf 99'),
        ...gold.turns.map((g) => g.executor),
        call('look'),
      ]),
      verifier: new ScriptedChatModel(
        'verifier',
        Array.from({ length: gold.turns.length + 4 }, () => continueVerdict),
      ),
      generator: new ScriptedChatModel('generator', ['<answer>done</answer>']),
    };
    const turns = gold.turns.length + 4;
    const t = await runAgentFlowEpisode(new HouseholdEnv(), modules, episodeOf(task), {
      householdMaxTurns: turns,
    });
    expect(t.flow.stopReason).toBe('turn_limit');
    expect(t.flow.turns).toBe(turns);
    expect(t.flow.errors).toEqual([]);
    const results = t.flow.memory.map((m) => m.result);
    expect(results[0]).toMatch(/^tool not found: "teleport" \(available: household\)/);
    expect(results[1]).toMatch(/^Nothing happens\.\nAdmissible commands: /);
    expect(results[2]).toMatch(/^Nothing happens\.\nAdmissible commands: /);
    expect(results.at(-1)).toBe('The task is already complete; no more commands are needed.');
    // The env still judged the win, on the last gold command's step.
    expect(t.won).toBe(true);
    const execs = t.steps.filter((s) => s.role === 'executor');
    expect(execs.map((s) => s.envReward)).toEqual([
      0,
      0,
      ...gold.turns.map((_, k) => (k === gold.turns.length - 1 ? HOUSEHOLD_WIN_REWARD : 0)),
      0,
    ]);
    expect(t.episodeReturn).toBe(HOUSEHOLD_WIN_REWARD);
    expect(modules.planner.remaining + modules.executor.remaining).toBe(0);
  });

  it('householdMaxTurns (default 30) bounds household turns, not maxTurns; replayGold names it', async () => {
    const task = generator.generate('train', 9, 'pick_two_obj_and_place');
    const n = expert.demonstrate(task).actions.length;
    expect(n).toBeGreaterThan(4); // above maxTurns' default: only householdMaxTurns applies
    const { trajectory } = await replayGold(new HouseholdEnv(), episodeOf(task));
    expect(trajectory.won).toBe(true);
    await expect(replayGold(new HouseholdEnv(), episodeOf(task), { householdMaxTurns: 2 })).rejects.toThrow(
      `has ${n} turns but householdMaxTurns is 2`,
    );
    // Cut at two turns, the gold trajectory ends unwon at the turn limit.
    const gold = goldModels(goldTrace(task, expert.demonstrate(task)));
    const cut = await runAgentFlowEpisode(new HouseholdEnv(), gold, episodeOf(task), {
      householdMaxTurns: 2,
    });
    expect([cut.won, cut.outcome, cut.flow.turns, cut.episodeReturn]).toEqual([false, 'turn_limit', 2, 0]);
  });

  it('rolls out groups and records them in the store as the transcript', async () => {
    const tasks = [generator.generate('valid-seen', 21), generator.generate('valid-seen', 22)];
    const trajectories: AgentFlowTrajectory[] = [];
    for (const task of tasks) {
      const trace = goldTrace(task, expert.demonstrate(task));
      // Trajectory 0 replays gold; trajectory 1 stops after the first command (a loss).
      const stopEarly = {
        ...trace,
        turns: [{ ...trace.turns[0]!, verifier: 'Done. <verdict>STOP</verdict>' }],
      };
      for (const [j, tr] of [trace, stopEarly].entries()) {
        const [t] = await rolloutAgentFlow({
          modules: goldModels(tr),
          tasks: [task],
          makeEnv: () => ({ env: new HouseholdEnv() }),
        });
        trajectories.push({ ...t!, trajectoryId: String(j) });
      }
    }
    expect(trajectories.map((t) => [t.won, t.outcome])).toEqual([
      [true, 'won'],
      [false, 'answered'],
      [true, 'won'],
      [false, 'answered'],
    ]);
    const store = openStore(path.join(dir, 'household.db'));
    recordIteration(store, 'run', 0, trajectories);
    for (const t of trajectories) {
      const rows = store.trajectory({
        runId: 'run',
        iteration: 0,
        groupId: t.groupId,
        trajectoryId: t.trajectoryId,
      });
      expect(rows.map((r) => [r.role, r.promptText, r.responseText])).toEqual(
        t.steps.map((s) => [s.role, s.promptText, s.responseText]),
      );
      expect(rows.map((r) => r.envReward)).toEqual(t.steps.map((s) => s.envReward));
      expect(rows.reduce((sum, r) => sum + r.envReward, 0)).toBe(t.won ? HOUSEHOLD_WIN_REWARD : 0);
      expect(rows.every((r) => r.extras.outcomeReward === (t.won ? HOUSEHOLD_WIN_REWARD : 0))).toBe(true);
      const execs = rows.filter((r) => r.role === 'executor');
      expect(execs.map((r) => r.toolCalls.map((c) => c.tool))).toEqual(execs.map(() => ['household']));
      expect(rows.at(-1)!.done).toBe(true);
    }
    store.close();
  });
});
