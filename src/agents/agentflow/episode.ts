/**
 * AgentFlow on an env: the env's first observation is the query, the modules work with the env's
 * tools (through the episode's ToolRunner, so the run's tool policy and audit apply), and the
 * generator's answer goes to the env as `<answer>...</answer>`, which judges it. The trajectory is
 * the loops' `Trajectory`: one step per module call, so `recordIteration` writes it like any other.
 *
 * Every planner step is a Flow-GRPO sample: it carries the trajectory's outcome as
 * `extras.outcomeReward` (every step does, so the rows of a trajectory agree).
 */
import { createExpert } from '../../envs/index.ts';
import type { Env, StepResult, Task } from '../../envs/types.ts';
import { callSeed } from '../../util/random.ts';
import { type GroupRolloutOptions, rolloutGroups } from '../loops/rollout.ts';
import { type Episode, finish, responseFields } from '../loops/shared.ts';
import type { AgentStep, Trajectory, TrajectoryOutcome } from '../record.ts';
import type { ChatMessage } from '../types.ts';
import { AgentFlowConfig, type AgentFlowConfigInput } from './config.ts';
import { type GoldTrace, goldModels, goldTrace } from './gold.ts';
import { admissibleLine, type HouseholdWorldLog, householdRunner } from './household.ts';
import { type AgentFlowModules, type AgentFlowResult, type AgentFlowStep, runAgentFlow } from './loop.ts';
import { parseVerdict } from './prompts.ts';

export interface AgentFlowTrajectory extends Trajectory {
  /** The loop's own account: analysis, memory, stop reason, answer. */
  flow: AgentFlowResult;
}

/**
 * Runs one AgentFlow trajectory on `env` and judges it there. Search and code/math: the generator's
 * answer goes to the env as `<answer>...</answer>`. Household: the world is the planner's tool
 * (see household.ts), so the env is stepped by the executor's calls, the win is the goal holding
 * after one of them, and the generator's answer is a report nothing judges.
 */
export async function runAgentFlowEpisode(
  env: Env,
  modules: AgentFlowModules,
  episode: Episode,
  config: AgentFlowConfigInput = {},
): Promise<AgentFlowTrajectory> {
  const started = performance.now();
  const household = env.name === 'household';
  if (!household && !episode.tools) {
    throw new Error(
      `runAgentFlowEpisode: the episode has no tools; expected a ToolRunner with the ${env.name} env's tools (see agentEnvMaker)`,
    );
  }
  const first = await env.reset(episode.seed, episode.task);
  const task = env.task as Task;
  // Household's tool is bound to this trajectory's env, so its runner is made here (under the
  // policy of the episode's runner, when there is one).
  const world = household ? householdRunner(env, episode.tools?.policy) : undefined;
  const tools = world?.runner ?? episode.tools!;
  await tools.reset();
  const query = household ? `${first}\n${admissibleLine(env)}` : first;
  const trajectoryId = episode.trajectoryId ?? '0';
  const flow = await runAgentFlow(query, modules, {
    tools,
    config: household ? { ...config, maxTurns: AgentFlowConfig.parse(config).householdMaxTurns } : config,
    // Per trajectory: the G rollouts of a group sample differently, reruns the same.
    seed: callSeed('agentflow', episode.seed, trajectoryId),
  });
  const judged = world
    ? householdJudgement(world.log)
    : await env.step(`<answer>${flow.answer ?? ''}</answer>`);
  const action = world ? (flow.answer ?? '') : `<answer>${flow.answer ?? ''}</answer>`;
  // Household rewards come from the env steps the executor calls made, in call order.
  const worldSteps = world ? [...world.log.calls] : [];

  const models: Record<string, AgentFlowModules[keyof AgentFlowModules]> = {
    ...modules,
    analyzer: modules.analyzer ?? modules.planner,
  };
  let anchor = query;
  const steps: AgentStep[] = flow.steps.map((s, stepIndex) => {
    const record = flow.memory.find((m) => m.turn === s.turn);
    const isGenerator = s.role === 'generator';
    const stepped = world && s.role === 'executor' && s.toolCalls?.[0]?.ok ? worldSteps.shift() : undefined;
    const step: AgentStep = {
      stepIndex,
      role: s.role,
      ...responseFields(models[s.role]!, s.messages, s.response),
      action: isGenerator ? action : s.role === 'executor' ? record?.command : undefined,
      observation: observationOf(s, record?.result, judged.observation),
      anchor,
      envReward: world ? (stepped?.reward ?? 0) : isGenerator ? judged.reward : 0,
      valid: s.valid,
      done: false,
      audit: s.toolCalls ?? [],
      extras: {
        turn: s.turn,
        outcomeReward: judged.reward,
        ...(s.error !== undefined ? { invalidReason: s.error } : {}),
        ...(isGenerator ? { stopReason: flow.stopReason } : {}),
      },
    };
    // The next turn decides on what this turn's tool returned (the raw observation, no memory).
    if (s.role === 'verifier' && record) anchor = record.result;
    return step;
  });
  const outcome: TrajectoryOutcome = judged.info.won
    ? 'won'
    : flow.stopReason === 'time_limit' || flow.stopReason === 'context_limit'
      ? flow.stopReason
      : (world ? flow.stopReason === 'verifier_stop' : flow.answer !== undefined)
        ? 'answered'
        : 'turn_limit';
  const trajectory = finish({ ...episode, task, trajectoryId }, steps, outcome, started);
  return { ...trajectory, flow };
}

