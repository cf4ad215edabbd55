/**
 * Rolling out many trajectories at once. Each trajectory gets its own env (and tool runner), and
 * all of them run concurrently, so a `PolicyChatModel` sees their model calls together and decodes
 * them in shared batches; tool calls of one trajectory overlap the others' generation.
 */
import type { z } from 'zod';
import { CodeMathEnv } from '../../envs/codemath/env.ts';
import { HouseholdEnv } from '../../envs/household/env.ts';
import type { EnvOptions } from '../../envs/index.ts';
import { SearchEnv, SearchEnvConfig } from '../../envs/search/env.ts';
import { EncyclopediaQA, type QASource } from '../../envs/search/generator.ts';
import type { Env, Task } from '../../envs/types.ts';
import { ToolRunner, type ToolRunnerOptions } from '../../tools/policy.ts';
import { pythonTool } from '../../tools/python/tool.ts';
import type { Tool } from '../../tools/types.ts';
import { webSearchTool } from '../../tools/web-search.ts';
import { checkConcurrency, mapConcurrent } from '../../util/concurrent.ts';
import type { Trajectory } from '../record.ts';
import type { ChatModel } from '../types.ts';
import { type CodeMathLoopOptions, runCodeMath } from './codemath.ts';
import { type HouseholdLoopOptions, runHousehold } from './household.ts';
import { runSearch, type SearchLoopOptions } from './search.ts';
import type { Episode } from './shared.ts';

/** The single-agent loop of each env. */
export const LOOPS = {
  household: runHousehold,
  search: runSearch,
  codemath: runCodeMath,
} as const;
export type LoopName = keyof typeof LOOPS;

/** Options of each loop, by env name. */
export interface LoopOptionsByEnv {
  household?: z.input<typeof HouseholdLoopOptions>;
  search?: z.input<typeof SearchLoopOptions>;
  codemath?: z.input<typeof CodeMathLoopOptions>;
}

/** Runs the loop of `env.name` (household, search or codemath) for one trajectory. */
export function runLoop(env: Env, model: ChatModel, episode: Episode, options: LoopOptionsByEnv = {}) {
  switch (env.name) {
    case 'household':
      return runHousehold(env as never, model, episode as never, options.household);
    case 'search':
      return runSearch(env as never, model, episode as never, options.search);
    case 'codemath':
      return runCodeMath(env as never, model, episode as never, options.codemath);
    default:
      throw new Error(
        `no agent loop for env "${env.name}" (expected one of: ${Object.keys(LOOPS).join(', ')})`,
      );
  }
}

/**
 * A tool that calls `name` through `runner`, so that calls an env makes are checked by the run's
 * tool policy and audited like an agent's own. `reset` starts the runner's next trajectory;
 * `close` closes the runner's tools unless `shared` says someone else owns them.
 */
export function runnerTool(runner: ToolRunner, name: string, options: { shared?: boolean } = {}): Tool {
  const tool = runner.tools.get(name);
  if (!tool) {
    throw new Error(
      `runnerTool: the runner has no tool "${name}" (have: ${[...runner.tools.keys()].join(', ')})`,
    );
  }
  return {
    name,
    description: tool.description,
    schema: tool.schema,
    limits: tool.limits,
    execute: (input, ctx) => runner.call(name, input, ctx),
    reset: () => runner.reset(),
    close: async () => {
      if (!options.shared) await runner.close();
    },
  };
}

/** An env for one trajectory, with the runner its tools go through (fresh per trajectory). */
export interface AgentEnv {
  env: Env;
  tools?: ToolRunner;
}

/**
 * The default env maker: the env of `name` with its tools behind a `ToolRunner` (web_search over
 * the source's index for search, a sandboxed Python for code/math). Share one maker across the
 * trajectories of a rollout: it builds the search source once.
 */
