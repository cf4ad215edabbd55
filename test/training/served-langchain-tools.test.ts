/**
 * The LangChain tool-call round trip through a recording endpoint, with a policy that really calls
 * the tool. scenarios/langchain-agent.ts's agent (`createAgent` with `ChatOpenAI`) runs against
 * `PolicyServer` recording into SQLite (what `stepwise serve --record` runs), with stepwise's
 * `web_search` over a small index as its tool. The policy is the tiny preset from scratch, taught by
 * the project's SFT (`runSft`, a few dozen steps) the two replies of this conversation: a
 * `<tool_call>` for web_search on the exact prompt LangChain sends, and the answer after the
 * tool's result. (Cloning two replies is the cheapest real way to get a well-formed tool call
 * out of a model this small; the scenario's own SFT clones the env's `<search>` format instead.)
 * Checks that LangChain ran the tool, sent its result back, and that the recorded rollout's second
 * prompt holds the first reply's sampled ids exactly (not a re-encoding of LangChain's
 * re-serialized tool call).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { langchainAgent } from '../../scenarios/langchain-agent.ts';
import { renderTools, templateMessages } from '../../src/agents/chat/template.ts';
import type { ChatMessage } from '../../src/agents/types.ts';
import { Policy } from '../../src/policy/policy.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { PolicyServer } from '../../src/serve/server.ts';
import { openStore, ServedLog, type ServedRolloutRow, type TrajectoryStore } from '../../src/store/index.ts';
import { openAITools } from '../../src/tools/adapters/openai.ts';
import { observationText } from '../../src/tools/define.ts';
import { SearchIndex } from '../../src/tools/search/index.ts';
import type { Tool } from '../../src/tools/types.ts';
import { webSearchTool } from '../../src/tools/web-search.ts';
import { SftConfig } from '../../src/training/config.ts';
import type { ServedAgentRun, ServedOutcome } from '../../src/training/families/served.ts';
import { runSft, type SftResult, type SftSample } from '../../src/training/sft.ts';

const QUESTION = 'Who wrote The Iron Mountain?';
const QUERY = 'The Iron Mountain';
const GOLD = 'Mara Quill';
const CALL = `<tool_call>{"name": "web_search", "arguments": {"query": "${QUERY}"}}</tool_call>`;
const DOCS = [
  {
    id: 'd1',
    title: 'The Iron Mountain',
    text: 'The Iron Mountain is a novel written by Mara Quill in 1921.',
  },
  {
    id: 'd2',
    title: 'Glass River',
    text: 'Glass River is a town on the northern plain, founded by Tomas Vell.',
  },
  { id: 'd3', title: 'Mara Quill', text: 'Mara Quill was a writer born in Glass River.' },
];

const dir = mkdtempSync(join(tmpdir(), 'stepwise-lc-tools-'));
const search = webSearchTool({ index: SearchIndex.build(DOCS, { snippetChars: 80 }), defaultK: 1 });
/** The queries the tool ran, as LangChain's tool node gave them. */
const queries: unknown[] = [];
const counted: Tool = {
  ...search,
  execute: (input, ctx) => {
    queries.push(input);
    return search.execute(input as never, ctx);
  },
};

let policy: Policy;
let tokenizer: Tokenizer;
let server: PolicyServer;
let store: TrajectoryStore;
let baseURL: string;
let sft: SftResult;
let outcome: ServedOutcome;
let recorded: ServedRolloutRow;
/** What LangChain was served, from the raw response bodies of the rollout. */
const served: { prompt: number[]; completion: number[] }[] = [];

const run = (rollout: string, headers: Record<string, string>): ServedAgentRun => ({
  task: { env: 'search', id: 'search/train/0', kind: 'single-hop', split: 'train', seed: 0, payload: {} },
  prompt: QUESTION,
  baseURL,
  apiKey: 'unused',
  model: 'tiny',
  headers,
  rollout,
  group: 'g1',
  tools: [counted],
  judge: async (answer) => ({ reward: answer.trim() === GOLD ? 1 : 0 }),
});

