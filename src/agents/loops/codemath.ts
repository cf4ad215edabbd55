/**
 * The code/math loop: the model computes with Python (`<code>...</code>`, `<python>...</python>`
 * or a `python` tool call), reads what the program printed (a tool message answering a tool call, a user
 * message after a tag), and answers with
 * `<answer>...</answer>`. The env runs the code in its sandboxed Python tool and checks the answer
 * exactly. Invalid responses, turn and time limits behave as in the search loop.
 */
import { z } from 'zod';
import type { CodeMathTask } from '../../envs/codemath/generator.ts';
import type { Env } from '../../envs/types.ts';
import { codeMathPrompt } from '../prompts/codemath.ts';
import type { Trajectory } from '../record.ts';
import type { ChatModel } from '../types.ts';
import { type Episode, LoopOptions, parseOptions } from './shared.ts';
import { runToolLoop } from './tool-loop.ts';

export const CodeMathLoopOptions = LoopOptions.extend({
  /** Turns (programs, invalid responses and the answer) before the trajectory ends unanswered. */
  maxTurns: z.number().int().min(1).default(4),
  /** Offer the tools of `episode.tools` to the model as OpenAI tool definitions (see SearchLoopOptions). */
  toolCalling: z.boolean().default(false),
});
export type CodeMathLoopOptions = z.output<typeof CodeMathLoopOptions>;

export async function runCodeMath(
  env: Env<CodeMathTask>,
  model: ChatModel,
  episode: Episode<CodeMathTask>,
  options: z.input<typeof CodeMathLoopOptions> = {},
): Promise<Trajectory> {
  const opts = parseOptions(CodeMathLoopOptions, options, 'codemath');
  return runToolLoop(env, model, episode, {
    opts,
    tags: { code: 'python', python: 'python' },
    toolTags: { python: { tag: 'python', field: 'code' } },
    prompt: (problem) => codeMathPrompt(problem, opts.maxTurns),
  });
}
