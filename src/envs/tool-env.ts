/**
 * `ToolAnswerEnv`: the turn bookkeeping the tool-using envs share (a tool action or an `<answer>`,
 * turn limit, misuse errors).
 */
import { parseAction } from './actions.ts';
import type { Env, StepResult, Task } from './types.ts';

/** How an answer scored: the reward, whether it counts as won, and extras for `info`. */
export interface AnswerScore {
  reward: number;
  won: boolean;
  info?: Record<string, unknown>;
}

/**
 * What the tool-using envs (search QA, code/math) share: a trajectory is at most `maxTurns` steps,
 * each either a tool action `<toolTag>body</toolTag>` (its output is the next observation) or
 * `<answer>text</answer>` (scored, ends the trajectory); anything else is an invalid step. The
 * anchor is the task text at reset, then each observation. Subclasses say how to make, render and
 * score a task and how to run the tool; the turn bookkeeping and misuse errors live here once.
 */
export abstract class ToolAnswerEnv<T extends Task> implements Env<T> {
  abstract readonly name: string;
  abstract readonly instructions: string;
  /** The action tag that calls the env's tool ('search', 'python'). */
  protected abstract readonly toolTag: string;
  protected abstract get maxTurns(): number;
  private current: T | undefined;
  private turns = 0;
  private finished = false;
  private lastObservation = '';

  /** The task for `seed` when `reset` is given none. */
  protected abstract makeTask(seed: number): T;
  protected abstract render(task: T): string;
  protected abstract runTool(body: string): Promise<string>;
  protected abstract score(answer: string, task: T): AnswerScore;
  /** Called at every reset, before the first observation (e.g. a fresh interpreter). */
  protected async onReset(): Promise<void> {}

  get task(): T | undefined {
    return this.current;
  }

  get anchor(): string {
    return this.lastObservation;
  }

  private get label(): string {
    return this.constructor.name;
  }

  async reset(seed: number, task?: T): Promise<string> {
    const t = task ?? this.makeTask(seed);
    if (t.env !== this.name) {
      throw new Error(`${this.label}.reset: task ${t.id} is for env "${t.env}", not ${this.name}`);
    }
    await this.onReset();
    this.current = t;
    this.turns = 0;
    this.finished = false;
    this.lastObservation = this.render(t);
    return this.lastObservation;
  }

  async step(action: string): Promise<StepResult> {
    if (!this.current) throw new Error(`${this.label}.step: call reset() before step()`);
    if (this.finished) {
      throw new Error(
        `${this.label}.step: trajectory of task ${this.current.id} is finished; call reset() first`,
      );
    }
    this.turns++;
    const outOfTurns = this.turns >= this.maxTurns;
    const parsed = parseAction(action, [this.toolTag, 'answer']);
    let result: StepResult;
    if (parsed?.tag === 'answer') {
      const s = this.score(parsed.body, this.current);
      result = {
        observation: `Your answer: ${parsed.body}`,
        reward: s.reward,
        done: true,
        info: { won: s.won, valid: true, ...s.info },
      };
    } else if (parsed?.tag === this.toolTag && parsed.body !== '') {
      const observation = await this.runTool(parsed.body);
      result = { observation, reward: 0, done: outOfTurns, info: { won: false, valid: true } };
    } else {
      result = {
        observation: `Invalid action. ${this.instructions}`,
        reward: 0,
        done: outOfTurns,
        info: { won: false, valid: false },
      };
    }
    this.finished = result.done;
    this.lastObservation = result.observation;
    return result;
  }
}
