/**
 * The AgentFlow family: AgentFlow (analyzer, planner, executor, verifier, generator around an
 * evolving memory) on search QA and code/math, the household world too. Flow-GRPO trains the
 * planner only: every planner call is a sample carrying its trajectory's final outcome (1 won,
 * else 0); the other modules' steps are recorded but never trained.
 *
 * SFT warm-starts every role on one policy: the gold trace of each task replayed through the real
 * loop gives each module's actual prompt beside its gold reply (`replayGold`).
 *
 * Modules run on the local policy (the planner samples, the others are greedy), or, with
 * `agentOptions.endpoint`, the executor, verifier, generator and analyzer call an
 * OpenAI-compatible endpoint (a `stepwise serve`, vLLM, a hosted model) while the planner stays on
 * the local policy being trained.
 *
 * With `policy.adapters` (an adapter per role on one Hugging Face base), each module runs on its
 * role's adapter (the analyzer on the planner's unless it has its own; a role without one on the
 * base), SFT trains each trainable adapter on its own role's demonstrations, and Flow-GRPO updates
 * the planner's adapter only, so the frozen modules stay exactly as they were.
 */
import { z } from 'zod';
import {
  AgentFlowConfig,
  type AgentFlowModules,
  replayGold,
  rolloutAgentFlow,
} from '../../agents/agentflow/index.ts';
import { OpenAIChatModel } from '../../agents/chat/openai-chat-model.ts';
import { PolicyChatModel } from '../../agents/chat/policy-chat-model.ts';
import { type AgentEnv, agentEnvMaker, rolloutGroups, runnerTool } from '../../agents/loops/rollout.ts';
import type { AgentStep, Trajectory } from '../../agents/record.ts';
import type { ChatModel } from '../../agents/types.ts';
import { CodeMathEnv } from '../../envs/codemath/env.ts';
import { CodeMathGenerator } from '../../envs/codemath/generator.ts';
import { HouseholdGenerator } from '../../envs/household/generator.ts';
import { EncyclopediaQA, type SearchTask } from '../../envs/search/generator.ts';
import { wordF1 } from '../../envs/search/metrics.ts';
import type { Env, Split, Task } from '../../envs/types.ts';
import type { Policy } from '../../policy/policy.ts';
import { ToolRunner } from '../../tools/policy.ts';
import { PythonPool } from '../../tools/python/pool.ts';
import { PythonTool } from '../../tools/python/tool.ts';
import { SearchIndex } from '../../tools/search/index.ts';
import { webSearchTool } from '../../tools/web-search.ts';
import { callSeed } from '../../util/random.ts';
import { parseConfigSection, type TrainConfig, TrainConfigError } from '../config.ts';
import { creditRows, type Demonstrated, type FamilyHooks, type TaskFamily } from '../family.ts';
import { CodeMathFamilyOptions, replyAccuracy, SearchFamilyOptions } from './tool-qa.ts';

export const AGENTFLOW_ENVS = ['search', 'codemath', 'household'] as const;

/** The OpenAI-compatible endpoint the frozen modules call. */
export const AgentFlowEndpoint = z.strictObject({
  /** e.g. http://127.0.0.1:8000/v1 for a local `stepwise serve`. */
  baseURL: z.string().url(),
  /** The model id the endpoint serves. */
  model: z.string().min(1),
  /** Default: OPENAI_API_KEY, else a placeholder (a local server accepts any key). */
  apiKey: z.string().min(1).optional(),
});

/**
 * `agentOptions` of an AgentFlow run: the AgentFlow config, with defaults that keep a turn's
 * prompts inside a tiny policy's 512 tokens, plus where the frozen modules run and which envs the
 * tasks come from.
 */
