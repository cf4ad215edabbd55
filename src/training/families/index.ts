/** The task family of a config: which (env, agent) pair the trainer runs. */
import type { TrainConfig } from '../config.ts';
import type { FamilyHooks, TaskFamily } from '../family.ts';
import { agentflowFamily } from './agentflow.ts';
import { householdFamily } from './household.ts';
import { servedFamily } from './served.ts';
import { toolQaFamily } from './tool-qa.ts';

/** The family of `config.env` and `config.agent`, or the caller's own (`hooks.family`). */
export async function makeFamily(config: TrainConfig, hooks: FamilyHooks = {}): Promise<TaskFamily> {
  if (hooks.family) return hooks.family;
  if (config.agent === 'agentflow') return agentflowFamily(config, hooks);
  if (config.agent === 'served') {
    // The env's own family gives the tasks, SFT demonstrations and tools; its agent is replaced.
    const base = await makeFamily(
      { ...config, agent: 'react', estimator: 'grpo' },
      { ...hooks, family: undefined },
    );
    return servedFamily(config, hooks, base, hooks.servedAgent);
  }
  if (config.agent === 'react' && config.env === 'household') return householdFamily(config, hooks);
  if (config.agent === 'react' && (config.env === 'search' || config.env === 'codemath'))
    return toolQaFamily(config, hooks);
  throw new Error(
    `the trainer has no family for agent '${config.agent}' on env '${config.env}' yet; pass TrainHooks.family`,
  );
}
