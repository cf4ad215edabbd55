/**
 * Both directions between stepwise tools and LangChain tools, so existing LangChain tools drop in
 * and stepwise's sandboxes can serve LangChain agents.
 */
import {
  tool as lcTool,
  type StructuredToolInterface,
  ToolInputParsingException,
} from '@langchain/core/tools';
import { toJsonSchema } from '@langchain/core/utils/json_schema';
import { z } from 'zod';
import { describeZodError, errorResult, observationText, runWithDeadline, ToolFailure } from '../define.ts';
import type { Tool, ToolLimits, ToolResult } from '../types.ts';
import { declaredParameters } from './openai.ts';

/**
 * A stepwise tool as a LangChain `DynamicStructuredTool`. The content is the observation text
 * (errors included: they are observations, never exceptions); the artifact is the full `ToolResult`.
 */
export function toLangChainTool(tool: Tool): StructuredToolInterface {
  return lcTool(
    async (input: unknown, config?: { signal?: AbortSignal }) => {
      const result = await tool.execute(input as never, { signal: config?.signal });
      return [observationText(result), result] as [string, ToolResult];
    },
    {
      name: tool.name,
      description: tool.description,
      // biome-ignore lint/suspicious/noExplicitAny: LangChain's overloads cannot see that any zod object fits.
      schema: tool.schema as any,
      responseFormat: 'content_and_artifact',
    },
  ) as unknown as StructuredToolInterface;
}

const DEFAULT_LC_LIMITS: ToolLimits = { timeMs: 30_000, outputChars: 8_000 };

/**
 * The tool's schema as zod v4. A zod v4 schema is kept as is. A JSON Schema or a zod v3 schema
 * goes through LangChain's `toJsonSchema` and zod's `fromJSONSchema`; the JSON Schema itself is
 * registered as the tool's `declaredParameters`, so a model is shown exactly what the tool declared
 * (the zod round trip adds bounds such as the largest safe integer).
 */
function zodSchema(lc: StructuredToolInterface): z.ZodType {
  if (lc.schema instanceof z.ZodType) return lc.schema;
  const { $schema: _ignored, ...parameters } = toJsonSchema(lc.schema as never) as Record<string, unknown>;
  let schema: z.ZodType;
  try {
    schema = z.fromJSONSchema(parameters as never);
  } catch {
    // A JSON Schema feature zod cannot express: LangChain still checks the input when invoked,
    // and its parse errors become `bad_arguments` results.
    schema = z.unknown();
  }
  declaredParameters.add(schema, { parameters });
  return schema;
}

/**
 * Any LangChain StructuredTool as a stepwise tool. Its schema (zod v4, zod v3 or JSON Schema)
 * validates the input and is what `openAITools` shows a model; LangChain's own parse errors also
 * become `bad_arguments` results.
 */
export function fromLangChainTool(lc: StructuredToolInterface, limits: Partial<ToolLimits> = {}): Tool {
  const l: ToolLimits = { ...DEFAULT_LC_LIMITS, ...limits };
  const schema = zodSchema(lc);
  return {
    name: lc.name,
    description: lc.description,
    schema,
    limits: l,
    async execute(input, ctx = {}) {
      const started = performance.now();
      const parsed = schema.safeParse(input);
      if (!parsed.success) {
        return errorResult('bad_arguments', describeZodError(lc.name, parsed.error), started);
      }
      try {
        return await runWithDeadline(l, ctx.signal, started, async (signal) => {
          let out: unknown;
          try {
            out = await lc.invoke(parsed.data as never, { signal });
          } catch (err) {
            if (err instanceof ToolInputParsingException) throw new ToolFailure(err.message, 'bad_arguments');
            throw err;
          }
          return typeof out === 'string' ? out : contentText(out);
        });
      } catch (err) {
        return errorResult('tool_error', (err as Error).message, started);
      }
    },
  };
}

/** A LangChain tool may return a ToolMessage, content blocks or any JSON value. */
function contentText(out: unknown): string {
  if (out && typeof out === 'object' && 'content' in out) {
    const content = (out as { content: unknown }).content;
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
      return content
        .map((c) => (typeof c === 'string' ? c : ((c as { text?: string }).text ?? JSON.stringify(c))))
        .join('');
    }
  }
  return JSON.stringify(out) ?? String(out);
}
