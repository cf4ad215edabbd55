/**
 * The policy engine's demo (`stepwise demo`; `npm start` runs the trainer): train the tiny preset from
 * scratch on a generated counting task, first with SFT, then a few RL iterations with the PPO loss
 * against a frozen reference, and show samples before and after.
 */
import cliProgress from 'cli-progress';
import { z } from 'zod';
import { Rng } from '../util/random.ts';
import { Policy } from './policy.ts';
import type { TokenRow } from './runtime/runner.ts';
import { type TemplateMessage, Tokenizer } from './tokenizer/tokenizer.ts';

export const DemoOptions = z.object({
  /** Wall-clock budget for training (SFT then RL), in seconds. */
  seconds: z.number().positive().default(90),
  device: z.string().default('cpu'),
  seed: z.number().int().default(0),
  /** Where to save the trained policy (a checkpoint folder); nothing is saved when omitted. */
  save: z.string().optional(),
});
export type DemoOptions = z.infer<typeof DemoOptions>;

/** One task: "count up|down by <step> from <start>" -> the next five numbers. */
interface Task {
  prompt: string;
  answer: string;
}

function makeTask(rng: Rng): Task {
  const step = 1 + (rng.nextUint32() % 5);
  const down = rng.nextUint32() % 2 === 1;
  const start = (down ? 4 * step : 0) + (rng.nextUint32() % 50);
  const numbers = Array.from({ length: 5 }, (_, i) => start + (down ? -i : i) * step);
  return { prompt: `count ${down ? 'down' : 'up'} by ${step} from ${start}`, answer: numbers.join(' ') };
}

const chat = (t: Task): TemplateMessage[] => [{ role: 'user', content: t.prompt }];

/** Fraction of the five numbers the answer got right, in place. */
export function reward(task: Task, text: string): number {
  const want = task.answer.split(' ');
  const got = text.trim().split(/\s+/);
  return want.filter((w, i) => got[i] === w).length / want.length;
}

/** SFT rows: the templated conversation, with the loss on the assistant's reply and end token. */
function sftRow(policy: Policy, t: Task): TokenRow {
  const prompt = policy.tokenizer.applyChatTemplate(chat(t), { addGenerationPrompt: true });
  const reply = [...policy.tokenizer.encode(t.answer), policy.tokenizer.endId];
  const tokens = [...prompt, ...reply];
  return { tokens, mask: tokens.map((_, i) => (i >= prompt.length ? 1 : 0)) };
}

async function showSamples(
  policy: Policy,
  tasks: Task[],
  title: string,
  log: (s: string) => void,
): Promise<number> {
  const out = await policy.generate(tasks.map(chat), { maxNewTokens: 24, temperature: 0 });
  log(title);
  let total = 0;
  tasks.forEach((t, i) => {
    const text = out[i]!.text ?? '';
    const r = reward(t, text);
    total += r;
    const shown = text.length > 24 ? `${text.slice(0, 24)}...` : text;
    log(
      `  ${t.prompt.padEnd(26)} -> ${JSON.stringify(shown).padEnd(30)} ${r === 1 ? 'correct' : `${r * 5}/5 right`}`,
    );
  });
  return total / tasks.length;
}

function bar(label: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    {
      format: `${label} |{bar}| {percentage}% | ETA {eta_formatted} | step {step} | {rate} tok/s | loss {loss}`,
      hideCursor: true,
      etaBuffer: 20,
      noTTYOutput: true,
      notTTYSchedule: 5000,
    },
    cliProgress.Presets.shades_classic,
  );
}

