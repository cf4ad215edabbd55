/**
 * An iteration's update: training sequences (a whole trajectory when its prompts grow, else one
 * step), the step's advantage on every token of its response, behaviour log-probs (the rollout's
 * own when the policy has not changed since, else re-scored) and reference log-probs (only when
 * the KL term counts), then PPO epochs of shuffled mini-batches packed by token count through
 * `Policy.update`, with the loss built from the config's `ppo` section. A non-finite loss or a KL
 * past `ppo.maxKl` stops the run (`DivergenceError`) with its last good checkpoint named.
 */

import type { Policy } from '../policy/policy.ts';
import type { TokenRow } from '../policy/runtime/runner.ts';
import { Rng } from '../util/random.ts';
import { mean, type RunContext } from './context.ts';
import type { TrainStep } from './credit.ts';
/** A run that stopped because its update went wrong; its last good checkpoint is kept. */
export class DivergenceError extends Error {
  constructor(
    message: string,
    readonly lastGoodCheckpoint: string,
  ) {
    super(`${message}; the run stopped, its last good checkpoint is ${lastGoodCheckpoint}`);
    this.name = 'DivergenceError';
  }
}

/** Means over an iteration's mini-batches, and its throughput. */
export interface UpdateResult {
  loss: number;
  /** Mean KL to the reference (with `klCoef` 0: measured on `referenceSample` of the units). */
  kl: number;
  entropy: number;
  clipFraction: number;
  gradNorm: number;
  /** Response tokens trained on, over all epochs. */
  tokens: number;
  seconds: number;
  /** Training sequences, and how many of them hold a whole trajectory of several steps. */
  sequences: number;
  packed: number;
  /** Sequences left out because every advantage on them is 0 (`ppo.skipZeroAdvantage`). */
  skipped: number;
  /** Tokens passed through the model per epoch (prompts once per sequence, shared prefixes once), padding excluded. */
  sequenceTokens: number;
  /** The behaviour log-probs came from the rollout (no re-scoring pass). */
  rolloutLogprobs: boolean;
}

/**
 * One training sequence before scoring: `tokens` with the loss mask on the response tokens of its
 * steps, each step's advantage on its response, and the log-probs those tokens were sampled with
 * (when every step has them).
 */
export interface TrainSequence {
  tokens: number[];
  mask: number[];
  advantages: number[];
  behaviour?: number[];
  /** Steps it trains (1 for a step row). */
  steps: number;
  /** Sampled by an older policy: `behaviour` is its old log-probs whatever the options. */
  stale: boolean;
}

/**
 * Training sequences of `steps`. With `pack`, the steps of a trajectory whose every prompt starts
 * with the previous step's prompt and response (the growing prompt) become one sequence: the last
 * step's prompt and response, which holds every earlier response at its own positions. Each
 * response token then has exactly the context it was sampled in, so its log-prob, the loss and
 * the gradient are the per-step rows' (under token-mean aggregation), while the shared prompt is
 * processed once instead of once per step. Other trajectories train one row per step.
 */
export function trainingSequences(steps: readonly TrainStep[], pack: boolean): TrainSequence[] {
  const out: TrainSequence[] = [];
  for (const list of groupsInOrder(steps, (s) => (pack ? s.trajectory : undefined))) {
    if (list.length > 1 && promptsGrow(list)) out.push(sequenceOf(list));
    else for (const s of list) out.push(sequenceOf([s]));
  }
  return out;
}

/**
 * `items` grouped by key, groups in the order of their first item; an item without a key is a
 * group of its own, in its place.
 */
function groupsInOrder<T, K>(items: readonly T[], keyOf: (item: T) => K | undefined): T[][] {
  const byKey = new Map<K, T[]>();
  const groups: T[][] = [];
  for (const item of items) {
    const key = keyOf(item);
    const group = key === undefined ? undefined : byKey.get(key);
    if (group) group.push(item);
    else {
      groups.push([item]);
      if (key !== undefined) byKey.set(key, groups.at(-1)!);
    }
  }
  return groups;
}

