/**
 * Greedy household success of checkpoints on the same tasks, paired against the first one: does an
 * RL run improve what it practised, and does that carry over to other rooms (issue 14)?
 *
 *   npx tsx scripts/household-eval.ts --split valid-seen --tasks 200 <checkpoint> <checkpoint>...
 *   npx tsx scripts/household-eval.ts --store <run>/rl.db <checkpoint> <checkpoint>...
 *
 * `--split`: the split's first `--tasks` seeds (the trainer's fixed evaluation tasks). `--store`:
 * the train-split tasks an RL run rolled out (every group's seed in that store). The prompt, room and
 * step limits are the household default's (`HOUSEHOLD_DEFAULT`). Prints each checkpoint's success
 * with its Wilson interval, then each one minus the first, paired, with its bootstrap interval.
 */
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { HouseholdGenerator, type HouseholdTask } from '../src/envs/household/generator.ts';
import { Policy } from '../src/policy/policy.ts';
import { parseTrainConfig } from '../src/training/config.ts';
import { evaluateHousehold } from '../src/training/household-batch.ts';
import { HOUSEHOLD_DEFAULT } from '../src/training/presets.ts';
import { pairedBootstrap } from '../src/training/stats.ts';

const { values: a, positionals: checkpoints } = parseArgs({
  options: {
    split: { type: 'string', default: 'valid-unseen' },
    tasks: { type: 'string', default: '200' },
    store: { type: 'string' },
  },
  allowPositionals: true,
});
if (checkpoints.length === 0)
  throw new Error('give one or more checkpoint folders (the first is the baseline)');
const config = parseTrainConfig({
  ...HOUSEHOLD_DEFAULT,
  sft: { enabled: false },
  policy: { checkpoint: checkpoints[0] },
});
const generator = new HouseholdGenerator(config.envOptions);
let tasks: HouseholdTask[];
let what: string;
if (a.store) {
  const db = new Database(a.store, { readonly: true });
  const rows = db.prepare("SELECT DISTINCT seed FROM groups WHERE split = 'train' ORDER BY seed").all() as {
    seed: number;
  }[];
  db.close();
  if (rows.length === 0) throw new Error(`--store ${a.store}: no train-split groups in that store`);
  tasks = rows.map((r) => generator.generate('train', r.seed));
  what = `the ${tasks.length} train tasks of ${a.store}`;
} else {
  const split = a.split as 'valid-seen' | 'valid-unseen' | 'train';
  tasks = Array.from({ length: Number(a.tasks) }, (_, seed) => generator.generate(split, seed));
  what = `${split}, seeds 0..${tasks.length - 1}`;
}
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
console.log(`greedy success on ${what}`);
const outcomes: number[][] = [];
for (const dir of checkpoints) {
  const policy = await Policy.load(dir);
  const e = await evaluateHousehold(policy, tasks, {
    promptFormat: config.loop.promptFormat,
    history: config.loop.history,
    maxSteps: config.loop.maxSteps,
    maxTokens: config.loop.maxTokens,
    envOptions: config.envOptions,
  });
  await policy.dispose();
  outcomes.push(e.outcomes);
  console.log(`${dir}: ${pct(e.success)} [${pct(e.ci95[0])}, ${pct(e.ci95[1])}] n=${e.tasks}`);
}
for (let i = 1; i < checkpoints.length; i++) {
  const d = pairedBootstrap(outcomes[0]!, outcomes[i]!);
  console.log(
    `${checkpoints[i]} minus ${checkpoints[0]}: ${(100 * d.value).toFixed(1)} points [${(100 * d.ci95[0]).toFixed(1)}, ${(100 * d.ci95[1]).toFixed(1)}] (paired, ${d.tasks} tasks)`,
  );
}
