/**
 * The `served` family (agent: 'served'): trains an agent the user already has (LangChain's
 * `createAgent` with `ChatOpenAI`, the OpenAI SDK, anything that speaks the OpenAI chat API) by
 * pointing it at a `stepwise serve` endpoint that records. This is Agent Lightning's split between
 * the agent's own code and the trainer, in TypeScript.
 *
 * Agent source ('agent', the default): the family starts a recording `PolicyServer` in this process
 * on the policy being trained, and runs the user's agent function once per trajectory, with the
 * endpoint's base URL and the rollout's headers (`x-stepwise-rollout`, `x-stepwise-group`). The
 * server records each completion as a step (token-exact, see src/serve/replies.ts); the agent
 * returns its reward (or posts it to /v1/rewards); the family turns the recorded steps into the
 * trajectory the trainer credits and trains. The server serves the trainer's `Policy` object, which
 * every update changes in place, so the agent's next rollouts use the updated policy (hot swap
 * without a reload). The trainer's sampling applies whatever the agent's requests ask: the loop's
 * temperature (0 in evaluations), `loop.maxTokens`, and seeds from the run's.
 *
 * Recorded source ('recorded'): no agent runs; each iteration trains on rewarded rollouts that
 * `stepwise serve --record <db>` stored in the run's store and that no iteration of this run holds
 * yet, up to `tasksPerIteration` groups (an iteration waits for none: it stops the run with a clear
 * error when none are left). Evaluations then need an agent function; without one they evaluate no
 * tasks.
 *
 * Tasks, SFT demonstrations and the tokenizer's text come from the env's own family (search and
 * codemath: the tool-QA family); the agent gets the env's tools (web_search, python) for its
 * trajectory, and `judge(answer)`, the env's verdict on a final answer.
 */
import { z } from 'zod';
import { runnerTool } from '../../agents/loops/rollout.ts';
import type { AgentStep, Trajectory } from '../../agents/record.ts';
import type { ChatMessage } from '../../agents/types.ts';
import { renderTask } from '../../envs/index.ts';
import type { Task } from '../../envs/types.ts';
import type { Policy } from '../../policy/policy.ts';
import { MemoryRecorder, type MemoryRollout, type ServedStep } from '../../serve/recorder.ts';
import { PolicyServer } from '../../serve/server.ts';
import { openStore, ServedLog, type ServedRolloutRow, type TrajectoryStore } from '../../store/index.ts';
import type { Tool } from '../../tools/types.ts';
import { mapConcurrent } from '../../util/concurrent.ts';
import { callSeed } from '../../util/random.ts';
import { parseConfigSection, type TrainConfig, TrainConfigError } from '../config.ts';
import type { FamilyHooks, TaskFamily } from '../family.ts';

/** What the user's agent function gets for one trajectory. */
export interface ServedAgentRun {
  task: Task;
  /** The task as the env words it (the question, the problem). */
  prompt: string;
  /** The recording endpoint: an OpenAI-compatible base URL (`.../v1`), any API key, this model id. */
  baseURL: string;
  apiKey: string;
  model: string;
  /** Send these headers with every request of this trajectory (they name its rollout and group). */
  headers: Record<string, string>;
  rollout: string;
  group: string;
  /** The env's tools for this trajectory (audited and limited by its tool runner). */
  tools: Tool[];
  /** The env's verdict on a final answer: its reward and whether it counts as won. */
  judge(answer: string): Promise<ServedOutcome>;
}

/** A trajectory's outcome, as the agent function returns it (or posts it to /v1/rewards). */
export interface ServedOutcome {
  reward: number;
  /** Default: reward > 0. */
  won?: boolean;
  /** One reward per recorded step (default: the reward on the last step). */
  stepRewards?: number[];
  /** Figures averaged in evaluations (search: f1, exact_match). */
  scores?: Record<string, number>;
}

/**
 * The user's agent: plays one trajectory through `run.baseURL` with `run.headers`, and returns its
 * outcome (a number is the reward), or nothing when it posted the reward to /v1/rewards itself.
 */
export type ServedAgent = (run: ServedAgentRun) => Promise<ServedOutcome | number | undefined>;

/** `agentOptions` of agent 'served'. */
export const ServedOptions = z.strictObject({
  /** 'agent': run the agent function per trajectory; 'recorded': train on rollouts in the store. */
  source: z.enum(['agent', 'recorded']).default('agent'),
  /** The model id the endpoint serves (what the agent's client names). */
  modelId: z.string().min(1).default('stepwise'),
  /** Trajectories played at once (their completions share the server's decode batches). */
  concurrency: z.number().int().min(1).default(8),
  /** Port of the in-process endpoint (0: a free one). */
  port: z.number().int().min(0).max(65535).default(0),
});
export type ServedOptions = z.output<typeof ServedOptions>;

