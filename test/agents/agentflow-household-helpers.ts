/**
 * Shared by the household AgentFlow tests that run a policy: a tokenizer fitted to household
 * AgentFlow prompts and replies (gold replays), so a tiny policy's context holds a turn's prompt.
 */
import { replayGold } from '../../src/agents/agentflow/index.ts';
import { TASK_TYPES } from '../../src/envs/household/catalog.ts';
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { HouseholdGenerator } from '../../src/envs/household/generator.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';

export const household = new HouseholdGenerator();

export async function householdFlowTokenizer(): Promise<Tokenizer> {
  const texts: string[] = [];
  for (const [i, kind] of TASK_TYPES.entries()) {
    const task = household.generate('train', 300 + i, kind);
    const { trajectory } = await replayGold(new HouseholdEnv(), { task, seed: task.seed });
    for (const s of trajectory.steps) texts.push(s.promptText, s.responseText);
  }
  return Tokenizer.train(texts, { vocabSize: 1024 });
}

/** Small replies and two household turns: an untrained policy's trajectory stays inside the tiny context. */
export const smallHouseholdConfig = {
  householdMaxTurns: 2,
  sampling: {
    analyzer: { maxTokens: 12 },
    planner: { maxTokens: 24 },
    executor: { maxTokens: 16 },
    verifier: { maxTokens: 8 },
    generator: { maxTokens: 8 },
  },
};

/** Household envs need no tool runner: the world is the tool. */
export const householdEnvMaker = () => ({ env: new HouseholdEnv() });
