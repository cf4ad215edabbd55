/**
 * AgentFlow on the household world. Household actions are env commands, not tool calls, so the
 * planner's one "tool" is the world itself: `household`, with input `{ command }`, steps the env and
 * returns its observation and the commands admissible next. An inadmissible or malformed command
 * is an observation (the env's "Nothing happens."), never a throw, so every turn the planner takes
 * is a step of the world. The verifier says STOP once the goal holds; the generator's answer is a
 * short report that nothing judges: household reward comes from the env (won when the goal holds,
 * on the executor step whose command achieved it).
 */
import { z } from 'zod';
import { type HouseholdTask, renderHouseholdTask } from '../../envs/household/generator.ts';
import type { Demonstration, Env, StepResult } from '../../envs/types.ts';
import { defineTool } from '../../tools/define.ts';
import { ToolRunner, type ToolRunnerOptions } from '../../tools/policy.ts';
import type { Tool } from '../../tools/types.ts';
import type { GoldTrace, GoldTurn } from './gold.ts';

export const HOUSEHOLD_TOOL = 'household';

/** The household tool's arguments: one env command. */
export const HouseholdToolInput = z.object({
  command: z.string().min(1).describe('one household command, e.g. "go to cabinet 1"'),
});

/** Commands as the planner reads them after each step (and in the query, before the first). */
export function admissibleLine(env: Env): string {
  return `Admissible commands: ${(env.admissibleActions?.() ?? []).join(', ')}`;
}

/** What the household tool saw: the results of the env steps it took in this trajectory. */
export interface HouseholdWorldLog {
  /** One entry per command the tool ran, in order: the env's step, or undefined after the end. */
  calls: (StepResult | undefined)[];
  /** The goal held after some step. */
  won: boolean;
}

/**
 * The `household` tool bound to one env (the trajectory's). Its `log` collects the env's step
 * results, which the episode turns into rewards. After the trajectory ends (goal reached or the
 * env's step limit) a command returns an observation saying so instead of stepping.
 */
export function householdTool(env: Env): { tool: Tool; log: HouseholdWorldLog } {
  const log: HouseholdWorldLog = { calls: [], won: false };
  const tool = defineTool({
    name: HOUSEHOLD_TOOL,
    description:
      'Acts in the household world: runs one command and returns what you observe and the admissible commands.',
    schema: HouseholdToolInput,
    limits: { timeMs: 5_000, outputChars: 2_000 },
    async run({ command }) {
      if (log.calls.some((r) => r?.done)) {
        log.calls.push(undefined);
        return log.won
          ? 'The task is already complete; no more commands are needed.'
          : 'The episode is over: the step limit is reached.';
      }
      const result = await env.step(command);
      log.calls.push(result);
      if (result.info.won) log.won = true;
      return result.done ? result.observation : `${result.observation}\n${admissibleLine(env)}`;
    },
  });
  return { tool, log };
}

/** A runner with the household tool of `env` (under `policy`, when the caller's runner has one). */
export function householdRunner(
  env: Env,
  policy?: ToolRunnerOptions['policy'],
): { runner: ToolRunner; log: HouseholdWorldLog } {
  const { tool, log } = householdTool(env);
  return { runner: new ToolRunner([tool], { policy }), log };
}

// --- gold traces -----------------------------------------------------------------------------

/** Why an expert command is taken, as a planner sub-goal. */
function subGoalOf(command: string): string {
  const m =
    /^(go to|open|take|move|heat|cool|clean|use|examine)\s+(.+?)(?:\s+(?:from|to|with)\s+(.+))?$/.exec(
      command,
    );
  if (!m) return `Do: ${command}`;
  const [, verb, what, where] = m;
  switch (verb) {
    case 'go to':
      return `Reach ${what}`;
    case 'open':
      return `Open ${what} to see inside`;
    case 'take':
      return `Pick up ${what}`;
    case 'move':
      return `Put ${what} in/on ${where}`;
    case 'use':
      return `Turn on ${what} to look at the held object`;
    default:
      return `${verb![0]!.toUpperCase()}${verb!.slice(1)} ${what}${where ? ` with ${where}` : ''}`;
  }
}

/**
 * The gold trace of a household task: one planner turn per expert command (the executor's call is
 * that command), the verifier CONTINUE until the last command and STOP after it, and a short report.
 */
export function householdTrace(task: HouseholdTask, demo: Demonstration): GoldTrace {
  if (demo.actions.length === 0)
    throw new Error(`gold trace of ${task.id}: the demonstration has no commands`);
  const n = demo.actions.length;
  const turns = demo.actions.map(
    (command, k): GoldTurn => ({
      planner: `<sub_goal>${subGoalOf(command)}</sub_goal><tool>${HOUSEHOLD_TOOL}</tool><context>command: ${command}</context>`,
      executor: `<tool_call>${JSON.stringify({ name: HOUSEHOLD_TOOL, arguments: { command } })}</tool_call>`,
      verifier:
        k === n - 1
          ? 'The last command completed the task. <verdict>STOP</verdict>'
          : `The task is not done yet. <verdict>CONTINUE</verdict>`,
    }),
  );
  const answer = `Task done in ${n} commands; the last was "${demo.actions[n - 1]}".`;
  return {
    taskId: task.id,
    query: renderHouseholdTask(task),
    analysis: `The task is ${task.kind.replaceAll('_', ' ')}; each household command is one step in the world.`,
    turns,
    generator: `<answer>${answer}</answer>`,
    answer,
  };
}
