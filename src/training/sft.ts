/**
 * SFT warm-start: behaviour cloning on expert demonstrations. Each expert decision becomes one
 * sample rendered exactly as its loop prompts the policy (the family's `demonstrations`, the chat
 * template) with the expert's reply and the end token; the loss is masked cross-entropy on the
 * reply's tokens (Policy.update with the SFT loss). The result is RL's starting point and its
 * frozen reference.
 */
import type { z } from 'zod';
import type { Policy } from '../policy/policy.ts';
import type { TokenRow } from '../policy/runtime/runner.ts';
import { Tokenizer } from '../policy/tokenizer/tokenizer.ts';
import { Rng } from '../util/random.ts';
import type { SftConfig } from './config.ts';
import type { ProgressEvent } from './context.ts';
import { domainCorpus } from './corpus.ts';
import type { Demonstrated } from './family.ts';

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
  tokenizer: Tokenizer,
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
  tokenizer: Tokenizer,
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
export async function domainTokenizer(
  vocabSize: number,
  tasks: number,
  demos: readonly Demonstrated[] = [],
  texts?: readonly string[],
): Promise<Tokenizer> {
  const corpus = texts ? [...texts] : await domainCorpus(tasks);
  for (const d of demos) corpus.push(...d.messages.map((m) => m.content), d.reply);
  return Tokenizer.train(corpus, { vocabSize });
}

/** A sample as a training row: loss on the reply's tokens only. */
export function sftRow(s: SftSample): TokenRow {
  return {
    tokens: [...s.prompt, ...s.response],
    mask: [...s.prompt.map(() => 0), ...s.response.map(() => 1)],
  };
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

export interface SftResult {
  steps: number;
  trainLoss: number;
  validLoss: number;
  /** Validation losses measured along the way, by step. */
  curve: { step: number; validLoss: number }[];
  stoppedBy: 'target' | 'budget';
  /** Wall-clock time of the optimizer steps and validations. */
  seconds: number;
}

/**
 * Behaviour cloning until the validation loss reaches `targetLoss` or `maxSteps` optimizer steps
 * were taken. Mini-batches are drawn from a shuffled pass over the samples (seeded).
 */
export async function runSft(
  policy: Policy,
  train: readonly SftSample[],
  valid: readonly SftSample[],
  config: z.output<typeof SftConfig>,
  options: { seed?: number; onProgress?: (event: ProgressEvent) => void; log?: (line: string) => void } = {},
): Promise<SftResult> {
  if (train.length === 0)
    throw new Error('SFT: no training samples (every demonstration was empty or too long)');
  if (valid.length === 0) throw new Error('SFT: no validation samples');
  const rng = new Rng(`sft:${options.seed ?? 0}`);
  const started = performance.now();
  options.onProgress?.({ type: 'start', phase: 'sft', total: config.maxSteps });
  const order: number[] = [];
  let trainLoss = Number.NaN;
  let validLoss = await replyLoss(policy, valid);
  const curve = [{ step: 0, validLoss }];
  let step = 0;
  let stoppedBy: SftResult['stoppedBy'] = 'budget';
  while (step < config.maxSteps) {
    if (validLoss <= config.targetLoss) {
      stoppedBy = 'target';
      break;
    }
    if (order.length < config.batchSize) order.push(...rng.shuffle(train.map((_, i) => i)));
    const batch = order.splice(0, config.batchSize).map((i) => sftRow(train[i]!));
    const m = await policy.update(batch, { kind: 'sft', learningRate: config.learningRate });
    if (!Number.isFinite(m.loss)) throw new Error(`SFT diverged at step ${step}: the loss is ${m.loss}`);
    trainLoss = m.loss;
    step++;
    if (step % config.evalEvery === 0 || step === config.maxSteps) {
      validLoss = await replyLoss(policy, valid);
      curve.push({ step, validLoss });
      // With progress events the bar shows the validation loss; a line would break it.
      if (!options.onProgress)
        options.log?.(
          `sft step ${step}: train loss ${trainLoss.toFixed(4)}, valid loss ${validLoss.toFixed(4)}`,
        );
    }
    options.onProgress?.({ type: 'advance', phase: 'sft', done: step, loss: trainLoss, validLoss });
  }
  if (validLoss <= config.targetLoss) stoppedBy = 'target';
  options.onProgress?.({ type: 'end', phase: 'sft' });
  return {
    steps: step,
    trainLoss,
    validLoss,
    curve,
    stoppedBy,
    seconds: (performance.now() - started) / 1000,
  };
}
