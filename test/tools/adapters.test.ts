import { tool as lcTool } from '@langchain/core/tools';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fromLangChainTool, toLangChainTool } from '../../src/tools/adapters/langchain.ts';
import {
  openAITools,
  parseTextToolCalls,
  parseToolCalls,
  runToolCalls,
  toolMessages,
} from '../../src/tools/adapters/openai.ts';
import { builtinSearchIndex } from '../../src/tools/builtin-docs.ts';
import { defineTool } from '../../src/tools/define.ts';
import { ToolRunner } from '../../src/tools/policy.ts';
import { webSearchTool } from '../../src/tools/web-search.ts';

const add = defineTool({
  name: 'add',
  description: 'adds two integers',
  schema: z.object({ a: z.number().int(), b: z.number().int() }),
  run: async ({ a, b }) => String(a + b),
});

describe('LangChain adapter', () => {
  it('a stepwise tool runs as a LangChain tool, errors as observations', async () => {
    const lc = toLangChainTool(add);
    expect(lc.name).toBe('add');
    expect(await lc.invoke({ a: 2, b: 3 })).toBe('5');
    const search = toLangChainTool(webSearchTool({ index: builtinSearchIndex() }) as never);
    const text = (await search.invoke({ query: 'highest mountain Nepal', k: 1 })) as string;
    expect(text).toMatch(/^\[1\] Mount Everest\n/);
    // A tool call (as an agent makes it) gives a ToolMessage whose artifact is the full result.
    const message = (await lc.invoke({ type: 'tool_call', id: 'c1', name: 'add', args: { a: 1, b: 1 } })) as {
      content: string;
      artifact: { ok: boolean; durationMs: number };
    };
    expect(message.content).toBe('2');
    expect(message.artifact.ok).toBe(true);
  });

  it('a LangChain tool runs as a stepwise tool, with schema errors as results', async () => {
    const multiply = lcTool(async ({ x, y }: { x: number; y: number }) => `${x * y}`, {
      name: 'multiply',
      description: 'multiplies',
      schema: z.object({ x: z.number(), y: z.number() }),
    });
    const t = fromLangChainTool(multiply as never);
    expect(await t.execute({ x: 6, y: 7 })).toMatchObject({ ok: true, output: '42' });
    expect(await t.execute({ x: 'six' })).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
    const broken = lcTool(
      async () => {
        throw new Error('service down');
      },
      { name: 'broken', description: 'fails', schema: z.object({}) },
    );
    expect(await fromLangChainTool(broken as never).execute({})).toMatchObject({
      ok: false,
      errorKind: 'tool_error',
    });
  });
});

describe('OpenAI adapter', () => {
  it('builds function definitions from the zod schemas', () => {
    const [def] = openAITools([webSearchTool({ index: builtinSearchIndex() }) as never]);
    expect(def!.type).toBe('function');
    expect(def!.function.name).toBe('web_search');
    const params = def!.function.parameters as {
      type: string;
      properties: Record<string, { type: string }>;
      required: string[];
    };
    expect(params.type).toBe('object');
    expect(params.properties.query!.type).toBe('string');
    expect(params.properties.k!.type).toBe('integer');
    expect(params.required).toEqual(['query']);
    expect(def!.function.parameters).not.toHaveProperty('$schema');
  });

  it('parses tool_calls and the <tool_call> text form, reporting malformed calls', () => {
    const structured = parseToolCalls({
      content: null,
      tool_calls: [
        { id: 'a', type: 'function', function: { name: 'add', arguments: '{"a":1,"b":2}' } },
        { id: 'b', type: 'function', function: { name: 'add', arguments: '{"a":' } },
      ],
    });
    expect(structured[0]).toEqual({
      ok: true,
      id: 'a',
      name: 'add',
      arguments: '{"a":1,"b":2}',
      input: { a: 1, b: 2 },
    });
    expect(structured[1]).toMatchObject({ ok: false, id: 'b', name: 'add' });

    const text =
      'Let me add.\n<tool_call>{"name": "add", "arguments": {"a": 4, "b": 5}}</tool_call>\n' +
      '<tool_call>{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 1}"}</tool_call>\n' +
      '<tool_call>{name: add}</tool_call>\n<tool_call>{"name": "add", "arguments": {"a": 7, "b": 1}}';
    const calls = parseTextToolCalls(text);
    expect(calls.map((c) => c.ok)).toEqual([true, true, false, true]);
    expect(calls[0]).toMatchObject({ name: 'add', arguments: '{"a":4,"b":5}', input: { a: 4, b: 5 } });
    expect(calls[1]).toMatchObject({ arguments: '{"a":1,"b":1}', input: { a: 1, b: 1 } });
    expect(calls[3]).toMatchObject({ input: { a: 7, b: 1 } });
    expect(parseTextToolCalls('no calls here')).toEqual([]);
  });

  it('runs parsed calls through the runner; schema violations come back as observations', async () => {
    const runner = new ToolRunner([add]);
    const calls = parseTextToolCalls(
      '<tool_call>{"name":"add","arguments":{"a":2,"b":2}}</tool_call><tool_call>{"name":"add","arguments":{"a":"two"}}</tool_call><tool_call>oops</tool_call>',
    );
    const outcomes = await runToolCalls(runner, calls);
    expect(outcomes.map((o) => o.result.ok)).toEqual([true, false, false]);
    expect(outcomes[0]!.observation).toBe('4');
    expect(outcomes[1]!.observation).toMatch(/^Error \(bad_arguments\): add: argument `a`/);
    expect(outcomes[2]!.observation).toMatch(/^Error \(bad_arguments\): tool call is not valid JSON/);
    expect(toolMessages(outcomes)[0]).toEqual({ role: 'tool', tool_call_id: 'call_0', content: '4' });
    expect(runner.audit.length).toBe(2);
  });
});
