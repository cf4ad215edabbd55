/** `CodeMathEnv`: code/math problems solved with the Python tool, answers judged exactly. */
import { z } from 'zod';
import type { Tool } from '../../tools/types.ts';
import { type AnswerScore, ToolAnswerEnv } from '../tool-env.ts';
import { SPLITS } from '../types.ts';
import {
  CodeMathConfig,
  CodeMathGenerator,
  type CodeMathTask,
  type MathProblem,
  renderCodeMathTask,
} from './generator.ts';
import { normalizeDigits, normalizeNumber } from './numbers.ts';

export const CodeMathEnvConfig = CodeMathConfig.extend({
  /** Split `reset(seed)` draws problems from when no task is given. */
  split: z.enum(SPLITS).default('train'),
  /** Steps (python runs, invalid actions and the answer) before the trajectory ends unanswered. */
  maxTurns: z.number().int().min(1).default(4),
});
export type CodeMathEnvConfig = z.infer<typeof CodeMathEnvConfig>;

export const CODEMATH_INSTRUCTIONS =
  'Run Python with <python>code</python> (you see what it prints); answer with <answer>number</answer>.';

/** Whether `text` is the problem's answer after numeric normalization (or digit normalization for bases). */
export function isCorrect(text: string, problem: MathProblem): boolean {
  if (problem.answerBase) return normalizeDigits(text, problem.answerBase) === problem.answer;
  return normalizeNumber(text) === problem.answer;
}

/**
 * Word problems that need exact computation. Actions: `<python>code</python>` (run by the injected
 * Python tool, one per env; its state lives for one trajectory) or `<answer>text</answer>`
 * (reward 1 if right after numeric normalization, else 0). The anchor is the problem at reset,
 * then each run's output.
 */
export class CodeMathEnv extends ToolAnswerEnv<CodeMathTask> {
  readonly name = 'codemath';
  readonly instructions = CODEMATH_INSTRUCTIONS;
  protected readonly toolTag = 'python';
  readonly config: CodeMathEnvConfig;
  readonly generator: CodeMathGenerator;
  private readonly python: Tool | undefined;

  /** `python`: the Python tool (input `{ code }`); without it, `<python>` steps report that it is missing. */
  constructor(config: Partial<z.input<typeof CodeMathEnvConfig>> = {}, deps: { python?: Tool } = {}) {
    super();
    this.config = CodeMathEnvConfig.parse(config);
    this.generator = new CodeMathGenerator(this.config);
    this.python = deps.python;
  }

  protected get maxTurns(): number {
    return this.config.maxTurns;
  }

  protected makeTask(seed: number): CodeMathTask {
    return this.generator.generate(this.config.split, seed);
  }

  protected render(task: CodeMathTask): string {
    return renderCodeMathTask(task);
  }

  protected score(answer: string, task: CodeMathTask): AnswerScore {
    const won = isCorrect(answer, task.payload);
    return { reward: won ? 1 : 0, won };
  }

  /** A new trajectory starts with a fresh interpreter: nothing computed for another task leaks in. */
  protected async onReset(): Promise<void> {
    await this.python?.reset?.();
  }

  async close(): Promise<void> {
    await this.python?.close?.();
  }

  protected async runTool(code: string): Promise<string> {
    if (!this.python) return 'No Python tool is configured for this env.';
    const r = await this.python.execute({ code });
    if (r.ok) return r.output === '' ? '(no output)' : r.output;
    return `Error (${r.errorKind ?? 'tool_error'}): ${r.error ?? ''}${r.output ? `\n${r.output}` : ''}`;
  }
}
