/**
 * `HouseholdEnv`: the ALFWorld-style text world as an `Env` (TextWorld feedback, admissible commands,
 * win reward).
 */
import type { Env, StepResult } from '../types.ts';
import {
  type HouseholdConfig,
  HouseholdGenerator,
  type HouseholdTask,
  renderHouseholdTask,
} from './generator.ts';
import { HouseholdState, type HouseholdView } from './world.ts';

export const HOUSEHOLD_INSTRUCTIONS =
  'Reply with one command, e.g. "go to cabinet 1", "open cabinet 1", "take mug 1 from cabinet 1", ' +
  '"move mug 1 to countertop 1", "heat mug 1 with microwave 1" (also cool, clean), "use desklamp 1", ' +
  '"examine cabinet 1", "inventory" or "look". You hold one object at a time.';

/** Reward on the step the goal first holds (ALFWorld's convention). */
export const HOUSEHOLD_WIN_REWARD = 10;

/**
 * The ALFWorld-style household env. `resetSync`/`stepSync` are the synchronous hot path
 * (random play, rollouts of many envs); `reset`/`step` wrap them for the async Env interface.
 */
export class HouseholdEnv implements Env<HouseholdTask> {
  readonly name = 'household';
  readonly instructions = HOUSEHOLD_INSTRUCTIONS;
  readonly generator: HouseholdGenerator;
  private state: HouseholdState | undefined;
  private current: HouseholdTask | undefined;
  private steps = 0;
  private finished = false;
  private lastObservation = '';

  constructor(config: Partial<HouseholdConfig> = {}) {
    this.generator = new HouseholdGenerator(config);
  }

  get task(): HouseholdTask | undefined {
    return this.current;
  }

  get anchor(): string {
    if (this.generator.config.anchor === 'observation' || !this.state) return this.lastObservation;
    const { goal: _goal, ...world } = this.state.view();
    return JSON.stringify(world);
  }

  /** Steps taken in the current trajectory. */
  get stepCount(): number {
    return this.steps;
  }

  resetSync(seed: number, task?: HouseholdTask): string {
    const t = task ?? this.generator.generate(this.generator.config.split, seed);
    if (t.env !== this.name)
      throw new Error(`HouseholdEnv.reset: task ${t.id} is for env "${t.env}", not household`);
    this.current = t;
    this.state = new HouseholdState(t.payload);
    this.steps = 0;
    this.finished = false;
    this.lastObservation = renderHouseholdTask(t);
    return this.lastObservation;
  }

  stepSync(action: string): StepResult {
    if (!this.state) throw new Error('HouseholdEnv.step: call reset() before step()');
    if (this.finished) {
      throw new Error(
        `HouseholdEnv.step: trajectory of task ${this.current!.id} is finished; call reset() first`,
      );
    }
    const { feedback, admissible } = this.state.execute(action);
    this.steps++;
    const won = this.state.goalHolds();
    this.finished = won || this.steps >= this.generator.config.maxSteps;
    this.lastObservation = feedback;
    return {
      observation: feedback,
      reward: won ? HOUSEHOLD_WIN_REWARD : 0,
      done: this.finished,
      // A command that is not admissible did nothing: an invalid action (ALGORITHMS.md), so the
      // invalid-action penalty applies to it; the agent still reads "Nothing happens.".
      info: { won, valid: admissible },
    };
  }

  /** The current state as plain data (the exploring expert's input for DAgger labels). */
  view(): HouseholdView {
    if (!this.state) throw new Error('HouseholdEnv.view: call reset() first');
    return this.state.view();
  }

  admissibleActions(): string[] {
    if (!this.state) throw new Error('HouseholdEnv.admissibleActions: call reset() first');
    return this.state.admissible();
  }

  async reset(seed: number, task?: HouseholdTask): Promise<string> {
    return this.resetSync(seed, task);
  }

  async step(action: string): Promise<StepResult> {
    return this.stepSync(action);
  }
}
