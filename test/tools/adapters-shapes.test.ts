/**
 * Issue 16's adapter papercuts: LangChain tools declared with JSON Schema or zod v3 keep their
 * schema (a model sees their arguments, bad input is refused), and a model's tool calls go to
 * `runToolCalls` in the shape `ChatResult.toolCalls` has (arguments as JSON text).
 */
import { tool as lcTool } from '@langchain/core/tools';
import type { JSONSchema } from '@langchain/core/utils/json_schema';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { z as z3 } from 'zod/v3';
import { toolCallsFromText } from '../../src/agents/chat/template.ts';
import type { ChatResult } from '../../src/agents/types.ts';
import { fromLangChainTool } from '../../src/tools/adapters/langchain.ts';
import { openAITools, runToolCalls } from '../../src/tools/adapters/openai.ts';
import { defineTool } from '../../src/tools/define.ts';
import { ToolRunner } from '../../src/tools/policy.ts';

const weatherJsonSchema: JSONSchema = {
  type: 'object',
  properties: {
    city: { type: 'string', description: 'the city' },
    days: { type: 'integer', minimum: 1, description: 'days ahead' },
  },
  required: ['city'],
};

const forecast = async (input: unknown) => {
  const { city, days } = input as { city: string; days?: number };
  return `${city}: sunny for ${days ?? 1} day(s)`;
};

const fromJsonSchema = lcTool(forecast, {
  name: 'weather',
  description: 'forecast',
  schema: weatherJsonSchema,
});
const fromZod3 = lcTool(forecast, {
  name: 'weather',
  description: 'forecast',
  schema: z3.object({
    city: z3.string().describe('the city'),
    days: z3.number().int().min(1).describe('days ahead').optional(),
  }),
});

describe('LangChain tools with JSON Schema or zod v3 schemas', () => {
  it('a JSON Schema tool shows the model exactly its declared parameters', () => {
    const [def] = openAITools([fromLangChainTool(fromJsonSchema as never)]);
    expect(def!.function.parameters).toEqual(weatherJsonSchema);
  });

  it('a zod v3 tool shows the model its properties, descriptions and required fields', () => {
    const [def] = openAITools([fromLangChainTool(fromZod3 as never)]);
    const params = def!.function.parameters as {
      properties: Record<string, { type: string; description: string; minimum?: number }>;
      required: string[];
    };
    expect(params.properties.city).toMatchObject({ type: 'string', description: 'the city' });
    expect(params.properties.days).toMatchObject({ type: 'integer', minimum: 1, description: 'days ahead' });
    expect(params.required).toEqual(['city']);
    expect(params).not.toHaveProperty('$schema');
  });

  it('both validate their input: good input runs, bad input is a bad_arguments result', async () => {
    for (const lc of [fromJsonSchema, fromZod3]) {
      const t = fromLangChainTool(lc as never);
      expect(await t.execute({ city: 'Oslo', days: 2 })).toMatchObject({
        ok: true,
        output: 'Oslo: sunny for 2 day(s)',
      });
      expect(await t.execute({ days: 2 })).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
      expect(await t.execute({ city: 'Oslo', days: 0 })).toMatchObject({
        ok: false,
        errorKind: 'bad_arguments',
      });
    }
  });
});

describe('one shape for tool-call arguments', () => {
  const add = defineTool({
    name: 'add',
    description: 'adds two integers',
    schema: z.object({ a: z.number().int(), b: z.number().int() }),
    run: async ({ a, b }) => String(a + b),
  });

  it("a ChatResult's toolCalls run as they are; arguments that are not JSON are observations", async () => {
    // How the local policy's and the OpenAI backend's replies become ChatResult.toolCalls.
    const toolCalls: ChatResult['toolCalls'] = toolCallsFromText(
      '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>',
    );
    expect(toolCalls).toEqual([{ id: 'call_0', name: 'add', arguments: '{"a":2,"b":3}' }]);
    const runner = new ToolRunner([add]);
    const outcomes = await runToolCalls(runner, [
      ...toolCalls!,
      { id: 'call_1', name: 'add', arguments: '{"a": 2,' },
    ]);
    expect(outcomes.map((o) => o.observation)).toEqual([
      '5',
      expect.stringMatching(/^Error \(bad_arguments\): arguments of add are not valid JSON/),
    ]);
    // The runner's audit keeps the same shape: JSON text.
    expect(runner.audit.map((a) => a.arguments)).toEqual(['{"a":2,"b":3}']);
  });
});
