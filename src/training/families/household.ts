/**
 * The household family: the household ReAct loop (one user message with the task, the last H
 * steps, the observation and the admissible commands) on the household world. The expert's
 * demonstrations (the exploring expert's: it searches where the object may be) are prompted
 * exactly as the loop prompts the policy.
 */
import { PolicyChatModel } from '../../agents/chat/policy-chat-model.ts';
import { agentEnvMaker, rollout } from '../../agents/loops/rollout.ts';
import { type HouseholdTurn, householdMessages, type PromptFormat } from '../../agents/prompts/household.ts';
import { HOUSEHOLD_WIN_REWARD } from '../../envs/household/env.ts';
import { HouseholdExpert } from '../../envs/household/expert.ts';
import type { HouseholdTask } from '../../envs/household/generator.ts';
import { HouseholdGenerator } from '../../envs/household/generator.ts';
import type { Env, Expert, Split, Task } from '../../envs/types.ts';
import type { Policy } from '../../policy/policy.ts';
import type { TrainConfig } from '../config.ts';
import type { EvalResult } from '../context.ts';
import type { Demonstrated, FamilyHooks, TaskFamily } from '../family.ts';
import { actionAccuracy, evaluateHousehold, householdLockstep } from '../household-batch.ts';
import { type SftExtras, type SftSample, sftSamples } from '../sft.ts';

/** The reply a household agent should give for `action` (the loop's format). */
export function expertReply(action: string): string {
  return `<think>I should ${action}.</think><action>${action}</action>`;
}

/**
 * The expert's decisions on `tasks`, prompted as the household loop prompts them (same format and
 * history, same admissible list; the growing format shows the expert's earlier replies). `env`
 * must offer admissibleActions (the prompt lists them).
 */
export async function householdDemonstrations(
  env: Env,
  expert: Expert,
  tasks: readonly Task[],
  history: number,
  promptFormat: PromptFormat,
): Promise<Demonstrated[]> {
  const out: Demonstrated[] = [];
  for (const task of tasks) {
    let observation = await env.reset(task.seed, task);
    const goal = (task.payload as { goalText?: string }).goalText ?? '';
    const past: HouseholdTurn[] = [];
    for (const action of expert.demonstrate(task).actions) {
      const admissible = env.admissibleActions?.() ?? [];
      const messages = householdMessages({
        format: promptFormat,
        history,
        task: goal,
        past,
        observation,
        admissible,
      });
      const reply = expertReply(action);
      out.push({ messages, reply });
      const r = await env.step(action);
      past.push({ observation, action, reply: { text: reply }, admissible });
      observation = r.observation;
      if (r.done) break;
    }
  }
  await env.close?.();
  return out;
}

export function householdFamily(config: TrainConfig, hooks: FamilyHooks = {}): TaskFamily {
  const generator = hooks.tasks ? undefined : new HouseholdGenerator(config.envOptions);
  const task = hooks.tasks ?? ((split, seed) => generator!.generate(split, seed));
  const makeEnv = hooks.makeEnv ?? agentEnvMaker({ household: config.envOptions });
  // The exploring expert: the default one walks straight to objects it could not have seen, which
  // a policy cannot learn from its observations (it then "takes" wherever it stands).
  const expert = hooks.expert ?? new HouseholdExpert({ explore: true });
  const demonstrations = (tasks: readonly Task[]) =>
    householdDemonstrations(
      makeEnv('household').env,
      expert,
      tasks,
      config.loop.history,
      config.loop.promptFormat,
    );
  return {
    task,
    demonstrations,
    async sftExtras() {
      const extras: SftExtras = {};
      if (config.sft.selectTasks > 0) {
        // valid-seen seeds of their own: neither SFT's validation nor the evaluations see them
        const held = await demonstrations(
          Array.from({ length: config.sft.selectTasks }, (_, k) => task('valid-seen', 1_100_000 + k)),
        );
        const maxTokens = config.loop.maxTokens;
        extras.select = async (policy) => (await actionAccuracy(policy, held, { maxTokens })).accuracy;
      }
      if (config.sft.dagger.every > 0) extras.dagger = householdDagger(config, task, { seed: config.seed });
      return extras;
    },
    // Lock-step batches give the loop's greedy trajectories at a fraction of the cost; a caller's
    // own env maker is honoured by the generic path instead.
    ...(hooks.makeEnv
      ? {}
      : { evaluate: (policy, split, tasks) => householdEvaluate(config, policy, split, tasks) }),
    rollout: (policy, request) =>
      rollout({
        model: new PolicyChatModel(policy, { name: 'policy', temperature: request.temperature }),
        tasks: request.tasks,
        groupSize: request.groupSize,
        samples: request.samples,
        makeEnv,
        loops: {
          household: {
            promptFormat: config.loop.promptFormat,
            history: config.loop.history,
            maxSteps: config.loop.maxSteps,
            actions: config.loop.actions,
            sampling: {
              temperature: request.temperature,
              maxTokens: config.loop.maxTokens,
              seed: request.seed,
            },
          },
        },
        onTrajectory: request.onTrajectory,
      }),
  };
}

/** Greedy evaluation of household `tasks` in lock step, as the trainer's `EvalResult`. */
export async function householdEvaluate(
  config: Pick<TrainConfig, 'envOptions' | 'loop'>,
  policy: Policy,
  split: Split,
  tasks: readonly Task[],
): Promise<EvalResult> {
  const e = await evaluateHousehold(policy, tasks as readonly HouseholdTask[], {
    promptFormat: config.loop.promptFormat,
    history: config.loop.history,
    maxSteps: config.loop.maxSteps,
    maxTokens: config.loop.maxTokens,
    envOptions: config.envOptions,
    actions: config.loop.actions,
  });
  return {
    split,
    tasks: e.tasks,
    success: e.success,
    meanReturn: e.success * HOUSEHOLD_WIN_REWARD,
    invalidRate: e.invalidRate,
    byType: e.byType,
    scores: {},
    outcomes: e.outcomes,
  };
}

/**
 * DAgger's data for the household family: roll the current policy (lock step, `temperature`) on
 * `tasks` new train tasks per round and label every state it visits with the exploring expert
 * acting from the true state, as SFT samples. Round r uses seeds `firstSeed + r * tasks ...`, so
 * rounds never repeat a task.
 */
export function householdDagger(
  config: Pick<TrainConfig, 'envOptions'> & {
    loop: TrainConfig['loop'];
    sft: { dagger: { tasks: number; temperature: number } };
  },
  task: (split: Split, seed: number) => Task,
  options: { firstSeed?: number; seed?: number } = {},
): (policy: Policy, round: number) => Promise<SftSample[]> {
  const { tasks, temperature } = config.sft.dagger;
  const firstSeed = options.firstSeed ?? 3_000_000;
  return async (policy, round) => {
    const drawn = Array.from(
      { length: tasks },
      (_, k) => task('train', firstSeed + round * tasks + k) as HouseholdTask,
    );
    const runs = await householdLockstep(policy, drawn, {
      promptFormat: config.loop.promptFormat,
      history: config.loop.history,
      maxSteps: config.loop.maxSteps,
      maxTokens: config.loop.maxTokens,
      temperature,
      seed: (options.seed ?? 0) + round,
      envOptions: config.envOptions,
      actions: config.loop.actions,
      label: true,
    });
    return sftSamples(
      runs.flatMap((r) => r.labelled),
      policy.tokenizer,
      policy.config.contextLength,
    );
  };
}
