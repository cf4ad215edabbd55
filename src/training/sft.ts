/**
 * SFT warm-start: behaviour cloning on expert demonstrations. Each expert decision becomes one
 * sample rendered exactly as its loop prompts the policy (the family's `demonstrations`, the chat
 * template) with the expert's reply and the end token; the loss is masked cross-entropy on the
 * reply's tokens (Policy.update with the SFT loss). The result is RL's starting point and its
 * frozen reference. Options that make it scale: a learning-rate schedule, fresh demonstrations
 * every batch (a stream), checkpoint selection on a held-out figure, and DAgger rounds.
 */
import type { z } from 'zod';
import type { Split, Task } from '../envs/types.ts';
import type { Params } from '../policy/model/params.ts';
import type { Policy } from '../policy/policy.ts';
import type { TokenRow } from '../policy/runtime/runner.ts';
import type { SpaceMode } from '../policy/tokenizer/pretokenize.ts';
import { type PolicyTokenizer, Tokenizer } from '../policy/tokenizer/tokenizer.ts';
import { Rng } from '../util/random.ts';
import type { SftConfig } from './config.ts';
import type { ProgressEvent } from './context.ts';
import { domainCorpus } from './corpus.ts';
import type { Demonstrated } from './family.ts';
import { commonPrefix } from './update.ts';

/** One behaviour-cloning sample: the prompt's token ids and the expert reply's (end token included). */
export interface SftSample {
  prompt: number[];
  response: number[];
}

/**
 * Demonstrations as token samples. Samples longer than `contextLength` are left out (the loop
 * could not prompt them either).
 */
export function sftSamples(
  demos: readonly Demonstrated[],
  tokenizer: PolicyTokenizer,
  contextLength: number,
): SftSample[] {
  const samples: SftSample[] = [];
  for (const d of demos) {
    const prompt = tokenizer.applyChatTemplate(d.messages, { addGenerationPrompt: true });
    const response = [...tokenizer.encode(d.reply), tokenizer.endId];
    if (prompt.length + response.length <= contextLength) samples.push({ prompt, response });
  }
  return samples;
}

/**
 * How many demonstrations of each role fit `contextLength`, as "planner 40/42, executor 40/40"
 * (roles in order of appearance); empty when no demonstration has a role (single-agent loops).
 */
export function keptByRole(
  demos: readonly Demonstrated[],
  tokenizer: PolicyTokenizer,
  contextLength: number,
): string {
  const byRole = new Map<string, Demonstrated[]>();
  for (const d of demos) if (d.role !== undefined) byRole.set(d.role, [...(byRole.get(d.role) ?? []), d]);
  return [...byRole]
    .map(([role, ds]) => `${role} ${sftSamples(ds, tokenizer, contextLength).length}/${ds.length}`)
    .join(', ');
}

/**
 * A tokenizer for the loop's prompts: the envs' text (the corpus of `stepwise init-policy`, or the
 * family's own `texts`) plus the loop's prompts and replies along expert demonstrations, so the
 * prompt's fixed wording becomes a few tokens and long prompts still fit the context.
 */
export async function domainTokenizer(options: DomainTokenizerOptions): Promise<Tokenizer> {
  const { vocabSize, tokenizerTasks, demos = [], texts, spaces = 'attached', superwords = 0 } = options;
  const corpus = texts ? [...texts] : await domainCorpus(tokenizerTasks);
  for (const d of demos) corpus.push(...d.messages.map((m) => m.content), d.reply);
  return Tokenizer.train(corpus, { vocabSize, spaces, superwords });
}

/**
 * What `domainTokenizer` is trained from and how: the `policy` config's own fields under their own
 * names (`domainTokenizer({ ...config.policy, demos })`), plus the demonstrations and texts.
 */
export interface DomainTokenizerOptions {
  vocabSize: number;
  /** Tasks per env in the envs' corpus (unused with `texts`; default `domainCorpus`'s). */
  tokenizerTasks?: number;
  demos?: readonly Demonstrated[];
  /** The family's own corpus instead of the envs' (`family.tokenizerText`). */
  texts?: readonly string[];
  spaces?: SpaceMode;
  superwords?: number;
}

