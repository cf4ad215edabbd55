/**
 * The types every stepwise environment shares (names follow DESIGN.md's Words table).
 *
 * A `Task` is plain JSON data: one problem instance with its split and seed. A `TaskGenerator`
 * makes tasks deterministically from (split, seed); an `Expert` turns a task into a
 * `Demonstration` (the env actions that solve it); an `Env` plays one trajectory of a task at a time.
 */

export const SPLITS = ['train', 'valid-seen', 'valid-unseen'] as const;
/** `valid-seen`: new instances of what training shows; `valid-unseen`: held-out layouts, entities or phrasings. */
export type Split = (typeof SPLITS)[number];

export interface Task<Kind extends string = string, Payload = unknown> {
  /** The env that plays it: 'household', 'search' or 'codemath' (or a user env's name). */
  env: string;
  /** Unique per generator config: `${env}/${split}/${seed}` for generated tasks. */
  id: string;
  /** The task type: a household task type, a question kind, a problem kind. */
  kind: Kind;
  split: Split;
  seed: number;
  /** Everything the env needs to play the task (the world, the question, the problem). */
  payload: Payload;
}

/** What `step` reports besides the observation. */
export interface StepInfo {
  /** The task's goal holds (household), the answer is correct (search, codemath). */
  won: boolean;
  /** The action was well formed for this env (a malformed action is a step, with valid false). */
  valid: boolean;
  /** Env-specific extras (e.g. search QA reports both `em` and `f1`). */
  [extra: string]: unknown;
}

export interface StepResult {
  observation: string;
  reward: number;
  done: boolean;
  info: StepInfo;
}

export interface Env<T extends Task = Task> {
  readonly name: string;
  /** How to act in this env, for prompts (the action format and what the actions are). */
  readonly instructions: string;
  /** The task of the current trajectory (undefined before the first reset). */
  readonly task: T | undefined;
  /**
   * Start a trajectory and return its first observation. Without `task`, the env's generator
   * makes one from `seed` (in the env's configured split); with it, `seed` is recorded and the
   * same task and seed always give the same transcript for the same actions.
   */
  reset(seed: number, task?: T): Promise<string>;
  /** Apply one action. Throws if the trajectory is finished (done) or reset was never called. */
  step(action: string): Promise<StepResult>;
  /** Commands that make sense in the current state, where the world has them (household). */
  admissibleActions?(): string[];
  /** The raw observation the next decision is made on, without history (GiGPO/HGPO group on it). */
  readonly anchor: string;
  /** Release tools and workers the env holds. */
  close?(): Promise<void>;
}

export interface TaskGenerator<T extends Task = Task> {
  readonly env: string;
  /** The task types this generator makes. */
  readonly kinds: readonly T['kind'][];
  /** The task for (split, seed); `kind` forces a task type (an unknown one throws, naming the known ones). */
  generate(split: Split, seed: number, kind?: string): T;
}

/** An expert's solution: env actions in order (commands, or tool calls then the final answer). */
export interface Demonstration {
  actions: string[];
}

export interface Expert<T extends Task = Task> {
  demonstrate(task: T): Demonstration;
}

/** Throws a clear error for a kind the generator does not know. */
export function checkKind<K extends string>(env: string, kinds: readonly K[], kind: string): K {
  if (!(kinds as readonly string[]).includes(kind)) {
    throw new Error(`${env}: unknown task type "${kind}" (expected one of: ${kinds.join(', ')})`);
  }
  return kind as K;
}

/** Throws a clear error for a split name that is not one of SPLITS. */
export function checkSplit(split: string): Split {
  if (!(SPLITS as readonly string[]).includes(split)) {
    throw new Error(`unknown split "${split}" (expected one of: ${SPLITS.join(', ')})`);
  }
  return split as Split;
}
