/**
 * Why does (or doesn't) RL improve the household agent? From one SFT checkpoint: greedy and
 * sampled success on the same fixed tasks (what the rollouts see versus what the evaluation
 * measures), then one RL run of the household default with the given knobs, evaluated greedily on
 * the same fixed valid-unseen tasks every k iterations; per iteration the groups' outcome mix
 * (all lost, all won, mixed), the advantages on winning and losing trajectories, KL and entropy;
 * at the end, after minus before paired task by task with its 95% interval.
 *
 *   npx tsx bench/household-rl.ts --checkpoint runs/household-sft/sft --out runs/household-rl \
 *     [--iterations 6] [--tasks 8] [--group 8] [--lr 2e-4] [--temperature 1] [--kl 0.01] \
 *     [--epochs 1] [--mini-batch 32] [--estimator gigpo] [--eval-tasks 200] [--eval-every 2] \
 *     [--probe 1,0.5] [--seed 0] [--actions free|admissible] \
 *     [--dynamic <retries>] [--history 1] [--logprobs model|sampled] [--penalty 0.1] \
 *     [--estimator-options '{"baseGroup":true}'] \
 *     [--anchor observation|state] [--skip-zero true|false] [--average-from <iteration>|none]
 *
 * The greedy evaluation before RL is kept beside the checkpoint (`before-<n>.json`) and reused.
 *
 * Writes `<out>/result.json` (and the run's store `<out>/rl.db`); prints CPU seconds per phase.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type { HouseholdTask } from '../src/envs/household/generator.ts';
import { HouseholdGenerator } from '../src/envs/household/generator.ts';
import { Policy } from '../src/policy/policy.ts';
import { parseTrainConfig, type TrainConfigInput } from '../src/training/config.ts';
import type { Evaluations } from '../src/training/context.ts';
import { householdEvaluate } from '../src/training/families/household.ts';
import { householdLockstep } from '../src/training/household-batch.ts';
import { HOUSEHOLD_DEFAULT } from '../src/training/presets.ts';
import { pairedBootstrap, wilson } from '../src/training/stats.ts';
import { train } from '../src/training/trainer.ts';

const { values: a } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    out: { type: 'string', default: 'runs/household-rl' },
    iterations: { type: 'string', default: '6' },
    tasks: { type: 'string', default: '8' },
    group: { type: 'string', default: '8' },
    lr: { type: 'string', default: '2e-4' },
    temperature: { type: 'string', default: '1' },
    kl: { type: 'string' },
    epochs: { type: 'string', default: '1' },
    'mini-batch': { type: 'string', default: '32' },
    estimator: { type: 'string', default: 'gigpo' },
    'eval-tasks': { type: 'string', default: '200' },
    'eval-every': { type: 'string', default: '2' },
    probe: { type: 'string', default: '1' },
    seed: { type: 'string', default: '0' },
    actions: { type: 'string', default: 'free' },
    dynamic: { type: 'string' },
    history: { type: 'string', default: '1' },
    logprobs: { type: 'string', default: 'model' },
    penalty: { type: 'string' },
    'estimator-options': { type: 'string', default: '{}' },
    anchor: { type: 'string', default: 'observation' },
    'skip-zero': { type: 'string' },
    'average-from': { type: 'string' },
  },
});
if (!a.checkpoint) throw new Error('--checkpoint <dir>: the SFT checkpoint RL starts from is required');
const num = (k: keyof typeof a) => Number(a[k]);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const wall0 = performance.now();
const log = (line: string) => console.log(`[${((performance.now() - wall0) / 1000).toFixed(0)}s] ${line}`);
await mkdir(a.out!, { recursive: true });

const input = {
  ...HOUSEHOLD_DEFAULT,
  estimator: a.estimator as 'gigpo',
  estimatorOptions: {
    ...(JSON.parse(a['estimator-options']!) as Record<string, unknown>),
    ...(a.penalty !== undefined ? { penaltyCoef: num('penalty') } : {}),
  },
  envOptions: { ...HOUSEHOLD_DEFAULT.envOptions, anchor: a.anchor as 'state' },
  policy: { checkpoint: a.checkpoint },
  sft: { enabled: false },
  loop: {
    ...HOUSEHOLD_DEFAULT.loop,
    temperature: num('temperature'),
    actions: a.actions as 'free',
    history: num('history'),
  },
  iterations: num('iterations'),
  tasksPerIteration: num('tasks'),
  groupSize: num('group'),
  ppo: {
    ...HOUSEHOLD_DEFAULT.ppo,
    learningRate: num('lr'),
    epochs: num('epochs'),
    miniBatchSize: num('mini-batch'),
    ...(a.kl !== undefined ? { klCoef: num('kl') } : {}),
    logprobs: a.logprobs as 'model',
    ...(a['skip-zero'] !== undefined ? { skipZeroAdvantage: a['skip-zero'] === 'true' } : {}),
  },
  ...(a['average-from'] === undefined
    ? {}
    : { weightAverage: a['average-from'] === 'none' ? undefined : { from: num('average-from') } }),
  eval: { every: num('eval-every'), split: 'valid-unseen', tasks: num('eval-tasks') },
  ...(a.dynamic !== undefined ? { dynamicSampling: { enabled: true, retries: num('dynamic') } } : {}),
  seed: num('seed'),
  db: join(a.out!, 'rl.db'),
  runId: 'rl',
} satisfies TrainConfigInput;
const config = parseTrainConfig(input);
const generator = new HouseholdGenerator(config.envOptions);
const fixed = (split: 'valid-seen' | 'valid-unseen') =>
  Array.from({ length: config.eval.tasks }, (_, seed) => generator.generate(split, seed) as HouseholdTask);

// 1. The SFT policy on the fixed tasks: greedy (the evaluation) and sampled (the rollouts).
const sft = await Policy.load(a.checkpoint);
const probes: Record<string, unknown> = {};
let c0 = cpu();
// The greedy "before" is the same for every run from this checkpoint: kept beside it once measured.
const cache = join(
  a.checkpoint,
  `..`,
  `before-${config.eval.tasks}${config.loop.actions === 'free' ? '' : `-${config.loop.actions}`}${config.loop.history === 1 ? '' : `-history${config.loop.history}`}.json`,
);
const cached = existsSync(cache)
  ? (JSON.parse(await readFile(cache, 'utf8')) as { before: Evaluations; cpuSeconds: number })
  : undefined;
const before: Evaluations = cached?.before ?? {
  'valid-seen': await householdEvaluate(config, sft, 'valid-seen', fixed('valid-seen')),
  'valid-unseen': await householdEvaluate(config, sft, 'valid-unseen', fixed('valid-unseen')),
};
const evalCpu = cached?.cpuSeconds ?? (cpu() - c0) / 2;
if (!cached) await writeFile(cache, JSON.stringify({ before, cpuSeconds: evalCpu }));
log(
  `greedy before: valid-unseen ${pct(before['valid-unseen'].success)}, valid-seen ${pct(before['valid-seen'].success)} (${evalCpu.toFixed(0)} CPU s per ${config.eval.tasks}-task evaluation)`,
);
for (const t of a
  .probe!.split(',')
  .filter((x) => x !== '')
  .map(Number)) {
  c0 = cpu();
  const runs = await householdLockstep(sft, fixed('valid-unseen'), {
    promptFormat: config.loop.promptFormat,
    history: config.loop.history,
    maxSteps: config.loop.maxSteps,
    maxTokens: config.loop.maxTokens,
    envOptions: config.envOptions,
    actions: config.loop.actions,
    temperature: t,
    seed: 7,
  });
  const won = runs.filter((r) => r.won).length;
  const steps = runs.reduce((s, r) => s + r.steps, 0);
  probes[`T=${t}`] = {
    tasks: runs.length,
    success: won / runs.length,
    ci95: wilson(won, runs.length),
    invalidRate: runs.reduce((s, r) => s + r.invalid, 0) / steps,
    meanSteps: steps / runs.length,
    cpuSeconds: cpu() - c0,
  };
  log(`valid-unseen at temperature ${t}: ${JSON.stringify(probes[`T=${t}`])}`);
}
await sft.dispose();

// 2. The RL run, evaluated on the same fixed tasks.
await rm(input.db, { force: true });
await rm(`${input.db.replace(/\.db$/, '')}-checkpoints`, { recursive: true, force: true });
c0 = cpu();
const result = await train(input, { before, log });
const trainCpu = cpu() - c0;

// 3. Per iteration: the groups' outcome mix and the advantages by trajectory outcome.
const db = new Database(input.db, { readonly: true });
const metric = (name: string) =>
  new Map(
    (
      db.prepare('SELECT iteration, value FROM metrics WHERE run_id = ? AND name = ?').all('rl', name) as {
        iteration: number;
        value: number;
      }[]
    ).map((r) => [r.iteration, r.value]),
  );
const groups = db
  .prepare(
    `SELECT i.iteration, g.id, SUM(t.won) AS wins, COUNT(*) AS n FROM groups g
     JOIN iterations i ON i.id = g.iteration_id JOIN trajectories t ON t.group_id = g.id
     GROUP BY g.id`,
  )
  .all() as { iteration: number; id: number; wins: number; n: number }[];
const adv = db
  .prepare(
    `SELECT i.iteration, t.won, s.valid, COUNT(*) AS n, AVG(a.value) AS mean, SUM(a.value > 0) AS positive
     FROM advantages a JOIN steps s ON s.id = a.step_id JOIN trajectories t ON t.id = s.trajectory_id
     JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
     GROUP BY i.iteration, t.won, s.valid`,
  )
  .all() as { iteration: number; won: number; valid: number; n: number; mean: number; positive: number }[];
const series = Object.fromEntries(
  [
    'success_rate',
    'kl',
    'entropy',
    'clip_fraction',
    'grad_norm',
    'invalid_rate',
    'eval/valid-unseen/success',
  ].map((n) => [n, metric(n)]),
);
const iterations = [...series.success_rate!.keys()]
  .sort((x, y) => x - y)
  .map((it) => {
    const gs = groups.filter((g) => g.iteration === it);
    const part = (won: number, valid?: number) => {
      const rows = adv.filter(
        (r) => r.iteration === it && r.won === won && (valid === undefined || r.valid === valid),
      );
      const n = rows.reduce((s, r) => s + r.n, 0);
      return {
        steps: n,
        meanAdvantage: n === 0 ? null : rows.reduce((s, r) => s + r.mean * r.n, 0) / n,
        positiveShare: n === 0 ? null : rows.reduce((s, r) => s + r.positive, 0) / n,
      };
    };
    return {
      iteration: it,
      groups: gs.length,
      allLost: gs.filter((g) => g.wins === 0).length,
      allWon: gs.filter((g) => g.wins === g.n).length,
      rolloutSuccess: series.success_rate!.get(it),
      invalidRate: series.invalid_rate!.get(it),
      kl: series.kl!.get(it),
      entropy: series.entropy!.get(it),
      clipFraction: series.clip_fraction!.get(it),
      evalUnseen: series['eval/valid-unseen/success']!.get(it),
      winning: part(1),
      losingValid: part(0, 1),
      losingInvalid: part(0, 0),
    };
  });
db.close();
for (const r of iterations) log(JSON.stringify(r));

const d = pairedBootstrap(before['valid-unseen'].outcomes!, result.after['valid-unseen'].outcomes!);
const out = {
  args: a,
  probes,
  before: { 'valid-unseen': summary(before['valid-unseen']), 'valid-seen': summary(before['valid-seen']) },
  after: {
    'valid-unseen': summary(result.after['valid-unseen']),
    'valid-seen': summary(result.after['valid-seen']),
  },
  difference: d,
  iterations,
  cpuSeconds: {
    evaluation: evalCpu,
    train: trainCpu,
    perIteration: trainCpu / Math.max(1, result.iterationsRun),
  },
  wallSeconds: (performance.now() - wall0) / 1000,
};
log(
  `valid-unseen ${pct(before['valid-unseen'].success)} -> ${pct(result.after['valid-unseen'].success)}: ` +
    `${(100 * d.value).toFixed(1)} points [${(100 * d.ci95[0]).toFixed(1)}, ${(100 * d.ci95[1]).toFixed(1)}] ` +
    `(${d.tasks} paired tasks); train ${trainCpu.toFixed(0)} CPU s (${out.cpuSeconds.perIteration.toFixed(0)} per iteration incl. evaluations)`,
);
await writeFile(join(a.out!, 'result.json'), `${JSON.stringify(out, null, 2)}\n`);

/** A split's figures, with its per-task outcomes (so runs can be pooled task by task later). */
function summary(e: Evaluations['valid-unseen']) {
  const wins = Math.round(e.success * e.tasks);
  return {
    tasks: e.tasks,
    success: e.success,
    ci95: wilson(wins, e.tasks),
    invalidRate: e.invalidRate,
    outcomes: e.outcomes,
  };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