/**
 * A stream of fresh demonstrations: the expert's decisions on new tasks of `split` (seeds from
 * `firstSeed` on, `tasksPerDraw` at a time), as samples in a seeded shuffled order. Tasks cost
 * nothing to generate, so no batch repeats a decision (issue 14: 200 tasks repeated 14 times
 * imitate badly). Samples longer than the context are left out, as in `sftSamples`.
 */
export function demonstrationStream(
  family: {
    task(split: Split, seed: number): Task;
    demonstrations(tasks: readonly Task[]): Promise<Demonstrated[]>;
  },
  tokenizer: PolicyTokenizer,
  contextLength: number,
  options: { split?: Split; firstSeed?: number; tasksPerDraw?: number; seed?: number } = {},
): SftStream {
  const split = options.split ?? 'train';
  const perDraw = options.tasksPerDraw ?? 16;
  const rng = new Rng(`sft-stream:${options.seed ?? 0}`);
  let nextSeed = options.firstSeed ?? 2_000_000;
  const buffer: SftSample[] = [];
  return {
    async next(n) {
      while (buffer.length < n) {
        const tasks = Array.from({ length: perDraw }, () => family.task(split, nextSeed++));
        const samples = sftSamples(await family.demonstrations(tasks), tokenizer, contextLength);
        if (samples.length === 0 && buffer.length === 0)
          throw new Error(`SFT stream: ${perDraw} ${split} tasks gave no sample that fits the context`);
        buffer.push(...rng.shuffle(samples));
      }
      return buffer.splice(0, n);
    },
  };
}

/** A sample as a training row: loss on the reply's tokens only. */
export function sftRow(s: SftSample): TokenRow {
  return {
    tokens: [...s.prompt, ...s.response],
    mask: [...s.prompt.map(() => 0), ...s.response.map(() => 1)],
  };
}

/**
 * A batch of samples as training rows whose common prompt opening, when it is at least
 * `sharedPrefix` tokens (0: never), is passed once for the whole batch (`TokenRow.prefix`): the
 * loss and gradients are the whole rows', for fewer tokens through the model.
 */
export function sftRows(samples: readonly SftSample[], sharedPrefix: number): TokenRow[] {
  const rows = samples.map(sftRow);
  if (sharedPrefix === 0 || rows.length < 2) return rows;
  const shared = commonPrefix(rows);
  if (shared < sharedPrefix) return rows;
  const prefix = rows[0]!.tokens.slice(0, shared);
  return rows.map((r) => ({ tokens: r.tokens.slice(shared), mask: r.mask.slice(shared), prefix }));
}

/** Mean cross-entropy per reply token of `samples` under `policy` (teacher-forced, scoring graph). */
export async function replyLoss(policy: Policy, samples: readonly SftSample[], batch = 32): Promise<number> {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < samples.length; i += batch) {
    const chunk = samples.slice(i, i + batch);
    const lps = await policy.scoreBatch(chunk.map((s) => ({ prompt: s.prompt, continuation: s.response })));
    for (const lp of lps) {
      for (const v of lp) sum -= v;
      count += lp.length;
    }
  }
  return count === 0 ? 0 : sum / count;
}

/**
 * The learning rate of optimizer step `step` (0-based): linear warm-up over `warmupSteps` to
 * `learningRate`, then constant, or a cosine (Loshchilov & Hutter, SGDR, arXiv:1608.03983) or
 * linear decay that reaches `decayTo` x `learningRate` at `maxSteps`.
 */
export function learningRateAt(
  step: number,
  c: Pick<z.output<typeof SftConfig>, 'learningRate' | 'warmupSteps' | 'decay' | 'decayTo' | 'maxSteps'>,
): number {
  if (step < c.warmupSteps) return (c.learningRate * (step + 1)) / c.warmupSteps;
  if (c.decay === 'constant') return c.learningRate;
  const span = Math.max(1, c.maxSteps - c.warmupSteps);
  const t = Math.min(1, (step - c.warmupSteps) / span);
  const shape = c.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * t)) : 1 - t;
  return c.learningRate * (c.decayTo + (1 - c.decayTo) * shape);
}

