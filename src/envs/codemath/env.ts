import { z } from 'zod';
import type { Tool } from '../../tools/types.ts';
import { parseAction } from '../actions.ts';
import { type Env, SPLITS, type StepResult } from '../types.ts';
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
export class CodeMathEnv implements Env<CodeMathTask> {
  readonly name = 'codemath';
  readonly instructions = CODEMATH_INSTRUCTIONS;
  readonly config: CodeMathEnvConfig;
  readonly generator: CodeMathGenerator;
  private readonly python: Tool | undefined;
  private current: CodeMathTask | undefined;
  private turns = 0;
  private finished = false;
  private lastObservation = '';

  /** `python`: the Python tool (input `{ code }`); without it, `<python>` steps report that it is missing. */
  constructor(config: Partial<z.input<typeof CodeMathEnvConfig>> = {}, deps: { python?: Tool } = {}) {
    this.config = CodeMathEnvConfig.parse(config);
    this.generator = new CodeMathGenerator(this.config);
    this.python = deps.python;
  }

  get task(): CodeMathTask | undefined {
    return this.current;
  }

  get anchor(): string {
    return this.lastObservation;
  }

  async reset(seed: number, task?: CodeMathTask): Promise<string> {
    const t = task ?? this.generator.generate(this.config.split, seed);
    if (t.env !== this.name)
      throw new Error(`CodeMathEnv.reset: task ${t.id} is for env "${t.env}", not codemath`);
    // A new trajectory starts with a fresh interpreter: nothing computed for another task leaks in.
    await this.python?.reset?.();
    this.current = t;
    this.turns = 0;
    this.finished = false;
    this.lastObservation = renderCodeMathTask(t);
    return this.lastObservation;
  }

  async step(action: string): Promise<StepResult> {
    if (!this.current) throw new Error('CodeMathEnv.step: call reset() before step()');
    if (this.finished)
      throw new Error(
        `CodeMathEnv.step: trajectory of task ${this.current.id} is finished; call reset() first`,
      );
    this.turns++;
    const outOfTurns = this.turns >= this.config.maxTurns;
    const parsed = parseAction(action, ['python', 'answer']);
    let result: StepResult;
    if (parsed?.tag === 'answer') {
      const won = isCorrect(parsed.body, this.current.payload);
      result = {
        observation: `Your answer: ${parsed.body}`,
        reward: won ? 1 : 0,
        done: true,
        info: { won, valid: true },
      };
    } else if (parsed?.tag === 'python' && parsed.body !== '') {
      result = {
        observation: await this.run(parsed.body),
        reward: 0,
        done: outOfTurns,
        info: { won: false, valid: true },
      };
    } else {
      result = {
        observation: `Invalid action. ${CODEMATH_INSTRUCTIONS}`,
        reward: 0,
        done: outOfTurns,
        info: { won: false, valid: false },
      };
    }
    this.finished = result.done;
    this.lastObservation = result.observation;
    return result;
  }

  async close(): Promise<void> {
    await this.python?.close?.();
  }

  private async run(code: string): Promise<string> {
    if (!this.python) return 'No Python tool is configured for this env.';
    const r = await this.python.execute({ code });
    if (r.ok) return r.output === '' ? '(no output)' : r.output;
    return `Error (${r.errorKind ?? 'tool_error'}): ${r.error ?? ''}${r.output ? `\n${r.output}` : ''}`;
  }
}