/**
 * A household trajectory's judgement: won when the goal held after some command; its reward (every
 * step's `outcomeReward`, Flow-GRPO's outcome) is the env's return, HOUSEHOLD_WIN_REWARD or 0.
 */
function householdJudgement(log: HouseholdWorldLog): Pick<StepResult, 'observation' | 'reward' | 'info'> {
  const reward = log.calls.reduce((sum, r) => sum + (r?.reward ?? 0), 0);
  return {
    observation: log.won ? 'The goal holds.' : 'The goal does not hold.',
    reward,
    info: { won: log.won, valid: true },
  };
}

/** What a step's decision led to, as the viewer shows it beside the step. */
function observationOf(step: AgentFlowStep, result: string | undefined, judged: string): string {
  switch (step.role) {
    case 'planner':
    case 'executor':
      return result ?? '';
    case 'verifier':
      return parseVerdict(step.response.text) ?? '(no verdict)';
    case 'generator':
      return judged;
    default:
      return '';
  }
}

export interface AgentFlowRolloutOptions extends GroupRolloutOptions {
  modules: AgentFlowModules;
  config?: AgentFlowConfigInput;
}

/**
 * Rolls out `groupSize` AgentFlow trajectories of every task (see `rolloutGroups`: in task order,
 * stopping at the first error); household needs no tools from the env maker, its world is the tool.
 * Concurrent planner calls share decode batches.
 */
export function rolloutAgentFlow(options: AgentFlowRolloutOptions): Promise<AgentFlowTrajectory[]> {
  return rolloutGroups(options, 'rolloutAgentFlow', (env, episode) =>
    runAgentFlowEpisode(env, options.modules, episode, options.config),
  );
}

/** One supervised example: a module's prompt and the reply it should give. */
export interface GoldSample {
  role: string;
  messages: ChatMessage[];
  reply: string;
}

/**
 * Replays the gold trace of the episode's task (from its env's expert) through the real loop and
 * returns the trajectory and its SFT samples: every module's actual prompt (memory with the real
 * tool results) beside its gold reply. The training issue warm-starts all four roles on these.
 */
export async function replayGold(
  env: Env,
  episode: Episode & { task: Task },
  config: AgentFlowConfigInput = {},
): Promise<{ trace: GoldTrace; trajectory: AgentFlowTrajectory; samples: GoldSample[] }> {
  const trace = goldTrace(episode.task, createExpert(episode.task.env).demonstrate(episode.task));
  const parsed = AgentFlowConfig.parse(config);
  const [maxTurns, field] =
    episode.task.env === 'household'
      ? [parsed.householdMaxTurns, 'householdMaxTurns']
      : [parsed.maxTurns, 'maxTurns'];
  if (trace.turns.length > maxTurns) {
    throw new Error(
      `replayGold: the gold trace of ${trace.taskId} has ${trace.turns.length} turns but ${field} is ${maxTurns}; raise ${field}`,
    );
  }
  const trajectory = await runAgentFlowEpisode(env, goldModels(trace), episode, config);
  const samples = trajectory.steps.map((s) => ({
    role: s.role,
    messages: s.messages,
    reply: s.responseText,
  }));
  return { trace, trajectory, samples };
}