/** Whether each step's prompt starts with the previous step's prompt and response, token for token. */
export function promptsGrow(steps: readonly TrainStep[]): boolean {
  for (let i = 1; i < steps.length; i++) {
    const prev = steps[i - 1]!;
    const next = steps[i]!.prompt;
    const n = prev.prompt.length + prev.response.length;
    if (next.length < n) return false;
    for (let t = 0; t < prev.prompt.length; t++) if (next[t] !== prev.prompt[t]) return false;
    for (let t = 0; t < prev.response.length; t++)
      if (next[prev.prompt.length + t] !== prev.response[t]) return false;
  }
  return true;
}

function sequenceOf(steps: readonly TrainStep[]): TrainSequence {
  const last = steps.at(-1)!;
  const tokens = [...last.prompt, ...last.response];
  const mask = new Array<number>(tokens.length).fill(0);
  const advantages = new Array<number>(tokens.length).fill(0);
  const sampled = steps.every((s) => s.logprobs !== undefined && s.logprobs.length === s.response.length);
  const behaviour = sampled ? new Array<number>(tokens.length).fill(0) : undefined;
  for (const s of steps) {
    const at = s.prompt.length;
    for (let t = 0; t < s.response.length; t++) {
      mask[at + t] = 1;
      advantages[at + t] = s.advantage;
      if (behaviour) behaviour[at + t] = s.logprobs![t]!;
    }
  }
  const stale = steps.some((s) => s.stale === true);
  if (stale && !behaviour) {
    throw new Error('a stale step (sampled by an older policy) must carry the log-probs it was sampled with');
  }
  return { tokens, mask, advantages, behaviour, steps: steps.length, stale };
}

/** Tokens per scoring call: bounds the [rows, seq, vocab] logits of the scoring graph. */
const SCORE_TOKENS = 16_384;

/**
 * Teacher-forced log-probs of whole rows under `policy`, in chunks of similar length. With `masks`
 * (the rows' loss masks) only the masked tokens are scored, the others read 0: the update reads
 * no other. With `prefixes`, row i continues prefix i (if any): a chunk runs each of its distinct
 * prefixes once, and rows of one prefix are kept in order so that they fall into the same chunk.
 */
export async function scoreRows(
  policy: Policy,
  rows: readonly number[][],
  masks?: readonly (readonly number[])[],
  prefixes?: readonly (readonly number[] | undefined)[],
  temperature = 1,
): Promise<number[][]> {
  const out: number[][] = new Array(rows.length);
  const width = (k: number) => rows[k]!.length + (prefixes?.[k]?.length ?? 0);
  const order = rows.map((_, i) => i).sort((a, b) => width(a) - width(b));
  for (let i = 0; i < order.length; ) {
    let j = i + 1;
    while (j < order.length && (j - i + 1) * width(order[j]!) <= SCORE_TOKENS) j++;
    const part = order.slice(i, j);
    const { logprobs } = await policy.runner.score(
      part.map((k) => rows[k]!),
      masks && part.map((k) => masks[k]!),
      prefixes && part.map((k) => prefixes[k]),
      temperature,
    );
    part.forEach((k, n) => {
      out[k] = Array.from(logprobs[n]!);
    });
    i = j;
  }
  return out;
}

/** A sequence that continues a shared prompt prefix: `tokens` and its per-token arrays are the part after it. */
export interface SharedSequence extends TrainSequence {
  prefix?: number[];
  /** The rows of one unit (one group at one step) share the prefix and stay in one mini-batch. */
  unit: number;
}

/**
 * Shared prompt prefixes (issue 13): the step rows of one group at one step (the G rollouts of a
 * task, which begin with the same system line, task and step counter, and at step 0 the same whole
 * prompt) become a unit whose longest common token prefix, if at least `minLength` tokens and the
 * unit has two rows or more, is cut off its rows and trained once per mini-batch (`TokenRow.prefix`).
 * The prefix ends before each row's first loss token, so every loss token keeps its row's own
 * position. Packed trajectories and steps without a trajectory are units of their own.
 */
