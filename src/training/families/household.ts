/**
 * The household family: the household ReAct loop (one user message with the task, the last H
 * steps, the observation and the admissible commands) on the household world. The expert's
 * demonstrations (the exploring expert's: it searches where the object may be) are prompted
 * exactly as the loop prompts the policy.
 */
import { PolicyChatModel } from '../../agents/chat/policy-chat-model.ts';
import { agentEnvMaker, rollout } from '../../agents/loops/rollout.ts';
import { householdPrompt } from '../../agents/prompts/household.ts';
import { HouseholdExpert } from '../../envs/household/expert.ts';
import { HouseholdGenerator } from '../../envs/household/generator.ts';
import type { Env, Expert, Task } from '../../envs/types.ts';
import type { TrainConfig } from '../config.ts';
import type { Demonstrated, FamilyHooks, TaskFamily } from '../family.ts';

/** The reply a household agent should give for `action` (the loop's format). */
export function expertReply(action: string): string {
  return `<think>I should ${action}.</think><action>${action}</action>`;
}

/**
 * The expert's decisions on `tasks`, prompted as the household loop prompts them (same history
 * window, same admissible list). `env` must offer admissibleActions (the prompt lists them).
 */
export async function householdDemonstrations(
  env: Env,
  expert: Expert,
  tasks: readonly Task[],
  history: number,
): Promise<Demonstrated[]> {
  const out: Demonstrated[] = [];
  for (const task of tasks) {
    let observation = await env.reset(task.seed, task);
    const goal = (task.payload as { goalText?: string }).goalText ?? '';
    const past: { observation: string; action: string }[] = [];
    for (const action of expert.demonstrate(task).actions) {
      const messages = householdPrompt({
        task: goal,
        stepCount: past.length,
        history: history === 0 ? [] : past.slice(-history),
        observation,
        admissible: env.admissibleActions?.() ?? [],
      });
      out.push({ messages, reply: expertReply(action) });
      const r = await env.step(action);
      past.push({ observation, action });
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
  return {
    task,
    demonstrations: (tasks) =>
      householdDemonstrations(makeEnv('household').env, expert, tasks, config.loop.history),
    rollout: (policy, request) =>
      rollout({
        model: new PolicyChatModel(policy, { name: 'policy', temperature: request.temperature }),
        tasks: request.tasks,
        groupSize: request.groupSize,
        makeEnv,
        loops: {
          household: {
            history: config.loop.history,
            maxSteps: config.loop.maxSteps,
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