export const AgentFlowTrainOptions = AgentFlowConfig.extend({
  /**
   * Characters of a tool result the memory keeps. 240 (AgentFlow's default is 600): with search's
   * two results per query, nearly every gold replay's prompt fits 512 tokens, three-hop ones too.
   */
  memoryChars: z.number().int().min(16).default(240),
  /**
   * The envs tasks are drawn from, alternating by seed (evaluation seeds 0..n-1 split evenly);
   * default: the config's env alone.
   */
  envs: z.array(z.enum(AGENTFLOW_ENVS)).min(1).optional(),
  /**
   * Options per env, over the config's `envOptions` (which are the config env's): search and
   * code/math take the tool-loop families' options (search: topK, snippetChars, kinds...).
   */
  envOptions: z
    .strictObject({
      search: z.record(z.string(), z.unknown()).optional(),
      codemath: z.record(z.string(), z.unknown()).optional(),
      household: z.record(z.string(), z.unknown()).optional(),
    })
    .default({}),
  /** Executor, verifier, generator and analyzer on this endpoint; the planner stays local. */
  endpoint: AgentFlowEndpoint.optional(),
  /** Replays run at once while the demonstrations are made (code/math waits on its sandboxes). */
  replayConcurrency: z.number().int().min(1).default(4),
}).strict();
export type AgentFlowTrainOptions = z.output<typeof AgentFlowTrainOptions>;
export type AgentFlowTrainOptionsInput = z.input<typeof AgentFlowTrainOptions>;

/** `agentOptions` parsed; a bad one is a TrainConfigError naming `agentOptions.<field>`. */
export function parseAgentFlowOptions(input: unknown): AgentFlowTrainOptions {
  return parseConfigSection(AgentFlowTrainOptions, input, 'agentOptions', ' (agent agentflow)');
}

/** The model calls of `model` with their seeds mixed with `seed` (the rollout request's), so iterations sample afresh. */
function reseeded(model: ChatModel, seed: number): ChatModel {
  return {
    name: model.name,
    chat: (messages, options = {}) =>
      model.chat(messages, { ...options, seed: callSeed(seed, options.seed ?? '') }),
  };
}

/** Fraction of `samples` per role, for logs: "planner 40/42, executor 40/40". */
export function rolesSummary(kept: readonly Demonstrated[], all: readonly Demonstrated[]): string {
  const count = (xs: readonly Demonstrated[]) => {
    const n = new Map<string, number>();
    for (const d of xs) n.set(d.role ?? '-', (n.get(d.role ?? '-') ?? 0) + 1);
    return n;
  };
  const k = count(kept);
  return [...count(all)].map(([role, n]) => `${role} ${k.get(role) ?? 0}/${n}`).join(', ');
}