export function sharePrefixes(
  seqs: readonly TrainSequence[],
  keys: readonly (string | undefined)[],
  minLength: number,
): SharedSequence[] {
  const units = new Map<string, number[]>();
  const alone: number[][] = [];
  seqs.forEach((s, i) => {
    const key = keys[i];
    if (s.steps !== 1 || key === undefined) {
      alone.push([i]);
      return;
    }
    const list = units.get(key);
    if (list) list.push(i);
    else units.set(key, [i]);
  });
  const out: SharedSequence[] = new Array(seqs.length);
  [...units.values(), ...alone].forEach((members, unit) => {
    const shared = members.length > 1 ? commonPrefix(members.map((i) => seqs[i]!)) : 0;
    for (const i of members) {
      const s = seqs[i]!;
      if (shared < minLength || shared === 0) {
        out[i] = { ...s, unit };
        continue;
      }
      out[i] = {
        ...s,
        tokens: s.tokens.slice(shared),
        mask: s.mask.slice(shared),
        advantages: s.advantages.slice(shared),
        behaviour: s.behaviour?.slice(shared),
        prefix: s.tokens.slice(0, shared),
        unit,
      };
    }
  });
  return out;
}

/**
 * Longest common token prefix of `seqs`, cut so that each keeps its first loss token and the token
 * before it (whose position predicts it), and at least two tokens.
 */
export function commonPrefix(
  seqs: readonly { tokens: readonly number[]; mask: readonly number[] }[],
): number {
  let n = Math.min(
    ...seqs.map((s) => {
      const first = s.mask.indexOf(1);
      return (first < 0 ? s.tokens.length : first) - 1;
    }),
    ...seqs.map((s) => s.tokens.length - 2),
  );
  const head = seqs[0]!.tokens;
  for (const s of seqs) {
    let k = 0;
    while (k < n && s.tokens[k] === head[k]) k++;
    n = k;
  }
  return Math.max(n, 0);
}

/** The unit key of each step row: its group and its step index in the trajectory. */
function groupStepKeys(steps: readonly TrainStep[], seqs: readonly TrainSequence[]): (string | undefined)[] {
  if (seqs.length !== steps.length) return seqs.map(() => undefined);
  const seen = new Map<string, number>();
  return steps.map((s) => {
    if (s.trajectory === undefined || s.group === undefined) return undefined;
    const index = seen.get(s.trajectory) ?? 0;
    seen.set(s.trajectory, index + 1);
    return `${s.group}|${index}`;
  });
}

/** How `tokenRows` builds its rows. */
export interface TokenRowOptions {
  /** Pack a trajectory with growing prompts into one row (exact only under token-mean aggregation). */
  pack?: boolean;
  /** Take behaviour log-probs from the rollout (the policy has not changed since it sampled them). */
  rolloutLogprobs?: boolean;
  /**
   * 0 skips the reference pass (its log-probs are then the behaviour ones: the KL term is off
   * anyway), except on `referenceSample` of the units, which measure the KL to the reference.
   */
  klCoef?: number;
  /** With `klCoef` 0: the share of units scored by the reference for `referenceKl` (default 0.25). */
  referenceSample?: number;
  /**
   * Share the prompt prefix of a group's step rows when it is at least this many tokens
   * (`sharePrefixes`); 0 or unset: every row whole.
   */
  sharedPrefix?: number;
  /**
   * The loss's temperature (`LossConfig.temperature`): behaviour and reference log-probs are
   * scored at it. The rollout records the model's own log-probs (temperature 1), so at any other
   * temperature they are re-scored.
   */
  temperature?: number;
  /** Leave out the sequences whose every response token has advantage 0 (`ppo.skipZeroAdvantage`). */
  skipZeroAdvantage?: boolean;
}

/** Whether some response token of `s` carries a non-zero advantage (else it gives no policy gradient). */
export function informative(s: { mask: readonly number[]; advantages?: readonly number[] }): boolean {
  return s.advantages?.some((a, t) => a !== 0 && s.mask[t] === 1) ?? false;
}

