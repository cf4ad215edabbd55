/**
 * A LangChain agent trained by stepwise: `createAgent` from `langchain` with `ChatOpenAI` from
 * `@langchain/openai`, written as anyone writes one, except that its base URL is the recording
 * endpoint stepwise gives each trajectory (and its requests carry the trajectory's headers). The
 * agent gets the search env's `web_search` tool as a LangChain tool; its final message is judged
 * by the env (F1 of the answer). GiGPO trains on the recorded steps: each served completion is a
 * step whose anchor is the message it answered (the question, then each search result).
 *
 *   npx tsx scenarios/langchain-agent.ts
 *   npx stepwise train scenarios/langchain-agent.ts      # reads `config` and `agent` from this file
 *
 * The SFT warm-start clones the search expert in the env's own ReAct format (`<search>` tags), not
 * in this agent's tool-call format, so the policy starts out knowing the domain's words but not
 * how to call `web_search`; start from your own checkpoint (`policy.checkpoint`, `sft.enabled:
 * false`) when you have one trained in your agent's format. Measured as shipped (docs/BENCHMARKS.md,
 * "LangChain agent scenario"): no reply calls the tool, every reward is 0, nothing is learned.
 */
import { ChatOpenAI } from '@langchain/openai';
import { createAgent } from 'langchain';
import {
  isMain,
  runScenario,
  type ServedAgent,
  type TrainConfigInput,
  toLangChainTool,
} from '../src/index.ts';

export const SYSTEM_PROMPT =
  'Answer the question. Look facts up with the web_search tool; when you know the answer, reply with the answer alone.';

/**
 * The agent function: one LangChain agent per trajectory. `fetch` lets a caller see the raw
 * responses (the tests read the token ids the server returns); `recursionLimit` bounds the
 * agent's model and tool calls (LangGraph counts each as a step).
 */
export function langchainAgent(options: { fetch?: typeof fetch; recursionLimit?: number } = {}): ServedAgent {
  return async (run) => {
    const model = new ChatOpenAI({
      model: run.model,
      apiKey: run.apiKey,
      streaming: false,
      maxRetries: 0,
      configuration: {
        baseURL: run.baseURL,
        defaultHeaders: run.headers,
        ...(options.fetch ? { fetch: options.fetch } : {}),
      },
    });
    const agent = createAgent({ model, tools: run.tools.map(toLangChainTool), systemPrompt: SYSTEM_PROMPT });
    try {
      const state = await agent.invoke(
        { messages: [{ role: 'user', content: run.prompt }] },
        { recursionLimit: options.recursionLimit ?? 8 },
      );
      const last = state.messages.at(-1);
      return run.judge(typeof last?.content === 'string' ? last.content : '');
    } catch (err) {
      // Still calling tools at the limit: a trajectory without an answer.
      if ((err as Error).name === 'GraphRecursionError') return { reward: 0, won: false, scores: { f1: 0 } };
      throw err;
    }
  };
}

export const agent = langchainAgent();

export const config = {
  env: 'search',
  agent: 'served',
  estimator: 'gigpo',
  envOptions: {
    reward: 'f1',
    topK: 1,
    snippetChars: 80,
    kinds: ['single-hop'],
    encyclopedia: { people: 600 },
  },
  agentOptions: { concurrency: 8 },
  loop: { maxTokens: 48, temperature: 1 },
  policy: { vocabSize: 512, model: { width: 64, layers: 2, heads: 2, contextLength: 1024 } },
  sft: { tasks: 600, validTasks: 20, maxSteps: 300, learningRate: 3e-3, evalEvery: 100 },
  groupSize: 4,
  tasksPerIteration: 4,
  iterations: 4,
  ppo: { learningRate: 5e-4, miniBatchSize: 16 },
  eval: { every: 0, tasks: 16 },
  db: 'runs/langchain-agent.db',
  runId: 'langchain-agent',
} satisfies TrainConfigInput;

export default config;

if (isMain(import.meta.url)) await runScenario(config, { servedAgent: agent });
