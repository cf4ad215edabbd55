/**
 * The prompts of AgentFlow's modules and the parsers of their replies. Replies are tag pairs (the
 * format the single-agent loops and the envs use), kept short because every prompt must fit a
 * small local policy's context next to the memory.
 */
import { z } from 'zod';
import type { Tool } from '../../tools/types.ts';
import type { ChatMessage } from '../types.ts';

const ANALYZER_SYSTEM =
  'You are the analyzer of a team that answers queries with tools. Say briefly what the query asks, ' +
  'what must be found or computed, and which tools help.';

const PLANNER_SYSTEM =
  'You are the planner. Choose the next tool and write its sub-goal and the context it needs. ' +
  'Reply exactly: <sub_goal>...</sub_goal><tool>tool name</tool><context>...</context>';

const EXECUTOR_SYSTEM =
  'You are the executor. Turn the sub-goal into one call of the tool, with arguments that match its schema. ' +
  'Reply exactly: <tool_call>{"name": "tool name", "arguments": {...}}</tool_call>';

const VERIFIER_SYSTEM =
  'You are the verifier. Decide whether the memory holds enough to answer the query. ' +
  'Reply <verdict>STOP</verdict> if it does, <verdict>CONTINUE</verdict> if more tool use is needed.';

const GENERATOR_SYSTEM =
  'You are the generator. Answer the query from the memory. Reply with the answer only: <answer>...</answer>';

/** The first sentence of a tool's description (prompts list tools on one line each). */
export function shortDescription(tool: Tool): string {
  const end = tool.description.search(/\.(\s|$)/);
  return end < 0 ? tool.description : tool.description.slice(0, end + 1);
}

function toolList(tools: readonly Tool[]): string {
  return tools.map((t) => `- ${t.name}: ${shortDescription(t)}`).join('\n');
}

export function analyzerMessages(query: string, tools: readonly Tool[]): ChatMessage[] {
  return [
    { role: 'system', content: ANALYZER_SYSTEM },
    { role: 'user', content: `Query: ${query}\nTools:\n${toolList(tools)}` },
  ];
}

export function plannerMessages(
  query: string,
  analysis: string,
  tools: readonly Tool[],
  memory: string,
  turn: number,
  maxTurns: number,
): ChatMessage[] {
  return [
    { role: 'system', content: PLANNER_SYSTEM },
    {
      role: 'user',
      content:
        `Query: ${query}\nAnalysis: ${analysis}\nTools:\n${toolList(tools)}\n` +
        `Memory:\n${memory}\nTurn ${turn} of ${maxTurns}.`,
    },
  ];
}

/** The tool's argument schema as compact JSON Schema text (what the executor must fill in). */
export function argumentSchema(tool: Tool): string {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.schema, { io: 'input' }) as Record<
    string,
    unknown
  >;
  return JSON.stringify(schema);
}

export function executorMessages(query: string, tool: Tool, subGoal: string, context: string): ChatMessage[] {
  return [
    { role: 'system', content: EXECUTOR_SYSTEM },
    {
      role: 'user',
      content:
        `Query: ${query}\nTool: ${tool.name}\nArguments (JSON Schema): ${argumentSchema(tool)}\n` +
        `Sub-goal: ${subGoal}\nContext: ${context}`,
    },
  ];
}

export function verifierMessages(query: string, analysis: string, memory: string): ChatMessage[] {
  return [
    { role: 'system', content: VERIFIER_SYSTEM },
    { role: 'user', content: `Query: ${query}\nAnalysis: ${analysis}\nMemory:\n${memory}` },
  ];
}

export function generatorMessages(query: string, memory: string): ChatMessage[] {
  return [
    { role: 'system', content: GENERATOR_SYSTEM },
    { role: 'user', content: `Query: ${query}\nMemory:\n${memory}` },
  ];
}

// --- replies ---------------------------------------------------------------------------------

/** The body of the first `<tag>...</tag>` in `text`, trimmed, or undefined. */
export function tagBody(text: string, tag: string): string | undefined {
  const open = text.indexOf(`<${tag}>`);
  if (open < 0) return undefined;
  const close = text.indexOf(`</${tag}>`, open);
  if (close < 0) return undefined;
  return text.slice(open + tag.length + 2, close).trim();
}

/** A planner's decision. */
export interface Plan {
  tool: string;
  subGoal: string;
  context: string;
}

/** The plan in a planner reply, or why there is none. A plan needs a non-empty `<tool>`. */
export function parsePlan(text: string): { ok: true; plan: Plan } | { ok: false; error: string } {
  const tool = tagBody(text, 'tool');
  if (tool === undefined || tool === '') {
    return {
      ok: false,
      error:
        'could not parse the plan: expected <sub_goal>...</sub_goal><tool>tool name</tool><context>...</context>',
    };
  }
  return {
    ok: true,
    plan: { tool, subGoal: tagBody(text, 'sub_goal') ?? '', context: tagBody(text, 'context') ?? '' },
  };
}

export type Verdict = 'STOP' | 'CONTINUE';

/**
 * The verifier's verdict: the `<verdict>` tag, or else the last bare STOP/CONTINUE word. Undefined
 * when there is neither (the loop then continues: stopping early on noise would end every
 * trajectory of an untrained verifier after one turn).
 */
export function parseVerdict(text: string): Verdict | undefined {
  const tagged = tagBody(text, 'verdict')?.toUpperCase();
  if (tagged === 'STOP' || tagged === 'CONTINUE') return tagged;
  const words = [...text.matchAll(/\b(STOP|CONTINUE)\b/g)];
  return words.length > 0 ? (words[words.length - 1]![1] as Verdict) : undefined;
}

/** The final answer in a generator reply, or undefined without `<answer>` tags. */
export function parseAnswer(text: string): string | undefined {
  return tagBody(text, 'answer');
}