/**
 * Token rows of an iteration: `trainingSequences` with behaviour log-probs (the rollout's, or
 * re-scored by `policy`) and reference log-probs (scored by `reference` when `klCoef` > 0).
 */
export async function tokenRows(
  policy: Policy,
  reference: Policy,
  steps: readonly TrainStep[],
  options: TokenRowOptions = {},
): Promise<{
  rows: (TokenRow & { steps: number; unit: number })[];
  rolloutLogprobs: boolean;
  /** With `klCoef` 0: the behaviour policy's KL to the reference on the sampled units. */
  referenceKl?: number;
  /** Sequences left out by `skipZeroAdvantage`. */
  skipped: number;
}> {
  const all = trainingSequences(steps, options.pack ?? false);
  const kept = all.flatMap((s, i) => (!options.skipZeroAdvantage || informative(s) ? [i] : []));
  const whole = kept.map((i) => all[i]!);
  const min = options.sharedPrefix ?? 0;
  // Group-step keys follow `steps`, so they are taken over every sequence, then the kept ones.
  const keysOf = (keys: readonly (string | undefined)[]) => kept.map((i) => keys[i]);
  const seqs: SharedSequence[] =
    min > 0
      ? sharePrefixes(whole, keysOf(groupStepKeys(steps, all)), min)
      : whole.map((s, unit) => ({ ...s, unit }));
  const tokens = seqs.map((s) => s.tokens);
  const prefixes = min > 0 ? seqs.map((s) => s.prefix) : undefined;
  const temperature = options.temperature ?? 1;
  if (temperature !== 1 && seqs.some((s) => s.stale)) {
    // A stale row's ratio needs the log-probs its older policy gave at the loss's temperature,
    // and the rollout recorded them at 1.
    throw new Error(
      `ppo.logprobs 'sampled' (loss temperature ${temperature}) cannot train stale rollouts (sampled by an older policy, their log-probs recorded at temperature 1); use ppo.logprobs 'model'`,
    );
  }
  const fromRollout =
    (options.rolloutLogprobs ?? false) && temperature === 1 && seqs.every((s) => s.behaviour !== undefined);
  // A stale sequence's ratio is against the policy that sampled it; the others are re-scored
  // unless the policy has not changed since their rollout.
  const rescore = fromRollout ? [] : seqs.flatMap((s, i) => (s.stale ? [] : [i]));
  // Only the masked (response) tokens' log-probs are read by the loss, so only those are scored.
  const masks = seqs.map((s) => s.mask);
  const scored = await scoreRows(
    policy,
    rescore.map((i) => tokens[i]!),
    rescore.map((i) => masks[i]!),
    prefixes && rescore.map((i) => prefixes[i]),
    temperature,
  );
  const old = seqs.map((s) => s.behaviour);
  rescore.forEach((i, n) => {
    old[i] = scored[n]!;
  });
  const withKl = (options.klCoef ?? 1) > 0;
  const ref = withKl ? await scoreRows(reference, tokens, masks, prefixes, temperature) : old;
  const referenceKl = withKl
    ? undefined
    : await sampledReferenceKl(reference, seqs, old, options.referenceSample ?? 0.25, prefixes, temperature);
  const rows = seqs.map((s, i) => ({
    tokens: s.tokens,
    mask: s.mask,
    advantages: s.advantages,
    // Scored rows carry log-probs of the masked positions only (0 elsewhere), the only ones read.
    oldLogprobs: old[i]!,
    refLogprobs: ref[i]!,
    steps: s.steps,
    unit: s.unit,
    ...(s.prefix ? { prefix: s.prefix } : {}),
  }));
  return {
    rows,
    rolloutLogprobs: fromRollout,
    ...(referenceKl !== undefined ? { referenceKl } : {}),
    skipped: all.length - whole.length,
  };
}

/**
 * The KL to the reference when the loss has no KL term: every k-th unit (k = round(1 / share)) is
 * scored by the reference, and the estimator is the loss's own (ALGORITHMS.md: exp(d) - d - 1,
 * d = ref - lp, clamped to [-10, 10]), a token mean over those units' response tokens, with the
 * behaviour log-probs as lp: the policy that rolled the iteration out, measured against the start.
 */
