/**
 * The loop body shared by search QA and code/math: a growing conversation (system prompt, the
 * task, then assistant turns, each answered by tool or user messages) in which each response becomes one env
 * action. Only the tags and tools differ between the two.
 */
import type { CodeMathTask } from '../../envs/codemath/generator.ts';
import type { SearchTask } from '../../envs/search/generator.ts';
import type { Env } from '../../envs/types.ts';
import { openAITools } from '../../tools/adapters/openai.ts';
import type { AgentStep, Trajectory, TrajectoryOutcome } from '../record.ts';
import type { ChatMessage, ChatModel, ChatOptions, ChatToolCall } from '../types.ts';
import {
  ask,
  auditSince,
  CONTEXT_FULL,
  chatOptions,
  type Episode,
  finish,
  type LoopOptions,
  responseFields,
  TIMED_OUT,
} from './shared.ts';
import { actionFromToolCalls, answerToolCalls } from './tool-calls.ts';

/** How one tool-using loop reads responses; shared by the search and code/math loops. */
export interface ToolLoopSpec {
  opts: LoopOptions & { maxTurns: number; toolCalling: boolean };
  /** Response tags that become an env action, and the env's tag for each (`code` -> `python`). */
  tags: Record<string, string>;
  /** Tool calls that become an env action: the env tag and the argument holding its body. */
  toolTags: Record<string, { tag: string; field: string }>;
  prompt: (taskText: string) => ChatMessage[];
}

/** The loop body of search QA and code/math: the env tags differ, the conversation does not. */
export async function runToolLoop<T extends SearchTask | CodeMathTask>(
  env: Env<T>,
  model: ChatModel,
  episode: Episode<T>,
  spec: ToolLoopSpec,
): Promise<Trajectory> {
  const { opts } = spec;
  const started = performance.now();
  const deadline = opts.timeLimitMs === undefined ? undefined : Date.now() + opts.timeLimitMs;
  const first = await env.reset(episode.seed, episode.task);
  const task = env.task!;
  const trajectoryId = episode.trajectoryId ?? '0';
  const tools: ChatOptions['tools'] =
    opts.toolCalling && episode.tools ? openAITools(episode.tools.allowedTools) : undefined;
  const messages: ChatMessage[] = spec.prompt(first);
  const steps: AgentStep[] = [];
  let outcome: TrajectoryOutcome = 'turn_limit';

  while (steps.length < opts.maxTurns) {
    const anchor = env.anchor;
    const call = { ...chatOptions(opts.sampling, { seed: episode.seed, trajectoryId }, steps.length), tools };
    const result = await ask(model, messages, call, deadline);
    if (result === TIMED_OUT || result === CONTEXT_FULL) {
      outcome = result === TIMED_OUT ? 'time_limit' : 'context_limit';
      break;
    }
    const fromCalls = actionFromToolCalls(result.toolCalls ?? [], spec.toolTags);
    const action = fromCalls?.action ?? envAction(result.text, spec.tags);
    const auditFrom = episode.tools?.audit.length ?? 0;
    const r = await env.step(action);
    const step: AgentStep = {
      stepIndex: steps.length,
      role: opts.role,
      ...responseFields(model, messages, result),
      action,
      observation: fromCalls?.error ? `${fromCalls.error}\n${r.observation}` : r.observation,
      anchor,
      envReward: r.reward,
      valid: r.info.valid && !fromCalls?.error,
      done: r.done,
      audit: auditSince(episode.tools, auditFrom),
      extras: {},
    };
    steps.push(step);
    const answered = r.done && /^<answer>/.test(action) && r.info.valid;
    if (answered) {
      // IGPO reads these: the answer turn and its word-set F1 (when the env reports it).
      step.extras.answered = true;
      if (typeof r.info.f1 === 'number') step.extras.outcomeReward = r.info.f1;
      outcome = r.info.won ? 'won' : 'answered';
      break;
    }
    // The sampled ids, when the backend has them: the next prompt then extends this one token for
    // token (re-encoding the text need not give the same ids), and the prefix cache reuses it all.
    const reply = assistantMessage(result.text, result.toolCalls);
    messages.push(result.tokenIds ? { ...reply, tokenIds: result.tokenIds } : reply);
    messages.push(...answerToolCalls(result.toolCalls ?? [], fromCalls, step.observation));
    if (r.done) break;
  }
  return finish({ ...episode, task, trajectoryId }, steps, outcome, started);
}

/**
 * The env action of a text response: its first known tag, renamed to the env's tag
 * (`<code>x</code>` -> `<python>x</python>`); without one, the text itself, which the env then
 * marks invalid.
 */
export function envAction(text: string, tags: Record<string, string>): string {
  let best: { at: number; tag: string; body: string } | undefined;
  for (const [tag, envTag] of Object.entries({ ...tags, answer: 'answer' })) {
    const open = text.indexOf(`<${tag}>`);
    if (open < 0 || (best && open >= best.at)) continue;
    const close = text.indexOf(`</${tag}>`, open);
    if (close < 0) continue;
    best = { at: open, tag: envTag, body: text.slice(open + tag.length + 2, close).trim() };
  }
  return best ? `<${best.tag}>${best.body}</${best.tag}>` : text;
}

/**
 * The assistant message of a response. A local policy writes its tool calls into its text as
 * `<tool_call>` blocks and also reports them parsed; the blocks are taken out of the content so
 * that the calls are not rendered twice (the chat template writes `toolCalls` after the content).
 */
export function assistantMessage(text: string, toolCalls: ChatToolCall[] | undefined): ChatMessage {
  if (!toolCalls || toolCalls.length === 0) return { role: 'assistant', content: text };
  const content = text.replace(/<tool_call>[\s\S]*?(?:<\/tool_call>|$)/g, '').trim();
  return { role: 'assistant', content, toolCalls };
}