export async function runDemo(
  input: z.input<typeof DemoOptions> = {},
  log: (s: string) => void = console.log,
) {
  const opts = DemoOptions.parse(input);
  const rng = new Rng(opts.seed);
  const corpus = Array.from({ length: 2000 }, () => makeTask(rng));
  const tokenizer = Tokenizer.train(
    corpus.flatMap((t) => [t.prompt, t.answer]),
    { vocabSize: 512 },
  );
  // RL below updates after every short generation, so the weights stay graph inputs (no rebuilds).
  const policy = Policy.create({
    model: 'tiny',
    tokenizer,
    device: opts.device,
    seed: opts.seed,
    bakeWeights: false,
  });
  const params = [...policy.runner.getParams().values()].reduce((a, p) => a + p.length, 0);
  log(
    `stepwise demo: a ${params.toLocaleString('en')}-parameter transformer (tiny preset, vocabulary ${tokenizer.vocabSize}) ` +
      `learns to count, on ${policy.device.toUpperCase()} through ONNX Runtime graphs built from TypeScript.`,
  );
  const evalRng = new Rng(opts.seed + 1000);
  const evalTasks = Array.from({ length: 8 }, () => makeTask(evalRng));
  const before = await showSamples(policy, evalTasks, '\nSamples before training (greedy):', log);

  // Phase 1: SFT for 70% of the budget.
  const sftSeconds = opts.seconds * 0.7;
  const start = performance.now();
  const elapsed = () => (performance.now() - start) / 1000;
  const b1 = bar('SFT');
  b1.start(Math.round(sftSeconds), 0, { step: 0, rate: 0, loss: '-' });
  let step = 0;
  let tokens = 0;
  while (elapsed() < sftSeconds) {
    const batch = Array.from({ length: 16 }, () => sftRow(policy, corpus[rng.nextUint32() % corpus.length]!));
    const lr = 3e-3 * Math.min(1, (step + 1) / 20); // short warm-up
    const m = await policy.update(batch, { kind: 'sft', learningRate: lr, weightDecay: 0.01 });
    step++;
    tokens += batch.reduce((a, r) => a + r.tokens.length, 0);
    b1.update(Math.min(Math.round(elapsed()), Math.round(sftSeconds)), {
      step,
      rate: Math.round(tokens / elapsed()),
      loss: m.loss.toFixed(3),
    });
  }
  b1.update(Math.round(sftSeconds));
  b1.stop();

  // Phase 2: RL on the rest: 4 samples per task, group-normalized exact-number reward (GRPO),
  // PPO loss with the SFT policy as the frozen reference.
  const reference = await frozenCopy(policy);
  const rlStart = performance.now();
  const rlSeconds = opts.seconds - elapsed();
  const b2 = bar('RL ');
  b2.start(Math.max(1, Math.round(rlSeconds)), 0, { step: 0, rate: 0, loss: '-' });
  let iteration = 0;
  let meanReward = 0;
  const rlElapsed = () => (performance.now() - rlStart) / 1000;
  while (rlElapsed() < rlSeconds) {
    const tasks = Array.from({ length: 4 }, () => makeTask(rng));
    const group = 4;
    const prompts = tasks.flatMap((t) => Array.from({ length: group }, () => chat(t)));
    const gens = await policy.generate(prompts, {
      maxNewTokens: 24,
      temperature: 1,
      seed: opts.seed * 7919 + iteration * 64,
    });
    const rewards = gens.map((g, i) => reward(tasks[Math.floor(i / group)]!, g.text ?? ''));
    meanReward = rewards.reduce((a, b) => a + b, 0) / rewards.length;
    const rows: TokenRow[] = [];
    gens.forEach((g, i) => {
      const k = Math.floor(i / group);
      const rs = rewards.slice(k * group, (k + 1) * group);
      const mean = rs.reduce((a, b) => a + b, 0) / group;
      const std = Math.sqrt(rs.reduce((a, b) => a + (b - mean) ** 2, 0) / (group - 1));
      const advantage = (rewards[i]! - mean) / (std + 1e-6);
      const prompt = policy.encodePrompt(prompts[i]!);
      const tokens = [...prompt, ...g.tokens];
      const pad = (xs: number[]) => [...new Array(prompt.length).fill(0), ...xs];
      rows.push({
        tokens,
        mask: pad(g.tokens.map(() => 1)),
        advantages: pad(g.tokens.map(() => advantage)),
        oldLogprobs: pad(g.logprobs),
        refLogprobs: [] as number[],
      });
    });
    const ref = await reference.runner.score(rows.map((r) => r.tokens));
    rows.forEach((r, i) => {
      r.refLogprobs = Array.from(ref.logprobs[i]!);
    });
    const m = await policy.update(rows, { kind: 'rl', learningRate: 5e-4 });
    iteration++;
    b2.update(Math.min(Math.round(rlElapsed()), Math.round(rlSeconds)), {
      step: iteration,
      rate: Math.round(
        rows.reduce((a, r) => a + r.tokens.length, 0) / Math.max(1e-3, rlElapsed() / iteration),
      ),
      loss: `${m.loss.toFixed(3)} | reward ${meanReward.toFixed(2)} | kl ${m.kl.toFixed(4)}`,
    });
  }
  b2.update(Math.max(1, Math.round(rlSeconds)));
  b2.stop();
  await reference.dispose();

  const after = await showSamples(policy, evalTasks, '\nSamples after training (greedy):', log);
  log(
    `\nScore on these prompts: ${(before * 100).toFixed(0)}% before, ${(after * 100).toFixed(0)}% after ` +
      `(${step} SFT steps, ${iteration} RL iterations, ${elapsed().toFixed(0)} s).`,
  );
  if (opts.save) {
    await policy.save(opts.save);
    log(`Saved the policy to ${opts.save} (model.safetensors, config.json, tokenizer.json).`);
  }
  await policy.dispose();
  return { before, after, sftSteps: step, rlIterations: iteration };
}

/** A frozen copy of a policy's current weights (the RL reference). */
async function frozenCopy(policy: Policy): Promise<Policy> {
  const ckpt = policy.checkpoint();
  const params = new Map([...ckpt.params].map(([k, v]) => [k, Float32Array.from(v)]));
  // The reference never changes: baking its weights in costs one build and speeds every scoring.
  return Policy.fromParts(policy.tokenizer, policy.config, params, {
    device: policy.device,
    dtype: policy.dtype,
    bakeWeights: true,
  });
}