async function sampledReferenceKl(
  reference: Policy,
  seqs: readonly SharedSequence[],
  old: readonly (readonly number[] | undefined)[],
  share: number,
  prefixes: readonly (readonly number[] | undefined)[] | undefined,
  temperature: number,
): Promise<number> {
  const every = Math.max(1, Math.round(1 / share));
  const picked = seqs.flatMap((s, i) => (s.unit % every === 0 ? [i] : []));
  const ref = await scoreRows(
    reference,
    picked.map((i) => seqs[i]!.tokens),
    picked.map((i) => seqs[i]!.mask),
    prefixes && picked.map((i) => prefixes[i]),
    temperature,
  );
  let sum = 0;
  let n = 0;
  picked.forEach((i, k) => {
    const { mask } = seqs[i]!;
    for (let t = 0; t < mask.length; t++) {
      if (mask[t] !== 1) continue;
      const d = ref[k]![t]! - old[i]![t]!;
      sum += Math.min(10, Math.max(-10, Math.exp(d) - d - 1));
      n++;
    }
  });
  return n === 0 ? 0 : sum / n;
}

/** What mini-batching needs of a row: its tokens, the steps it trains, its unit and prefix. */
export interface BatchRow {
  tokens: readonly number[];
  steps: number;
  /** Rows of one unit stay in one mini-batch (they share `prefix`); unset: a unit of its own. */
  unit?: number;
  prefix?: readonly number[];
}

/**
 * Mini-batches of `rows` for one epoch: units (a row, or the rows sharing a prefix) of similar
 * length together (less padding), cut by token count (a shared prefix counted once) so that each
 * holds about the same number of tokens, as many mini-batches as `miniBatchSize` steps each would
 * make; their order is shuffled.
 */
export function miniBatches<R extends BatchRow>(rows: readonly R[], miniBatchSize: number, rng: Rng): R[][] {
  const units = groupsInOrder(rows, (r) => r.unit);
  const steps = rows.reduce((a, r) => a + r.steps, 0);
  const count = Math.min(units.length, Math.max(1, Math.ceil(steps / miniBatchSize)));
  const size = units.map(unitTokens);
  // Padding follows the longest row (a shared prefix pads to the batch's longest prefix).
  const length = units.map((u) => Math.max(...u.map((r) => r.tokens.length)));
  const total = size.reduce((a, b) => a + b, 0);
  // Shuffled first, so that units of equal length fall into batches at random.
  const order = rng.shuffle(units.map((_, i) => i));
  order.sort((a, b) => length[a]! - length[b]!);
  const batches: R[][] = [];
  let current: R[] = [];
  let filled = 0;
  for (const [n, i] of order.entries()) {
    current.push(...units[i]!);
    filled += size[i]!;
    const left = order.length - n - 1;
    const wanted = count - batches.length - 1;
    if (wanted > 0 && (filled >= ((batches.length + 1) * total) / count || left === wanted)) {
      batches.push(current);
      current = [];
    }
  }
  if (current.length > 0) batches.push(current);
  return rng.shuffle(batches);
}

/** Tokens a unit passes through the model: each row's own, and its shared prefix once. */
function unitTokens(unit: readonly BatchRow[]): number {
  return unit.reduce((a, r) => a + r.tokens.length, 0) + (unit[0]!.prefix?.length ?? 0);
}

/**
 * The loss's temperature (`LossConfig.temperature`): the rollout's sampling temperature under
 * `ppo.logprobs: 'sampled'` (1 for greedy rollouts), the model's own 1 under 'model'.
 */
export function lossTemperature(config: RunContext['config']): number {
  const t = config.loop.temperature;
  return config.ppo.logprobs === 'sampled' && t > 0 ? t : 1;
}

/** What the trainer knows about the steps' rollout. */
export interface UpdateOptions {
  /** `Runner.paramsVersion` during the rollout (undefined: it changed, or unknown). */
  rolloutVersion?: number;
}