export function agentEnvMaker(
  options: EnvOptions & { toolPolicy?: ToolRunnerOptions['policy'] } = {},
): (name: string) => AgentEnv {
  let source: QASource | undefined = options.deps?.source;
  return (name) => {
    switch (name) {
      case 'household':
        return { env: new HouseholdEnv(options.household) as unknown as Env };
      case 'search': {
        const config = SearchEnvConfig.parse(options.search ?? {});
        source ??= new EncyclopediaQA(config.encyclopedia);
        const search =
          options.deps?.search ?? webSearchTool({ index: source.index(), defaultK: config.topK });
        const tools = new ToolRunner([search], { policy: options.toolPolicy });
        const env = new SearchEnv(config, { source, search: runnerTool(tools, search.name) });
        return { env: env as unknown as Env, tools };
      }
      case 'codemath': {
        const shared = options.deps?.python !== undefined;
        const python = options.deps?.python ?? pythonTool();
        const tools = new ToolRunner([python], { policy: options.toolPolicy });
        const env = new CodeMathEnv(options.codemath, { python: runnerTool(tools, python.name, { shared }) });
        return { env: env as unknown as Env, tools };
      }
      default:
        throw new Error(`no agent env "${name}" (expected one of: ${Object.keys(LOOPS).join(', ')})`);
    }
  };
}

let defaultMaker: ((name: string) => AgentEnv) | undefined;

/**
 * The env maker rollouts use when given none: one `agentEnvMaker()` for the process, kept across
 * rollouts so that the search encyclopedia and its index are built once.
 */
export function sharedEnvMaker(): (name: string) => AgentEnv {
  defaultMaker ??= agentEnvMaker();
  return defaultMaker;
}

/** What every rollout takes: the tasks, G, the env maker and the bound on trajectories in flight. */
export interface GroupRolloutOptions {
  tasks: readonly Task[];
  /** G: trajectories per task (a group; they share the task and its seed). */
  groupSize?: number;
  /** Makes the env of one trajectory (default `sharedEnvMaker()`). */
  makeEnv?: (name: string) => AgentEnv;
  /** Trajectories in flight at once (default: all of them). */
  concurrency?: number;
  /**
   * Only these members of each group (indices in 0..groupSize-1; default all): a distributed
   * worker plays one sample of a group, with the same seeds and ids as when the whole group runs.
   */
  samples?: readonly number[];
}

/**
 * Plays `groupSize` trajectories of every task with `play`, concurrently, and returns them in order
 * (task by task). Trajectory j of a task has groupId = the task's id and trajectoryId = String(j),
 * and an env of its own, closed after its trajectory. The first error (a model server down, say)
 * fails the rollout: no new trajectory starts, and the error is thrown once those in flight have
 * ended. `owner` names the caller in option errors.
 */
export async function rolloutGroups<T>(
  options: GroupRolloutOptions,
  owner: string,
  play: (env: Env, episode: Episode & { task: Task }) => Promise<T>,
): Promise<T[]> {
  const groupSize = options.groupSize ?? 1;
  if (!Number.isInteger(groupSize) || groupSize < 1) {
    throw new Error(`${owner}: groupSize must be a positive integer, got ${options.groupSize}`);
  }
  checkConcurrency(options.concurrency, owner);
  const makeEnv = options.makeEnv ?? sharedEnvMaker();
  const samples = options.samples ?? Array.from({ length: groupSize }, (_, j) => j);
  for (const j of samples) {
    if (!Number.isInteger(j) || j < 0 || j >= groupSize) {
      throw new Error(
        `${owner}: samples must be integers in 0..${groupSize - 1} (groupSize ${groupSize}), got ${j}`,
      );
    }
  }
  const episodes = options.tasks.flatMap((task) => samples.map((j) => ({ task, j })));
  return mapConcurrent(
    episodes,
    async ({ task, j }) => {
      const { env, tools } = makeEnv(task.env);
      try {
        return await play(env, { task, seed: task.seed, groupId: task.id, trajectoryId: String(j), tools });
      } finally {
        // A code/math env closes its Python tool (and so the runner); others have nothing to close but tools.
        if (env.close) await env.close();
        else await tools?.close();
      }
    },
    options.concurrency,
  );
}

export interface RolloutOptions extends GroupRolloutOptions {
  model: ChatModel;
  /** Each loop's options. */
  loops?: LoopOptionsByEnv;
  /** Called as each trajectory finishes (progress). */
  onTrajectory?: (trajectory: Trajectory) => void;
}

/** Rolls out `groupSize` single-agent trajectories of every task (see `rolloutGroups`). */
export function rollout(options: RolloutOptions): Promise<Trajectory[]> {
  return rolloutGroups(options, 'rollout', async (env, episode) => {
    const trajectory = await runLoop(env, options.model, episode, options.loops);
    options.onTrajectory?.(trajectory);
    return trajectory;
  });
}
