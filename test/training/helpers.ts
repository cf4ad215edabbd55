/**
 * A trivially learnable task family, built on the public Env interface: two doors, the prize is
 * always behind the red one. Its expert is a coin flip, so SFT teaches the reply format and a
 * policy that wins about half the time; RL has to find the red door.
 */

import type { AgentEnv } from '../../src/agents/loops/rollout.ts';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import type { Env, Expert, Split, StepResult, Task } from '../../src/envs/types.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { expertReply } from '../../src/training/families/household.ts';

export type DoorTask = Task<'doors', { goalText: string }>;

const DOORS = ['open red door', 'open blue door'];
const OPENING = 'You are in a hall with a red door and a blue door. Your task is to: find the prize.';

export function doorTask(split: Split, seed: number): DoorTask {
  return {
    env: 'household',
    id: `doors/${split}/${seed}`,
    kind: 'doors',
    split,
    seed,
    payload: { goalText: 'find the prize.' },
  };
}

/** Named 'household' so the household loop plays it (the loop is chosen by env name). */
export class DoorEnv implements Env<DoorTask> {
  readonly name = 'household';
  readonly instructions = 'Open one door.';
  task: DoorTask | undefined;
  anchor = '';

  async reset(seed: number, task?: DoorTask): Promise<string> {
    this.task = task ?? doorTask('train', seed);
    this.anchor = OPENING;
    return OPENING;
  }

  async step(action: string): Promise<StepResult> {
    const won = action === 'open red door';
    this.anchor = won ? 'You found the prize.' : 'The room is empty.';
    return {
      observation: this.anchor,
      reward: won ? 10 : 0,
      done: true,
      info: { won, valid: DOORS.includes(action) },
    };
  }

  admissibleActions(): string[] {
    return [...DOORS];
  }
}

/** Opens a door chosen by the task's seed: right half the time. */
export const coinFlipExpert: Expert = {
  demonstrate: (task) => ({ actions: [DOORS[task.seed % 2]!] }),
};

export const doorHooks = {
  tasks: doorTask as (split: Split, seed: number) => Task,
  makeEnv: (): AgentEnv => ({ env: new DoorEnv() as unknown as Env }),
  expert: coinFlipExpert,
};

/** A tokenizer fitted to the door prompts and replies (keeps them a few dozen tokens long). */
export function doorTokenizer(): Tokenizer {
  const prompt = householdPrompt({
    task: 'find the prize.',
    stepCount: 0,
    history: [],
    observation: OPENING,
    admissible: DOORS,
  });
  const texts = [prompt[0]!.content, ...DOORS.map(expertReply), 'You found the prize.', 'The room is empty.'];
  return Tokenizer.train(Array(20).fill(texts).flat(), { vocabSize: 400 });
}

/** A small model: fast enough for tests, big enough to learn the door task. */
export const TINY_MODEL = { width: 64, layers: 2, heads: 2, contextLength: 256 };