/** PPO on iteration `it`'s steps; `lastGood` is the checkpoint a divergence names. */
export async function update(
  ctx: RunContext,
  it: number,
  steps: readonly TrainStep[],
  lastGood: string,
  options: UpdateOptions = {},
): Promise<UpdateResult> {
  const { config, policy } = ctx;
  const { epochs, miniBatchSize, maxKl } = config.ppo;
  const started = performance.now();
  const temperature = lossTemperature(config);
  const { rows, rolloutLogprobs, referenceKl, skipped } = await tokenRows(policy, ctx.reference, steps, {
    // A packed trajectory weighs its tokens as the step rows would only under token-mean.
    pack: config.ppo.lossAgg === 'token-mean',
    rolloutLogprobs:
      config.ppo.behaviourLogprobs === 'rollout' &&
      options.rolloutVersion !== undefined &&
      options.rolloutVersion === policy.runner.paramsVersion,
    klCoef: config.ppo.klCoef,
    referenceSample: config.ppo.referenceSample,
    sharedPrefix: config.ppo.sharedPrefix,
    temperature,
    skipZeroAdvantage: config.ppo.skipZeroAdvantage,
  });
  // Without a KL term the graph's KL is to the behaviour policy; the guard and the report then use
  // the sampled KL to the reference.
  if (referenceKl !== undefined && referenceKl > maxKl) {
    throw new DivergenceError(
      `iteration ${it}: the KL to the reference (${referenceKl.toFixed(4)}, on a sample of the rows) passed ppo.maxKl (${maxKl})`,
      lastGood,
    );
  }
  // LossConfig strips the keys that are not the loss's (epochs, miniBatchSize, maxKl).
  const loss = { kind: 'rl' as const, ...config.ppo, temperature };
  const rng = new Rng(`ppo:${config.seed}:${it}`);
  const seen = {
    loss: [] as number[],
    kl: [] as number[],
    entropy: [] as number[],
    clipFraction: [] as number[],
    gradNorm: [] as number[],
  };
  let tokens = 0;
  const epochBatches = Array.from({ length: epochs }, () => miniBatches(rows, miniBatchSize, rng));
  ctx.progress({
    type: 'start',
    phase: 'update',
    iteration: it,
    total: epochBatches.reduce((a, b) => a + b.length, 0),
  });
  try {
    for (const batches of epochBatches) {
      for (const batch of batches) {
        const m = await policy.update(batch, loss);
        if (m.skipped || !Number.isFinite(m.loss)) {
          throw new DivergenceError(
            `iteration ${it}: the loss (${m.loss}) or gradient norm (${m.gradNorm}) is not finite`,
            lastGood,
          );
        }
        if (m.kl > maxKl) {
          throw new DivergenceError(
            `iteration ${it}: the KL to the ${referenceKl === undefined ? 'reference' : 'behaviour policy'} (${m.kl.toFixed(4)}) passed ppo.maxKl (${maxKl})`,
            lastGood,
          );
        }
        for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k].push(m[k]);
        tokens += m.tokens;
        ctx.progress({ type: 'advance', phase: 'update', done: seen.loss.length });
      }
    }
  } finally {
    ctx.progress({ type: 'end', phase: 'update' });
  }
  return {
    loss: mean(seen.loss),
    kl: referenceKl ?? mean(seen.kl),
    entropy: mean(seen.entropy),
    clipFraction: mean(seen.clipFraction),
    gradNorm: mean(seen.gradNorm),
    tokens,
    seconds: (performance.now() - started) / 1000,
    sequences: rows.length,
    packed: rows.filter((r) => r.steps > 1).length,
    skipped,
    sequenceTokens: sequenceTokens(rows),
    rolloutLogprobs,
  };
}

/** Tokens of `rows` through the model in an epoch: each row's own, and each unit's shared prefix once. */
function sequenceTokens(rows: readonly BatchRow[]): number {
  const prefixed = new Map<number, number>();
  let n = 0;
  for (const r of rows) {
    n += r.tokens.length;
    if (r.prefix && r.unit !== undefined) prefixed.set(r.unit, r.prefix.length);
  }
  for (const k of prefixed.values()) n += k;
  return n;
}
