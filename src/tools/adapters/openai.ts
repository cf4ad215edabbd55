/**
 * OpenAI function calling: tool definitions from the zod schemas, and tool calls parsed from model
 * output, either OpenAI's structured `tool_calls` or text such as
 * `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (the form small open models are trained
 * on). A call that cannot be parsed is returned as a `ToolCallError` whose message is meant to be
 * shown to the agent as the observation; schema violations surface when the tool runs (as
 * `bad_arguments` results), so they too reach the agent as observations.
 */
import { z } from 'zod';
import { observationText } from '../define.ts';
import type { ToolRunner } from '../policy.ts';
import type { Tool, ToolResult } from '../types.ts';

export interface OpenAIFunctionTool {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown>; strict?: boolean };
}

/**
 * Schemas whose tool declared its parameters in JSON Schema (a LangChain tool's JSON Schema or zod
 * v3 schema): `openAITools` shows that JSON Schema instead of one generated from the zod schema.
 */
export const declaredParameters = z.registry<{ parameters: Record<string, unknown> }>();

/**
 * OpenAI `tools` entries for these tools: the declared JSON Schema when the tool came with one,
 * else JSON Schema from the zod schema (draft 2020-12 minus `$schema`).
 */
export function openAITools(tools: Tool[]): OpenAIFunctionTool[] {
  return tools.map((t) => {
    const declared = declaredParameters.get(t.schema)?.parameters;
    const { $schema: _ignored, ...parameters } =
      declared ?? (z.toJSONSchema(t.schema, { io: 'input' }) as Record<string, unknown>);
    return { type: 'function', function: { name: t.name, description: t.description, parameters } };
  });
}

/**
 * One tool call the model asked for, in OpenAI's shape: `arguments` is JSON text, as in
 * `tool_calls`, `ChatResult.toolCalls` and audit records, so a model's calls go to `runToolCalls`
 * as they come.
 */
export interface ToolCall {
  /** OpenAI's call id, or `call_<n>` for calls parsed from text. */
  id: string;
  name: string;
  /** JSON text of the arguments object. */
  arguments: string;
}

/** A call the model tried to make but wrote wrongly; `message` is the observation to show it. */
export interface ToolCallError {
  id: string;
  name?: string;
  message: string;
  raw: string;
}

/** A call read from model output: well-formed (its arguments parsed as `input`), or an error. */
export type ParsedToolCall = ({ ok: true; input: unknown } & ToolCall) | ({ ok: false } & ToolCallError);

/** The `tool_calls` of an OpenAI chat completion message (function calls only). */
export interface OpenAIToolCallLike {
  id: string;
  type?: string;
  function?: { name: string; arguments: string };
}

/** Parse OpenAI `tool_calls` (arguments arrive as JSON text). */
export function parseOpenAIToolCalls(toolCalls: OpenAIToolCallLike[] | null | undefined): ParsedToolCall[] {
  return (toolCalls ?? []).map((call) => {
    if (!call.function) {
      return {
        ok: false,
        id: call.id,
        message: `unsupported tool call type "${call.type}"`,
        raw: JSON.stringify(call),
      };
    }
    const { name, arguments: text } = call.function;
    const args = parseJson(text);
    if (!args.ok) {
      return {
        ok: false,
        id: call.id,
        name,
        message: `arguments of ${name} are not valid JSON: ${args.error}`,
        raw: text,
      };
    }
    return { ok: true, id: call.id, name, arguments: JSON.stringify(args.value), input: args.value };
  });
}

const TOOL_CALL_TAG = /<tool_call>([\s\S]*?)(?:<\/tool_call>|$)/g;

/**
 * Parse `<tool_call>{"name": ..., "arguments": ...}</tool_call>` blocks from model text (an
 * unclosed last block is read to the end: generation often stops at the closing tag). `arguments`
 * may be an object or a JSON string of one; `parameters` is accepted as a synonym.
 */
export function parseTextToolCalls(text: string): ParsedToolCall[] {
  const calls: ParsedToolCall[] = [];
  let n = 0;
  for (const match of text.matchAll(TOOL_CALL_TAG)) {
    const id = `call_${n++}`;
    const raw = match[1]!.trim();
    const parsed = parseJson(raw);
    if (!parsed.ok) {
      calls.push({
        ok: false,
        id,
        raw,
        message: `tool call is not valid JSON (${parsed.error}); expected {"name": ..., "arguments": {...}}`,
      });
      continue;
    }
    const body = parsed.value as { name?: unknown; arguments?: unknown; parameters?: unknown };
    if (body === null || typeof body !== 'object' || typeof body.name !== 'string') {
      calls.push({
        ok: false,
        id,
        raw,
        message: 'tool call has no "name" string; expected {"name": ..., "arguments": {...}}',
      });
      continue;
    }
    let args: unknown = body.arguments ?? body.parameters ?? {};
    if (typeof args === 'string') {
      const inner = parseJson(args);
      if (!inner.ok) {
        calls.push({
          ok: false,
          id,
          name: body.name,
          raw,
          message: `arguments of ${body.name} are not valid JSON: ${inner.error}`,
        });
        continue;
      }
      args = inner.value;
    }
    calls.push({ ok: true, id, name: body.name, arguments: JSON.stringify(args), input: args });
  }
  return calls;
}

/** Tool calls from a model message: structured `tool_calls` when present, else the text form. */
export function parseToolCalls(message: {
  content?: string | null;
  tool_calls?: OpenAIToolCallLike[] | null;
}): ParsedToolCall[] {
  if (message.tool_calls && message.tool_calls.length > 0) return parseOpenAIToolCalls(message.tool_calls);
  return parseTextToolCalls(message.content ?? '');
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** A parsed call and what came of it. */
export interface ToolCallOutcome {
  id: string;
  name: string;
  result: ToolResult;
  /** The text the agent reads. */
  observation: string;
}

/**
 * Run calls in order through a runner (policy and audit included): a model's `ToolCall`s as they
 * come (`ChatResult.toolCalls`) or parsed ones. A call whose arguments are not JSON, or that could
 * not be parsed, is not run; its error becomes the observation, as a `bad_arguments` result.
 */
export async function runToolCalls(
  runner: ToolRunner,
  calls: readonly (ToolCall | ParsedToolCall)[],
  signal?: AbortSignal,
): Promise<ToolCallOutcome[]> {
  const outcomes: ToolCallOutcome[] = [];
  for (const call of calls) {
    const input = callInput(call);
    const result: ToolResult = input.ok
      ? await runner.call(call.name ?? '', input.value, { signal })
      : {
          ok: false,
          output: '',
          error: input.error,
          errorKind: 'bad_arguments',
          durationMs: 0,
          truncated: false,
        };
    outcomes.push({ id: call.id, name: call.name ?? '', result, observation: observationText(result) });
  }
  return outcomes;
}

/** The arguments object of a call, or why it has none. */
function callInput(
  call: ToolCall | ParsedToolCall,
): { ok: true; value: unknown } | { ok: false; error: string } {
  if ('ok' in call) return call.ok ? { ok: true, value: call.input } : { ok: false, error: call.message };
  const parsed = parseJson(call.arguments);
  return parsed.ok
    ? parsed
    : { ok: false, error: `arguments of ${call.name} are not valid JSON: ${parsed.error}` };
}

/** OpenAI `tool` role messages answering the calls, for the next request. */
export function toolMessages(
  outcomes: ToolCallOutcome[],
): { role: 'tool'; tool_call_id: string; content: string }[] {
  return outcomes.map((o) => ({ role: 'tool', tool_call_id: o.id, content: o.observation }));
}