/** The family of agent 'served' on `config.env`; `base` is the env's own family (tasks, SFT, tools). */
export function servedFamily(
  config: TrainConfig,
  hooks: FamilyHooks,
  base: TaskFamily,
  agent: ServedAgent | undefined,
): TaskFamily {
  const options = parseConfigSection(ServedOptions, config.agentOptions, 'agentOptions');
  if (options.source === 'agent' && !agent) {
    throw new TrainConfigError(
      'agent',
      "'served' with agentOptions.source 'agent' needs the agent function: pass it as TrainHooks.servedAgent " +
        "(or `export const agent` from the config module given to `stepwise train`), or set agentOptions.source: 'recorded'",
    );
  }
  const makeEnv = hooks.makeEnv ?? base.makeEnv;
  if (!makeEnv) {
    throw new TrainConfigError(
      'env',
      `agent 'served' needs an env with tools and answers (search or codemath)`,
    );
  }
  const recorder = new MemoryRecorder();
  let server: PolicyServer | undefined;
  let store: TrajectoryStore | undefined;
  let served = 0;
  const nonce = Date.now().toString(36);

  /** The endpoint on `policy` (the trained one, or the reference in the evaluation before). */
  const endpoint = async (policy: Policy) => {
    if (server && server.policy !== policy) {
      await server.close();
      server = undefined;
    }
    if (!server) {
      server = new PolicyServer(policy, { port: options.port, modelId: options.modelId }, recorder);
      await server.listen();
    }
    return server;
  };

  /** One trajectory of the agent on `task`, as the trajectory the trainer credits. */
  const play = async (
    srv: PolicyServer,
    task: Task,
    groupId: string,
    trajectoryId: string,
    sampling: { temperature: number; seed: number },
  ): Promise<Trajectory> => {
    const started = performance.now();
    const rollout = `${nonce}-${served++}`;
    const group = `${nonce}-${groupId}`;
    srv.setRolloutSampling(rollout, { ...sampling, maxTokens: config.loop.maxTokens });
    const { env, tools: runner } = makeEnv(config.env);
    let outcome: ServedOutcome;
    let ended: Trajectory['outcome'] | undefined;
    try {
      await env.reset(task.seed, task);
      runner?.reset();
      const tools = runner
        ? [...runner.tools.keys()].map((name) => runnerTool(runner, name, { shared: true }))
        : [];
      const judge = async (answer: string): Promise<ServedOutcome> => {
        const r = await env.step(`<answer>${answer}</answer>`);
        const scores = Object.fromEntries(
          Object.entries(r.info).filter((e): e is [string, number] => typeof e[1] === 'number'),
        );
        return { reward: r.reward, won: r.info.won, scores };
      };
      let returned: ServedOutcome | number | undefined;
      try {
        returned = await agent!({
          task,
          prompt: renderTask(task),
          baseURL: srv.url,
          apiKey: 'stepwise',
          model: options.modelId,
          headers: { 'x-stepwise-rollout': rollout, 'x-stepwise-group': group },
          rollout,
          group,
          tools,
          judge,
        });
      } catch (err) {
        // The conversation outgrew the context: the trajectory ends there, unrewarded (as the loops do).
        if (!isContextError(err)) {
          throw new Error(
            `the served agent failed on rollout ${rollout} (task ${task.id}): ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
        ended = 'context_limit';
        returned = 0;
      }
      const posted = recorder.rollout(rollout);
      if (returned === undefined) {
        if (posted?.reward === undefined) {
          throw new Error(
            `the served agent returned no outcome for rollout ${rollout} (task ${task.id}) and posted none to /v1/rewards`,
          );
        }
        outcome = { reward: posted.reward, won: posted.won, stepRewards: posted.stepRewards };
      } else {
        outcome = typeof returned === 'number' ? { reward: returned } : returned;
        if (posted && posted.reward === undefined) {
          if (outcome.stepRewards && outcome.stepRewards.length !== posted.steps) {
            throw new Error(
              `the served agent gave ${outcome.stepRewards.length} step rewards for rollout ${rollout}, which has ${posted.steps} steps`,
            );
          }
          recorder.setReward({ rollout, ...outcome });
        }
      }
    } finally {
      srv.setRolloutSampling(rollout, undefined);
      await runner?.close();
    }
    const recorded = recorder.rollout(rollout);
    recorder.delete(rollout);
    return trajectoryOf(recorded, outcome, {
      task,
      groupId,
      trajectoryId,
      ended,
      durationMs: performance.now() - started,
    });
  };

  const fromStore = (): Trajectory[] => {
    store ??= openStore(config.db);
    const pending = new ServedLog(store).rewarded({ untrainedBy: config.runId });
    const groups = [...new Set(pending.map((r) => r.group))].slice(0, config.tasksPerIteration);
    if (groups.length === 0) {
      throw new Error(
        `no rewarded rollouts are left in ${config.db} for run ${config.runId} to train on; record more with ` +
          '`stepwise serve --record` (x-stepwise-rollout headers, then POST /v1/rewards)',
      );
    }
    return pending.filter((r) => groups.includes(r.group)).map((r) => storedTrajectory(r, config.env));
  };

  return {
    task: base.task,
    demonstrations: (tasks) => base.demonstrations(tasks),
    tokenizerText: base.tokenizerText,
    sftExtras: base.sftExtras,
    makeEnv,
    async rollout(policy, request) {
      const evaluation = request.purpose === 'eval';
      if (options.source === 'recorded' && !evaluation) return fromStore();
      if (!agent) return [];
      const srv = await endpoint(policy);
      const jobs = request.tasks.flatMap((task, k) =>
        Array.from({ length: request.groupSize }, (_, j) => ({ task, k, j })),
      );
      return mapConcurrent(
        jobs,
        async ({ task, k, j }) => {
          const t = await play(srv, task, `${task.id}#${k}`, String(j), {
            temperature: request.temperature,
            seed: callSeed(request.seed, task.seed, k, j),
          });
          request.onTrajectory?.(t);
          return t;
        },
        options.concurrency,
      );
    },
    scores: (t) => {
      const s = t.steps.at(-1)?.extras.scores;
      return s && typeof s === 'object' && !Array.isArray(s) ? (s as Record<string, number>) : {};
    },
    async close() {
      await server?.close();
      store?.close();
      await base.close?.();
    },
  };
}

