// Shared by the AgentFlow tests that run a policy: a tokenizer fitted to AgentFlow's own prompts
// and replies (gold replays), so a tiny policy's context holds a turn's prompt.
import { goldModels, goldTrace, runAgentFlowEpisode } from '../../src/agents/agentflow/index.ts';
import { agentEnvMaker } from '../../src/agents/loops/rollout.ts';
import { CodeMathGenerator } from '../../src/envs/codemath/generator.ts';
import { createExpert } from '../../src/envs/index.ts';
import { EncyclopediaQA } from '../../src/envs/search/generator.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
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