beforeAll(async () => {
  // A tokenizer for this conversation's text, so that its prompts are a few hundred tokens.
  const toolSection = renderTools(openAITools([search]).map((t) => ({ ...t, type: 'function' as const })));
  const corpus = [
    'Answer the question. Look facts up with the web_search tool; when you know the answer, reply with the answer alone.',
    toolSection,
    QUESTION,
    CALL,
    ...DOCS.map((d) => `${d.title}\n${d.text}`),
    GOLD,
  ];
  tokenizer = Tokenizer.train(Array(20).fill(corpus).flat(), { vocabSize: 400 });
  policy = Policy.create({ model: 'tiny', tokenizer, seed: 3 });
  const tok = policy.tokenizer;
  store = openStore(join(dir, 'served.db'));
  server = new PolicyServer(policy, { port: 0, modelId: 'tiny' }, new ServedLog(store));
  baseURL = await server.listen();

  // The exact first prompt LangChain sends (its system prompt, the question, its rendering of the
  // tool's schema), from one request outside any rollout, cut to one new token.
  let firstPrompt: number[] | undefined;
  const probe: typeof fetch = async (input, init) => {
    const body = { ...JSON.parse(String(init?.body)), max_tokens: 1 };
    const res = await fetch(input, { ...init, body: JSON.stringify(body) });
    firstPrompt ??= (
      (await res.clone().json()) as { choices: { stepwise: { prompt_token_ids: number[] } }[] }
    ).choices[0]!.stepwise.prompt_token_ids;
    return res;
  };
  await langchainAgent({ fetch: probe, recursionLimit: 3 })(run('probe', {}));
  expect(queries).toEqual([]);

  // The two replies to clone: the tool call on that prompt, and the answer after the tool's
  // result. The second prompt is the first, the call's ids, the tool message and the assistant
  // opening (the server splices a reply it served back in by its ids, see src/serve/replies.ts).
  const call = [...tok.encode(CALL), tok.endId];
  const result = observationText(await search.execute({ query: QUERY }));
  const samples: SftSample[] = [
    { prompt: firstPrompt!, response: call },
    {
      prompt: [
        ...firstPrompt!,
        ...call,
        ...tok.applyChatTemplate([{ role: 'tool', content: result }], { addGenerationPrompt: true }),
      ],
      response: [...tok.encode(GOLD), tok.endId],
    },
  ];
  sft = await runSft(
    policy,
    samples,
    samples,
    SftConfig.parse({ batchSize: 2, maxSteps: 60, learningRate: 3e-3, evalEvery: 5, targetLoss: 0.01 }),
  );

  // The rollout: the scenario's agent, as the trainer runs it (greedy here, as in evaluations).
  server.setRolloutSampling('r1', { temperature: 0, seed: 0, maxTokens: 48 });
  const watching: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const body = (await res.clone().json()) as {
      choices: { stepwise: { prompt_token_ids: number[]; completion_token_ids: number[] } }[];
    };
    const s = body.choices[0]!.stepwise;
    served.push({ prompt: s.prompt_token_ids, completion: s.completion_token_ids });
    return res;
  };
  const returned = await langchainAgent({ fetch: watching, recursionLimit: 5 })(
    run('r1', { 'x-stepwise-rollout': 'r1', 'x-stepwise-group': 'g1' }),
  );
  outcome = typeof returned === 'object' ? returned : { reward: Number(returned) };
  const posted = await fetch(`${baseURL}/rewards`, {
    method: 'POST',
    body: JSON.stringify({ rollout: 'r1', reward: outcome.reward }),
  });
  expect(posted.status).toBe(200);
  recorded = new ServedLog(store).rewarded().find((r) => r.rollout === 'r1')!;
}, 120_000);

afterAll(async () => {
  await server?.close();
  store?.close();
  await policy?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('a LangChain agent calling a tool through the recording endpoint', () => {
  it('learned the two replies in a few dozen SFT steps', () => {
    expect(sft.validLoss).toBeLessThanOrEqual(0.01);
    expect(sft.steps).toBeLessThanOrEqual(60);
  });

  it('ran the tool LangChain was asked to call, sent its result back, and answered from it', () => {
    expect(queries).toEqual([{ query: QUERY }]);
    expect(recorded.steps.length).toBeGreaterThanOrEqual(2);
    const [first, second] = recorded.steps;
    expect(first!.finishReason).toBe('tool_calls');
    expect(first!.toolCalls).toEqual([
      expect.objectContaining({ name: 'web_search', arguments: JSON.stringify({ query: QUERY }) }),
    ]);
    // The tool message LangChain sent with the second request: the search result, for that call.
    const messages = second!.messages as unknown as { role: string; content: string; toolCallId?: string }[];
    const tool = messages.filter((m) => m.role === 'tool');
    expect(tool).toHaveLength(1);
    expect(tool[0]!.content).toContain('Mara Quill in 1921');
    expect(tool[0]!.toolCallId).toBeTruthy();
    expect(second!.anchor).toBe(tool[0]!.content);
    expect(outcome.reward).toBe(1);
    expect(recorded.reward).toBe(1);
  });

  it("splices the first reply's sampled ids into the second prompt, token for token", () => {
    const [first, second] = recorded.steps;
    expect(served).toHaveLength(recorded.steps.length);
    expect(first!.promptTokens).toEqual(served[0]!.prompt);
    expect(first!.responseTokens).toEqual(served[0]!.completion);
    expect(second!.promptTokens).toEqual(served[1]!.prompt);
    const head = [...first!.promptTokens, ...first!.responseTokens];
    expect(second!.promptTokens.slice(0, head.length)).toEqual(head);
    expect(second!.reencoded).toBe(0);
    // LangChain sent the call back re-serialized (its own JSON spacing, a call id, empty
    // content): a re-encoding of the message it sent would not be the ids the policy sampled.
    const sent = (second!.messages as unknown as ChatMessage[]).find((m) => m.role === 'assistant')!;
    expect(sent.toolCalls).toHaveLength(1);
    const tok = tokenizer;
    const reencoded = tok.applyChatTemplate(templateMessages([sent]));
    expect(reencoded).not.toEqual([tok.special('<|assistant|>'), ...first!.responseTokens]);
  });
});
