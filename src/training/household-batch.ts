/**
 * Household rollouts in lock step, for evaluations that must be large to tell (200+ tasks) and
 * for DAgger: every live trajectory's next prompt goes into one `Policy.generate` batch per step,
 * with no chat batcher, time limits or store records in between. Prompts, parsing and history are
 * the household loop's own (`householdPrompt`, `parseHouseholdResponse`, the invalid-step note), so
 * a greedy lock-step trajectory is the one `runHousehold` would produce. Also: greedy action
 * accuracy on expert decisions, the SFT selection figure.
 */
import { INVALID_ACTION_NOTE } from '../agents/loops/household.ts';
import {
  type ActionChoice,
  actionChoices,
  type HouseholdTurn,
  householdMessages,
  type PromptFormat,
  parseHouseholdResponse,
} from '../agents/prompts/household.ts';
import type { ChatMessage } from '../agents/types.ts';
import { HouseholdEnv } from '../envs/household/env.ts';
import { exploringAction, NoExpertActionError } from '../envs/household/expert.ts';
import type { HouseholdConfig, HouseholdTask } from '../envs/household/generator.ts';
import type { Policy } from '../policy/policy.ts';
import { expertReply } from './families/household.ts';
import type { Demonstrated } from './family.ts';
import { type Interval, wilson } from './stats.ts';

export interface LockstepOptions {
  /**
   * The loop's `promptFormat`. Required: a policy trained on one format fails every task on the
   * other, and a default here once made a diagnosis probe report 0% for a 41% policy.
   */
  promptFormat: PromptFormat;
  /** H: earlier (observation, action) pairs in the 'windowed' prompt (the loop's `history`). */
  history: number;
  /** Decisions per trajectory (the loop's `maxSteps`). */
  maxSteps: number;
  /** Reply length cap in tokens (the loop's `maxTokens`). */
  maxTokens: number;
  /** 0: greedy (evaluation). */
  temperature?: number;
  seed?: number;
  /** The household env's options (rooms must match the tasks' generator). */
  envOptions?: Partial<HouseholdConfig>;
  /** Prompts per `Policy.generate` call (bounds the KV cache: rows x context x width x layers). */
  batch?: number;
  /** Record, for every state visited, the exploring expert's command there (DAgger's labels). */
  label?: boolean;
  /** The loop's `actions`: 'admissible' decodes each command as one of the admissible ones. */
  actions?: ActionChoice;
}

export interface LockstepTrajectory {
  task: HouseholdTask;
  won: boolean;
  /** Decisions taken (invalid ones included). */
  steps: number;
  /** Decisions that were malformed or not admissible. */
  invalid: number;
  /** The actions sent to the env (undefined for a malformed reply). */
  actions: (string | undefined)[];
  /** With `label`: each visited state's prompt with the expert's reply there. */
  labelled: Demonstrated[];
}

interface Live extends LockstepTrajectory {
  env: HouseholdEnv;
  observation: string;
  past: HouseholdTurn[];
  /** The admissible commands the current prompt shows. */
  admissible: string[];
  done: boolean;
}

/** One trajectory per task, all stepped together; returned in task order. */
export async function householdLockstep(
  policy: Policy,
  tasks: readonly HouseholdTask[],
  options: LockstepOptions,
): Promise<LockstepTrajectory[]> {
  const batch = options.batch ?? 64;
  const context = policy.config.contextLength;
  const runs: Live[] = tasks.map((task) => {
    const env = new HouseholdEnv(options.envOptions);
    const observation = env.resetSync(task.seed, task);
    return {
      task,
      env,
      observation,
      past: [],
      admissible: [],
      done: false,
      won: false,
      steps: 0,
      invalid: 0,
      actions: [],
      labelled: [],
    };
  });
  for (let step = 0; step < options.maxSteps; step++) {
    const live = runs.filter((r) => !r.done);
    if (live.length === 0) break;
    const asks: { run: Live; messages: ChatMessage[]; tokens: number[] }[] = [];
    for (const run of live) {
      run.admissible = run.env.admissibleActions();
      const messages = householdMessages({
        format: options.promptFormat,
        history: options.history,
        task: run.task.payload.goalText,
        past: run.past,
        observation: run.observation,
        admissible: run.admissible,
      });
      const tokens = policy.encodePrompt(messages);
      // As the loop: a prompt that fills the context ends the trajectory without a decision.
      if (tokens.length >= context) {
        run.done = true;
        continue;
      }
      if (options.label) {
        const action = expertAction(run.env);
        if (action !== undefined) run.labelled.push({ messages, reply: expertReply(action) });
      }
      asks.push({ run, messages, tokens });
    }
    // Similar lengths together: less left padding per batch.
    asks.sort((a, b) => a.tokens.length - b.tokens.length);
    for (let i = 0; i < asks.length; i += batch) {
      const part = asks.slice(i, i + batch);
      const out = await policy.generate(
        part.map((a) => a.tokens),
        {
          temperature: options.temperature ?? 0,
          maxNewTokens: options.maxTokens,
          seed: (options.seed ?? 0) + step * 1_000_003 + i,
          rows: part.map(({ run }) => {
            const choices = actionChoices(options.actions ?? 'free', run.admissible);
            return choices ? { choices } : {};
          }),
        },
      );
      for (const [j, { run }] of part.entries()) act(run, out[j]!, options.maxSteps);
    }
  }
  return runs.map(({ task, won, steps, invalid, actions, labelled }) => ({
    task,
    won,
    steps,
    invalid,
    actions,
    labelled,
  }));
}