function isContextError(err: unknown): boolean {
  const e = err as { code?: unknown; error?: { code?: unknown }; message?: unknown } | undefined;
  return (
    e?.code === 'context_length_exceeded' ||
    e?.error?.code === 'context_length_exceeded' ||
    (typeof e?.message === 'string' && e.message.includes('maximum context length'))
  );
}

/** The recorded steps of a rollout and its outcome as a trajectory (steps valid; the last is done). */
function trajectoryOf(
  recorded: MemoryRollout | undefined,
  outcome: ServedOutcome,
  meta: {
    task: Task;
    groupId: string;
    trajectoryId: string;
    ended?: Trajectory['outcome'];
    durationMs: number;
  },
): Trajectory {
  const list = recorded?.stepList ?? [];
  const won = outcome.won ?? outcome.reward > 0;
  const steps: AgentStep[] = list.map((s, i) => {
    const last = i === list.length - 1;
    return {
      stepIndex: s.stepIndex,
      role: 'agent',
      model: `served:${s.model}`,
      messages: s.messages,
      promptText: s.promptText,
      promptTokens: s.promptTokens,
      responseText: s.responseText,
      responseTokens: s.responseTokens,
      responseLogprobs: s.responseLogprobs,
      toolCalls: s.toolCalls,
      action: undefined,
      observation: '',
      anchor: s.anchor,
      envReward: outcome.stepRewards?.[i] ?? (last ? outcome.reward : 0),
      valid: true,
      done: last,
      audit: [],
      extras: {
        rollout: s.rollout,
        finishReason: s.finishReason,
        reencoded: s.reencoded,
        ...(last && outcome.scores ? { scores: outcome.scores } : {}),
      },
    };
  });
  return {
    groupId: meta.groupId,
    trajectoryId: meta.trajectoryId,
    task: meta.task,
    seed: meta.task.seed,
    steps,
    outcome: meta.ended ?? (won ? 'won' : 'answered'),
    won,
    episodeReturn: outcome.reward,
    durationMs: meta.durationMs,
  };
}

/** A rollout `stepwise serve --record` stored, as a trajectory of a task named after its group. */
function storedTrajectory(r: ServedRolloutRow, env: string): Trajectory {
  const task: Task = { env, id: `served/${r.group}`, kind: 'served', split: 'train', seed: 0, payload: {} };
  const recorded: MemoryRollout = {
    rollout: r.rollout,
    group: r.group,
    steps: r.steps.length,
    reward: r.reward,
    won: r.won,
    stepRewards: r.stepRewards,
    stepList: r.steps.map((s) => ({
      ...s,
      messages: s.messages as unknown as ChatMessage[],
      toolCalls: s.toolCalls as unknown as AgentStep['toolCalls'],
      finishReason: s.finishReason as ServedStep['finishReason'],
    })),
  };
  // The trainer's group and trajectory keys are the served ones, which marks them trained (served.ts).
  return trajectoryOf(
    recorded,
    { reward: r.reward, won: r.won, stepRewards: r.stepRewards },
    { task, groupId: r.group, trajectoryId: r.rollout, durationMs: 0 },
  );
}
