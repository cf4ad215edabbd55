/**
 * Both directions between stepwise tools and LangChain tools, so existing LangChain tools drop in
 * and stepwise's sandboxes can serve LangChain agents.
 */
import {
  tool as lcTool,
  type StructuredToolInterface,
  ToolInputParsingException,
} from '@langchain/core/tools';
import { z } from 'zod';
import { describeZodError, errorResult, observationText, runWithDeadline, ToolFailure } from '../define.ts';
import type { Tool, ToolLimits, ToolResult } from '../types.ts';

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
 * Any LangChain StructuredTool as a stepwise tool. Its zod schema (v4) is kept as is; a JSON
 * Schema or zod v3 schema is checked by LangChain itself, and its parse errors become
 * `bad_arguments` results.
 */
export function fromLangChainTool(lc: StructuredToolInterface, limits: Partial<ToolLimits> = {}): Tool {
  const l: ToolLimits = { ...DEFAULT_LC_LIMITS, ...limits };
  const schema: z.ZodType = lc.schema instanceof z.ZodType ? lc.schema : z.unknown();
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