/** One decision of `run`, exactly as the household loop takes it. */
function act(run: Live, out: { text?: string; tokens: number[] }, maxSteps: number): void {
  const text = out.text ?? '';
  const decision = parseHouseholdResponse(text);
  const shown = {
    observation: run.observation,
    reply: { text, tokenIds: out.tokens },
    admissible: run.admissible,
  };
  run.steps++;
  if (!decision.valid) {
    run.invalid++;
    run.actions.push(undefined);
    run.past.push({ ...shown, action: INVALID_ACTION_NOTE });
  } else {
    const r = run.env.stepSync(decision.action);
    if (!r.info.valid) run.invalid++;
    run.actions.push(decision.action);
    run.past.push({ ...shown, action: decision.action });
    run.observation = r.observation;
    if (r.done) {
      run.won = r.info.won;
      run.done = true;
    }
  }
  if (run.steps >= maxSteps) run.done = true;
}

/** The exploring expert's command in the env's state; undefined where it has none (left unlabelled). */
export function expertAction(env: HouseholdEnv): string | undefined {
  try {
    return exploringAction(env.view());
  } catch (err) {
    if (err instanceof NoExpertActionError) return undefined;
    throw err;
  }
}

/** A greedy evaluation with its interval. */
export interface HouseholdEvaluation {
  tasks: number;
  successes: number;
  success: number;
  /** Wilson 95% interval of the success rate. */
  ci95: Interval;
  /** Share of decisions that were malformed or not admissible. */
  invalidRate: number;
  meanSteps: number;
  /** Per task (in task order): 1 won, 0 not; pairs with another evaluation on the same tasks. */
  outcomes: number[];
  byType: Record<string, { tasks: number; success: number }>;
}

/** Greedy success on `tasks`, batched (one lock-step trajectory per task). */
export async function evaluateHousehold(
  policy: Policy,
  tasks: readonly HouseholdTask[],
  options: Omit<LockstepOptions, 'temperature' | 'label'>,
): Promise<HouseholdEvaluation> {
  const runs = await householdLockstep(policy, tasks, { ...options, temperature: 0 });
  const outcomes: number[] = runs.map((r) => (r.won ? 1 : 0));
  const successes = outcomes.reduce((a, b) => a + b, 0);
  const decisions = runs.reduce((a, r) => a + r.steps, 0);
  const byType: HouseholdEvaluation['byType'] = {};
  for (const r of runs) {
    byType[r.task.kind] ??= { tasks: 0, success: 0 };
    const e = byType[r.task.kind]!;
    e.tasks++;
    e.success += r.won ? 1 : 0;
  }
  for (const e of Object.values(byType)) e.success /= e.tasks;
  return {
    tasks: runs.length,
    successes,
    success: successes / runs.length,
    ci95: wilson(successes, runs.length),
    invalidRate: decisions === 0 ? 0 : runs.reduce((a, r) => a + r.invalid, 0) / decisions,
    meanSteps: decisions / runs.length,
    outcomes,
    byType,
  };
}

/** Greedy action accuracy on expert decisions. */
export interface ActionAccuracy {
  decisions: number;
  correct: number;
  accuracy: number;
  ci95: Interval;
  /**
   * By the expert command's verb (go, open, take, move, heat, use...): decisions and correct ones,
   * and the greedy replies that were malformed; where imitation fails, not only how often.
   */
  byVerb: Record<string, { decisions: number; correct: number; malformed: number }>;
}

/**
 * Greedy action accuracy: the share of expert decisions (prompt + expert reply) where the
 * policy's greedy reply names the expert's command. Measured on the expert's own states, it is
 * what behaviour cloning optimizes, read in the currency that matters (a reply's loss hides that
 * only a few of its tokens carry the decision).
 */
export async function actionAccuracy(
  policy: Policy,
  demos: readonly Demonstrated[],
  options: { maxTokens: number; batch?: number },
): Promise<ActionAccuracy> {
  if (demos.length === 0) throw new Error('actionAccuracy: no expert decisions to compare with');
  const batch = options.batch ?? 64;
  const context = policy.config.contextLength;
  const items = demos
    .map((d) => {
      const want = parseHouseholdResponse(d.reply);
      if (!want.valid) throw new Error(`actionAccuracy: the expert reply "${d.reply}" has no action`);
      return { tokens: policy.encodePrompt(d.messages), want: want.action };
    })
    .sort((a, b) => a.tokens.length - b.tokens.length);
  let correct = 0;
  const byVerb: ActionAccuracy['byVerb'] = {};
  for (const it of items) {
    byVerb[verbOf(it.want)] ??= { decisions: 0, correct: 0, malformed: 0 };
    byVerb[verbOf(it.want)]!.decisions++;
  }
  for (let i = 0; i < items.length; i += batch) {
    const part = items.slice(i, i + batch);
    const fits = part.filter((p) => p.tokens.length < context);
    if (fits.length === 0) continue;
    const out = await policy.generate(
      fits.map((p) => p.tokens),
      { temperature: 0, maxNewTokens: options.maxTokens },
    );
    fits.forEach((p, j) => {
      const got = parseHouseholdResponse(out[j]!.text ?? '');
      const entry = byVerb[verbOf(p.want)]!;
      if (!got.valid) entry.malformed++;
      else if (got.action === p.want) {
        correct++;
        entry.correct++;
      }
    });
  }
  return {
    decisions: items.length,
    correct,
    accuracy: correct / items.length,
    ci95: wilson(correct, items.length),
    byVerb,
  };
}

/** A command's verb: "go to cabinet 1" -> "go". */
function verbOf(command: string): string {
  return command.split(' ')[0]!;
}