/** Fresh SFT samples on demand: each call gives `n` samples from tasks not drawn before. */
export interface SftStream {
  next(n: number): Promise<SftSample[]>;
}

/** What `runSft` may also do besides cloning: select a checkpoint, aggregate DAgger data. */
export interface SftExtras {
  /**
   * The selection figure (higher is better, e.g. held-out greedy action accuracy), measured every
   * `evalEvery` steps; the best checkpoint's weights are restored at the end.
   */
  select?: (policy: Policy) => Promise<number>;
  /** DAgger: samples labelled by the expert on states the current policy visits (config.dagger). */
  dagger?: (policy: Policy, round: number) => Promise<SftSample[]>;
}

export interface SftResult {
  steps: number;
  trainLoss: number;
  validLoss: number;
  /** Validation losses measured along the way, by step. */
  curve: { step: number; validLoss: number }[];
  /** The selection figure by step (with `select`). */
  selection?: { step: number; value: number }[];
  /** The checkpoint kept: its step and selection figure (with `select`). */
  selected?: { step: number; value: number };
  /** DAgger samples aggregated. */
  daggerSamples?: number;
  /**
   * Distinct samples training could draw on: the fixed set, the fresh stream's samples that a
   * trained batch held (not those drawn for a length pool the budget cut off), and the DAgger
   * states added.
   */
  samplesSeen?: number;
  stoppedBy: 'target' | 'budget';
  /** Wall-clock time of the optimizer steps and validations. */
  seconds: number;
  /** CPU time of this process over the same span (user + system). */
  cpuSeconds?: number;
}

/**
 * Behaviour cloning until the validation loss reaches `targetLoss` or `maxSteps` optimizer steps
 * were taken. Mini-batches come from a shuffled pass over `train` (seeded), or, when `train` is a
 * stream, from new samples every batch. The learning rate follows `learningRateAt` (warm-up and
 * decay). With `extras.select` the best checkpoint by that figure is kept; with
 * `extras.dagger` and `config.dagger.every`, DAgger rounds add expert-labelled states the policy
 * visited to an aggregate that fills `config.dagger.share` of each later batch (Ross et al., "A
 * Reduction of Imitation Learning and Structured Prediction to No-Regret Online Learning",
 * AISTATS 2011).
 */
