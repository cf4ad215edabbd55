/**
 * Shared by the AgentFlow tests that run a policy: a tokenizer fitted to AgentFlow's own prompts
 * and replies (gold replays), so a tiny policy's context holds a turn's prompt.
 */
import { expect } from 'vitest';
import {
  type AgentFlowTrajectory,
  goldModels,
  goldTrace,
  runAgentFlowEpisode,
} from '../../src/agents/agentflow/index.ts';
import { agentEnvMaker } from '../../src/agents/loops/rollout.ts';
import type { AgentStep } from '../../src/agents/record.ts';
import { CodeMathGenerator } from '../../src/envs/codemath/generator.ts';
import { createExpert } from '../../src/envs/index.ts';
import { EncyclopediaQA } from '../../src/envs/search/generator.ts';
import type { Policy } from '../../src/policy/policy.ts';
import { type PolicyTokenizer, Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import type { PythonPool } from '../../src/tools/python/pool.ts';
import { PythonTool } from '../../src/tools/python/tool.ts';

export const source = new EncyclopediaQA();
export const codemath = new CodeMathGenerator();

/** Envs with their tools; code/math's Python comes from `pool`. */
export const envMaker = (pool: PythonPool) =>
  agentEnvMaker({
    deps: { source, python: new PythonTool({ pool, limits: { timeMs: 30_000, outputChars: 2_000 } }) },
  });

/** Prompts and replies of gold replays on a few search and code/math tasks. */
export async function agentFlowTexts(pool: PythonPool): Promise<string[]> {
  const texts: string[] = [];
  const tasks = [
    ...[0, 1, 2, 3, 4, 5].map((s) => source.generate('train', s)),
    ...[0, 1, 2].map((s) => codemath.generate('train', s)),
  ];
  for (const task of tasks) {
    const trace = goldTrace(task, createExpert(task.env).demonstrate(task));
    const { env, tools } = envMaker(pool)(task.env);
    const t = await runAgentFlowEpisode(env, goldModels(trace), { task, seed: task.seed, tools });
    for (const s of t.steps) texts.push(s.promptText, s.responseText);
  }
  return texts;
}

export async function agentFlowTokenizer(pool: PythonPool): Promise<Tokenizer> {
  return Tokenizer.train(await agentFlowTexts(pool), { vocabSize: 1024 });
}

/** Small replies, two turns: a trajectory of an untrained policy stays inside the tiny context. */
export const smallConfig = {
  maxTurns: 2,
  sampling: {
    analyzer: { maxTokens: 12 },
    planner: { maxTokens: 24 },
    executor: { maxTokens: 16 },
    verifier: { maxTokens: 8 },
    generator: { maxTokens: 8 },
  },
};

/**
 * Every recorded step is token-exact: its prompt ids are the chat template of its messages under
 * the model that ran it, and its response ids decode to its response text (a trailing end token
 * and a cut-off multi-byte character aside), with one log-prob per response token.
 */
export function expectTokenExactSteps(
  trajectories: readonly AgentFlowTrajectory[],
  modelFor: (s: AgentStep) => { promptTokens(messages: AgentStep['messages']): number[] },
  tokenizer: PolicyTokenizer,
  options: { promptText?: boolean } = {},
): void {
  for (const t of trajectories) {
    for (const s of t.steps) {
      expect(s.promptTokens).toEqual(modelFor(s).promptTokens(s.messages));
      if (options.promptText) expect(tokenizer.decode(s.promptTokens)).toBe(s.promptText);
      expect(s.responseTokens.length).toBeGreaterThan(0);
      expect(s.responseLogprobs.length).toBe(s.responseTokens.length);
      const ended = s.responseTokens.at(-1) === tokenizer.endId;
      const decoded = tokenizer.decode(ended ? s.responseTokens.slice(0, -1) : s.responseTokens);
      expect(decoded.replace(/\uFFFD+$/, '')).toBe(s.responseText.replace(/\uFFFD+$/, ''));
    }
  }
}

/** The first `n` planner steps (Flow-GRPO's samples), re-scored by `policy`: the same log-probs. */
export async function expectPlannerRescored(
  trajectories: readonly AgentFlowTrajectory[],
  policy: Policy,
  n: number,
): Promise<AgentStep[]> {
  const planner = trajectories.flatMap((t) => t.steps.filter((s) => s.role === 'planner')).slice(0, n);
  for (const s of planner) {
    const scored = await policy.score(s.promptTokens, s.responseTokens);
    expect(scored.length).toBe(s.responseLogprobs.length);
    scored.forEach((lp, i) => {
      expect(lp).toBeCloseTo(s.responseLogprobs[i]!, 3);
    });
  }
  return planner;
}
