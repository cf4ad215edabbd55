/**
 * AgentFlow trained with Flow-GRPO on search QA and code/math tasks (alternating): SFT warm-starts
 * every module (analyzer, planner, executor, verifier, generator) on one tiny policy from gold
 * replays, then RL trains the planner only; every planner call carries its trajectory's final
 * outcome (1 right, else 0), normalized within the group of G rollouts of a question.
 *
 *   npx tsx scenarios/agentflow-flowgrpo.ts
 *   npx stepwise train scenarios/agentflow-flowgrpo.ts [--iterations N] [--db runs/x.db]
 *
 * A few minutes on a laptop CPU. Its SFT start scores 0% on both evaluation splits (12 tasks), so every
 * Flow-GRPO group is all-zero. The search scenario's copying recipe (RoPE, separate spaces, fresh
 * replays, 5000 cosine steps, 600 people, one search result) with 4 layers and a 1024-token
 * tokenizer reaches 46% valid-seen and 8.3% valid-unseen (300 tasks each) for about 17 SFT
 * CPU-minutes, short of issue 14's 20% on valid-unseen: docs/BENCHMARKS.md, "Search and
 * AgentFlow: can the SFT policy copy?", has the command. Not the default yet: agentflow-openai
 * and the learning benchmark take this file's policy and tasks.
 */
import { isMain, runScenario, type TrainConfigInput } from '../src/index.ts';

const config = {
  env: 'search',
  agent: 'agentflow',
  estimator: 'flow-grpo',
  agentOptions: {
    // Half the tasks are search questions, half code/math word problems: the one-tool-call kinds,
    // which a policy this small can learn in minutes.
    envs: ['search', 'codemath'],
    envOptions: {
      search: { kinds: ['single-hop'], topK: 2, snippetChars: 100 },
      codemath: { kinds: ['product'], digits: 2 },
    },
    maxTurns: 2,
  },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, vocabSize: 512 },
  sft: { tasks: 200, validTasks: 10, maxSteps: 400, batchSize: 16, learningRate: 3e-3, evalEvery: 100 },
  groupSize: 8,
  tasksPerIteration: 4,
  iterations: 4,
  ppo: { miniBatchSize: 16, learningRate: 2e-4 },
  eval: { every: 2, tasks: 12 },
  db: 'runs/agentflow-flowgrpo.db',
  runId: 'agentflow-flowgrpo',
} satisfies TrainConfigInput;

export default config;

if (isMain(import.meta.url)) await runScenario(config);