export async function runSft(
  policy: Policy,
  train: readonly SftSample[] | SftStream,
  valid: readonly SftSample[],
  config: z.output<typeof SftConfig>,
  options: {
    seed?: number;
    onProgress?: (event: ProgressEvent) => void;
    log?: (line: string) => void;
  } & SftExtras = {},
): Promise<SftResult> {
  const stream = isStream(train) ? train : undefined;
  const fixed = isStream(train) ? [] : train;
  if (!stream && fixed.length === 0)
    throw new Error('SFT: no training samples (every demonstration was empty or too long)');
  if (valid.length === 0) throw new Error('SFT: no validation samples');
  const rng = new Rng(`sft:${options.seed ?? 0}`);
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  options.onProgress?.({ type: 'start', phase: 'sft', total: config.maxSteps });
  const order: number[] = [];
  const aggregate: SftSample[] = [];
  let samplesSeen = fixed.length;
  // Stream samples drawn but not yet in a trained batch (a length pool is drawn ahead).
  const pending = new Set<SftSample>();
  let trainLoss = Number.NaN;
  let validLoss = await replyLoss(policy, valid);
  const curve = [{ step: 0, validLoss }];
  const selection: { step: number; value: number }[] = [];
  let best: { step: number; value: number; params: Params } | undefined;
  const select = async (step: number) => {
    if (!options.select) return;
    const value = await options.select(policy);
    selection.push({ step, value });
    if (!best || value > best.value) best = { step, value, params: copyParams(policy) };
    options.log?.(
      `sft step ${step}: selection ${value.toFixed(4)} (best ${best.value.toFixed(4)} at ${best.step})`,
    );
  };
  await select(0);
  // The next batches: `lengthGroups` of them drawn at once (one when not grouping by length).
  const ready: SftSample[][] = [];
  const draw = async (): Promise<SftSample[][]> => {
    const groups = config.lengthGroups;
    const fromAggregate = aggregate.length === 0 ? 0 : Math.round(config.batchSize * config.dagger.share);
    const own = (config.batchSize - fromAggregate) * groups;
    let samples: SftSample[];
    if (stream) {
      samples = await stream.next(own);
      for (const x of samples) pending.add(x);
    } else {
      while (order.length < own) order.push(...rng.shuffle(fixed.map((_, i) => i)));
      samples = order.splice(0, own).map((i) => fixed[i]!);
    }
    for (let k = 0; k < fromAggregate * groups; k++)
      samples.push(aggregate[Math.floor(rng.next() * aggregate.length)]!);
    if (groups === 1) return [samples];
    const size = (x: SftSample) => x.prompt.length + x.response.length;
    samples.sort((x, y) => size(x) - size(y));
    const batches = Array.from({ length: groups }, (_, g) =>
      samples.slice(g * config.batchSize, (g + 1) * config.batchSize),
    );
    return rng.shuffle(batches);
  };
  let step = 0;
  let stoppedBy: SftResult['stoppedBy'] = 'budget';
  const daggerEvery = options.dagger ? config.dagger.every : 0;
  while (step < config.maxSteps) {
    if (validLoss <= config.targetLoss) {
      stoppedBy = 'target';
      break;
    }
    if (ready.length === 0) ready.push(...(await draw()));
    const drawn = ready.shift()!;
    for (const x of drawn) if (pending.delete(x)) samplesSeen++;
    const batch = sftRows(drawn, config.sharedPrefix);
    const m = await policy.update(batch, { kind: 'sft', learningRate: learningRateAt(step, config) });
    if (!Number.isFinite(m.loss)) throw new Error(`SFT diverged at step ${step}: the loss is ${m.loss}`);
    trainLoss = m.loss;
    step++;
    if (daggerEvery > 0 && step % daggerEvery === 0 && step < config.maxSteps) {
      const added = await options.dagger!(policy, step / daggerEvery);
      aggregate.push(...added);
      samplesSeen += added.length;
      options.log?.(
        `sft step ${step}: DAgger round added ${added.length} labelled states (${aggregate.length} in all)`,
      );
    }
    if (step % config.evalEvery === 0 || step === config.maxSteps) {
      validLoss = await replyLoss(policy, valid);
      curve.push({ step, validLoss });
      // With progress events the bar shows the validation loss; a line would break it.
      if (!options.onProgress)
        options.log?.(
          `sft step ${step}: train loss ${trainLoss.toFixed(4)}, valid loss ${validLoss.toFixed(4)}, lr ${learningRateAt(step - 1, config).toExponential(2)}`,
        );
      await select(step);
    }
    options.onProgress?.({ type: 'advance', phase: 'sft', done: step, loss: trainLoss, validLoss });
  }
  if (validLoss <= config.targetLoss) stoppedBy = 'target';
  options.onProgress?.({ type: 'end', phase: 'sft' });
  // Stopped between selections (the target loss): measure where it stopped, then keep the best.
  if (options.select && selection.at(-1)?.step !== step) await select(step);
  if (best && best.step !== step) policy.runner.setParams(best.params);
  const cpu = process.cpuUsage(cpuStart);
  return {
    steps: step,
    trainLoss,
    validLoss,
    curve,
    ...(options.select ? { selection, selected: { step: best!.step, value: best!.value } } : {}),
    ...(options.dagger && daggerEvery > 0 ? { daggerSamples: aggregate.length } : {}),
    samplesSeen,
    stoppedBy,
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

function isStream(train: readonly SftSample[] | SftStream): train is SftStream {
  return typeof (train as SftStream).next === 'function';
}

/** A copy of the policy's weights (the runner's arrays are replaced, not mutated, by updates). */
function copyParams(policy: Policy): Params {
  return new Map([...policy.runner.getParams()].map(([k, v]) => [k, v.slice()]));
}