export function agentflowFamily(config: TrainConfig, hooks: FamilyHooks = {}): TaskFamily {
  const options = parseAgentFlowOptions(config.agentOptions);
  const envs = options.envs ?? [config.env];
  const { envs: _envs, envOptions: perEnv, endpoint, replayConcurrency, ...flowConfig } = options;
  /** An env's options: the config's (for the config's env) under `agentOptions.envOptions`. */
  const optionsOf = (name: (typeof AGENTFLOW_ENVS)[number]): Record<string, unknown> => ({
    ...(name === config.env ? config.envOptions : {}),
    ...perEnv[name],
  });
  const field = (name: string) =>
    name === config.env && !perEnv[name] ? 'envOptions' : `agentOptions.envOptions.${name}`;
  // Checked now, so a bad option stops the run before any work.
  const search = envs.includes('search')
    ? parseConfigSection(SearchFamilyOptions, optionsOf('search'), field('search'))
    : undefined;
  const codemath = parseConfigSection(
    CodeMathFamilyOptions,
    envs.includes('codemath') ? optionsOf('codemath') : {},
    field('codemath'),
  );
  const household = optionsOf('household');

  // Built on first use: the encyclopedia's index and the Python sandboxes cost seconds.
  let source: EncyclopediaQA | undefined;
  let searchMaker: ((name: string) => AgentEnv) | undefined;
  let pool: PythonPool | undefined;
  let replayPool: PythonPool | undefined;
  const searchSource = () => {
    source ??= new EncyclopediaQA(search!.encyclopedia);
    return source;
  };
  let codemathGenerator: CodeMathGenerator | undefined;
  let householdGenerator: HouseholdGenerator | undefined;
  /** The task of an env; `seed` is the env's own (the family's seed divided among the envs). */
  const envTask = (env: (typeof AGENTFLOW_ENVS)[number], split: Split, seed: number): Task => {
    switch (env) {
      case 'search':
        return searchSource().generate(split, seed, search!.kinds[seed % search!.kinds.length]) as Task;
      case 'codemath':
        codemathGenerator ??= new CodeMathGenerator(codemath);
        return codemathGenerator.generate(split, seed) as Task;
      case 'household':
        householdGenerator ??= new HouseholdGenerator(household);
        return householdGenerator.generate(split, seed) as Task;
    }
  };
  const task =
    hooks.tasks ??
    ((split: Split, seed: number): Task =>
      envTask(envs[seed % envs.length]!, split, Math.floor(seed / envs.length)));

  /** Envs whose Python interpreters come from `pythonPool` (one per trajectory; closing the env returns it). */
  const envMaker =
    (pythonPool: () => PythonPool) =>
    (name: string): AgentEnv => {
      if (name === 'codemath') {
        const tools = new ToolRunner([
          new PythonTool({ pool: pythonPool(), limits: { timeMs: 10_000, outputChars: 2_000 } }),
        ]);
        const env = new CodeMathEnv(codemath, { python: runnerTool(tools, 'python') });
        return { env: env as unknown as Env, tools };
      }
      if (name === 'search') {
        if (!searchMaker) {
          const { snippetChars, kinds: _kinds, ...envConfig } = search!;
          const index = SearchIndex.build(searchSource().encyclopedia.documents, { snippetChars });
          const tool = webSearchTool({ index, defaultK: envConfig.topK });
          searchMaker = agentEnvMaker({ search: envConfig, deps: { source: searchSource(), search: tool } });
        }
        return searchMaker(name);
      }
      return agentEnvMaker({ household })(name);
    };
  const makeEnv =
    hooks.makeEnv ??
    envMaker(() => {
      pool ??= new PythonPool({ size: 2, announce: false });
      return pool;
    });
  // Gold replays run only the expert's own programs, so their interpreters are reused: a fresh one
  // per code/math replay costs a process start (about a second), which made a fresh stream of
  // demonstrations (sft.fresh) spend most of SFT in sandboxes.
  const replayEnv =
    hooks.makeEnv ??
    envMaker(() => {
      replayPool ??= new PythonPool({ size: replayConcurrency, announce: false, reuse: true });
      return replayPool;
    });

  const frozen: ChatModel | undefined = endpoint
    ? new OpenAIChatModel({
        model: endpoint.model,
        baseURL: endpoint.baseURL,
        apiKey: endpoint.apiKey ?? process.env.OPENAI_API_KEY ?? 'unused',
        // Frozen modules are never trained: their log-probs are not needed (and some hosts refuse them).
        logprobs: false,
      })
    : undefined;

  const isPlanner = (s: AgentStep) => s.role === 'planner';

  const adapters = config.policy.adapters ? new Set(Object.keys(config.policy.adapters)) : undefined;
  if (adapters && endpoint) {
    const local = [...adapters].filter((a) => a !== 'planner' && a !== 'analyzer');
    if (local.length > 0) {
      throw new TrainConfigError(
        'agentOptions.endpoint',
        `puts the executor, verifier and generator on an endpoint, but policy.adapters has ${local.join(', ')}; ` +
          'give one or the other',
      );
    }
  }
  /** The adapter a role runs on (undefined: the base model). */
  const adapterOf = (role: string | undefined): string | undefined => {
    if (!adapters || role === undefined) return undefined;
    if (adapters.has(role)) return role;
    return role === 'analyzer' && adapters.has('planner') ? 'planner' : undefined;
  };
  /** The policy a role's module calls: its adapter, the base, or (without adapters) the one policy. */
  const roleModel = (policy: Policy, role: string): ChatModel => {
    if (policy.adapterNames.length === 0)
      return new PolicyChatModel(policy, { name: 'policy', temperature: 0 });
    const name = adapterOf(role);
    return name
      ? new PolicyChatModel(policy.adapter(name), { name, temperature: 0 })
      : new PolicyChatModel(policy.base, { name: 'base', temperature: 0 });
  };

  const demonstrations = async (tasks: readonly Task[]): Promise<Demonstrated[]> => {
    const out = await rolloutGroups(
      { tasks, makeEnv: replayEnv, concurrency: replayConcurrency },
      'agentflow demonstrations',
      async (env, episode) => (await replayGold(env, episode, flowConfig)).samples,
    );
    return out.flat().map((s) => ({ messages: s.messages, reply: s.reply, role: s.role }));
  };

  return {
    task,
    demonstrations,

    async sftExtras() {
      if (config.sft.selectTasks === 0) return {};
      // valid-seen seeds of their own: neither SFT's validation nor the evaluations see them
      const held = await demonstrations(
        Array.from({ length: config.sft.selectTasks }, (_, k) => task('valid-seen', 1_100_000 + k)),
      );
      // Every module's gold reply is one exact text (a query, a program, an answer): a reply is
      // right when it is that text; the cap is the longest module's.
      const options = {
        maxTokens: Math.max(...Object.values(flowConfig.sampling).map((m) => m.maxTokens)),
        kind: (d: Demonstrated) => d.role ?? '-',
        same: (got: string, want: string) => got.trim() === want.trim(),
      };
      return { select: async (policy) => (await replyAccuracy(policy, held, options)).accuracy };
    },

    async rollout(policy, request) {
      const planner = reseeded(roleModel(policy, 'planner'), request.seed);
      const module = (role: string) => frozen ?? roleModel(policy, role);
      const modules: AgentFlowModules = {
        planner,
        executor: module('executor'),
        verifier: module('verifier'),
        generator: module('generator'),
        analyzer: frozen ?? roleModel(policy, 'analyzer'),
      };
      const trajectories = await rolloutAgentFlow({
        modules,
        tasks: request.tasks,
        groupSize: request.groupSize,
        samples: request.samples,
        config: {
          ...flowConfig,
          sampling: {
            ...flowConfig.sampling,
            planner: { ...flowConfig.sampling.planner, temperature: request.temperature },
          },
        },
        makeEnv,
      });
      for (const t of trajectories) request.onTrajectory?.(t);
      return trajectories;
    },

    trainable: isPlanner,
    adapterOf,
    ...(adapters ? { trainedAdapter: 'planner' } : {}),

    async creditRows(trajectories) {
      const trained = (s: AgentStep) => isPlanner(s) && s.responseTokens.length > 0;
      const won = new Map(trajectories.map((t) => [`${t.groupId}|${t.trajectoryId}`, t.won ? 1 : 0]));
      return creditRows(trajectories, trained).map((row) => ({
        ...row,
        outcomeReward: won.get(`${row.groupId}|${row.trajectoryId}`)!,
      }));
    },

    scores(t: Trajectory) {
      const out: Record<string, number> = { accuracy: t.won ? 1 : 0 };
      if (t.task.env === 'search') {
        const answer = (t as Trajectory & { flow?: { answer?: string } }).flow?.answer ?? '';
        out.f1 = wordF1(answer, (t.task as SearchTask).payload.answers);
      }
      return out;
    },

    async close() {
      await pool?.close();
      await replayPool?.close();
    },
  };
}
