/**
 * How well does SFT alone make the household agent? Trains the household default's policy
 * (HOUSEHOLD_DEFAULT: tiny preset, 4-receptacle rooms, history 1) with the scaled SFT (fresh
 * demonstrations every batch, warm-up + decay, selection on held-out greedy action accuracy,
 * DAgger rounds), then reports held-out action accuracy (expert states) and greedy success on
 * 200+ tasks per split with Wilson intervals, and the SFT's wall and CPU time.
 *
 *   npx tsx bench/household-sft.ts --out runs/household-sft [--steps 1500] [--batch 16] [--lr 2e-3]
 *     [--warmup 100] [--decay cosine] [--dagger-every 300] [--dagger-tasks 48] [--dagger-share 0.3]
 *     [--select-tasks 40] [--eval-every 250] [--eval-tasks 200] [--preset tiny] [--fixed-tasks 0] [--history 1]
 *     [--length-groups 8] [--superwords 256]
 *
 * `--fixed-tasks N` trains on N fixed tasks' demonstrations instead of a fresh stream (the old
 * recipe, for comparison); `--checkpoint <dir>` skips SFT and measures that checkpoint. Writes
 * `<out>/result.json` and the selected checkpoint `<out>/sft`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { HouseholdTask } from '../src/envs/household/generator.ts';
import type { Split } from '../src/envs/types.ts';
import { parameterCount } from '../src/policy/model/config.ts';
import { Policy } from '../src/policy/policy.ts';
import { parseTrainConfig } from '../src/training/config.ts';
import { householdDagger } from '../src/training/families/household.ts';
import { makeFamily } from '../src/training/families/index.ts';
import { actionAccuracy, evaluateHousehold } from '../src/training/household-batch.ts';
import { HOUSEHOLD_DEFAULT } from '../src/training/presets.ts';
import { demonstrationStream, domainTokenizer, runSft, sftSamples } from '../src/training/sft.ts';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/household-sft' },
    steps: { type: 'string', default: '1500' },
    batch: { type: 'string', default: '16' },
    lr: { type: 'string', default: '2e-3' },
    warmup: { type: 'string', default: '100' },
    decay: { type: 'string', default: 'cosine' },
    'dagger-every': { type: 'string', default: '300' },
    'dagger-tasks': { type: 'string', default: '48' },
    'dagger-share': { type: 'string', default: '0.3' },
    'select-tasks': { type: 'string', default: '40' },
    'eval-every': { type: 'string', default: '250' },
    'eval-tasks': { type: 'string', default: '200' },
    'accuracy-tasks': { type: 'string', default: '100' },
    preset: { type: 'string', default: 'tiny' },
    'fixed-tasks': { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
    checkpoint: { type: 'string' },
    history: { type: 'string', default: '1' },
    superwords: { type: 'string', default: String(HOUSEHOLD_DEFAULT.policy.superwords) },
    'length-groups': { type: 'string', default: String(HOUSEHOLD_DEFAULT.sft.lengthGroups) },
  },
});
const num = (k: keyof typeof a) => Number(a[k]);

const wallStart = performance.now();
const cpuStart = process.cpuUsage();
const config = parseTrainConfig({
  ...HOUSEHOLD_DEFAULT,
  loop: { ...HOUSEHOLD_DEFAULT.loop, history: num('history') },
  policy: { preset: a.preset, superwords: num('superwords') },
  seed: num('seed'),
  db: join(a.out!, 'unused.db'),
  sft: {
    ...HOUSEHOLD_DEFAULT.sft,
    batchSize: num('batch'),
    learningRate: num('lr'),
    maxSteps: num('steps'),
    targetLoss: 1e-9,
    evalEvery: num('eval-every'),
    warmupSteps: num('warmup'),
    decay: a.decay as 'cosine',
    fresh: num('fixed-tasks') === 0,
    lengthGroups: num('length-groups'),
    selectTasks: num('select-tasks'),
    dagger: {
      every: num('dagger-every'),
      tasks: num('dagger-tasks'),
      share: num('dagger-share'),
      temperature: 0,
    },
  },
});
const log = (line: string) =>
  console.log(`[${((performance.now() - wallStart) / 1000).toFixed(0)}s] ${line}`);
await mkdir(a.out!, { recursive: true });
const family = await makeFamily(config, {});
const demosOf = (split: Split, n: number, first = 1_000_000) =>
  family.demonstrations(Array.from({ length: n }, (_, k) => family.task(split, first + k)));

// The trainer's tokenizer recipe: the envs' text and the loop's prompts along 200 train tasks.
const policy = a.checkpoint
  ? await Policy.load(a.checkpoint)
  : Policy.create({
      model: config.policy.preset,
      tokenizer: await domainTokenizer({
        ...config.policy,
        demos: await demosOf('train', config.sft.tasks),
        texts: await family.tokenizerText?.(),
      }),
      seed: config.seed,
    });
const tokenizer = policy.tokenizer;
const context = policy.config.contextLength;
const maxTokens = config.loop.maxTokens;
log(
  `policy: ${a.checkpoint ?? config.policy.preset}, ${parameterCount(policy.config)} parameters, vocabulary ${tokenizer.vocabSize}`,
);

let sft: Awaited<ReturnType<typeof runSft>> | undefined;
if (!a.checkpoint) {
  const valid = sftSamples(await demosOf('valid-seen', config.sft.validTasks), tokenizer, context);
  const selectDemos = await demosOf('valid-seen', config.sft.selectTasks, 1_100_000);
  const train =
    num('fixed-tasks') > 0
      ? sftSamples(await demosOf('train', num('fixed-tasks')), tokenizer, context)
      : demonstrationStream(family, tokenizer, context, { seed: config.seed });
  const promptLengths = valid.map((s) => s.prompt.length);
  log(
    `prompt tokens: mean ${(promptLengths.reduce((x, y) => x + y, 0) / promptLengths.length).toFixed(0)}, max ${Math.max(...promptLengths)}`,
  );
  sft = await runSft(policy, train, valid, config.sft, {
    seed: config.seed,
    log,
    ...(config.sft.selectTasks > 0
      ? { select: async (p: Policy) => (await actionAccuracy(p, selectDemos, { maxTokens })).accuracy }
      : {}),
    ...(config.sft.dagger.every > 0
      ? { dagger: householdDagger(config, family.task, { seed: config.seed }) }
      : {}),
  });
  log(
    `sft done: ${sft.steps} steps, ${sft.seconds.toFixed(0)} s wall, ${sft.cpuSeconds!.toFixed(0)} s CPU, selected ${JSON.stringify(sft.selected)}`,
  );
  await policy.save(join(a.out!, 'sft'));
}

const accuracy: Record<string, unknown> = {};
for (const split of ['train', 'valid-seen', 'valid-unseen'] as const) {
  // Seeds 1,200,000 on: tasks neither the tokenizer, the selection nor the stream used.
  const demos = await demosOf(split, num('accuracy-tasks'), 1_200_000);
  accuracy[split] = await actionAccuracy(policy, demos, { maxTokens });
  log(`action accuracy ${split}: ${JSON.stringify(accuracy[split])}`);
}
const evaluation: Record<string, unknown> = {};
for (const split of num('eval-tasks') > 0 ? (['valid-unseen', 'valid-seen'] as const) : []) {
  const tasks = Array.from(
    { length: num('eval-tasks') },
    (_, seed) => family.task(split, seed) as HouseholdTask,
  );
  const e = await evaluateHousehold(policy, tasks, {
    promptFormat: config.loop.promptFormat,
    history: config.loop.history,
    maxSteps: config.loop.maxSteps,
    maxTokens,
    envOptions: config.envOptions,
  });
  const { outcomes, ...rest } = e;
  evaluation[split] = rest;
  log(`greedy ${split}: ${JSON.stringify(rest)}`);
}
const total = process.cpuUsage(cpuStart);
const result = {
  args: a,
  parameters: parameterCount(policy.config),
  sft,
  actionAccuracy: accuracy,
  evaluation,
  wallSeconds: (performance.now() - wallStart) / 1000,
  cpuSeconds: (total.user + total.system) / 1e6,
};
await writeFile(join(a.out!, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${join(a.out!, 'result.json')}`);
await policy.dispose();
await family.close?.();
