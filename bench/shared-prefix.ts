/**
 * Shared prompt prefixes on real rows (issue 13): windowed household rollouts of the household
 * default's loop and room (history 1, 12 steps, 40-token replies, 4 receptacles, 1 object; G = 8)
 * by an untrained tiny policy, then the update's two passes over them as the trainer runs them,
 * once with whole rows (`ppo.sharedPrefix` 0) and once with each group-step's common prefix shared
 * (`ppo.sharedPrefix` 32), in alternating rounds: the reference scoring (`tokenRows`, klCoef 0.01)
 * and one PPO epoch of `ceil(steps / 32)` mini-batches (`miniBatches`, `Policy.update`). CPU
 * (process.cpuUsage) per env step, and the tokens through the model per epoch.
 * An untrained policy's replies are invalid and run to the step limit (every group keeps its 8
 * rows at every step), so the rows are real prompts but not a trained run's mix.
 *
 *   npx tsx bench/shared-prefix.ts [tasks 4] [rounds 2]
 */
import { PolicyChatModel } from '../src/agents/chat/index.ts';
import { rollout } from '../src/agents/loops/rollout.ts';
import { HouseholdGenerator } from '../src/envs/household/generator.ts';
import { Policy } from '../src/policy/policy.ts';
import { domainTokenizer } from '../src/training/sft.ts';
import { miniBatches, tokenRows } from '../src/training/update.ts';
import { Rng } from '../src/util/random.ts';
import { trainSteps } from '../test/training/update-fixtures.ts';

const TASKS = Number(process.argv[2] ?? 4);
const ROUNDS = Number(process.argv[3] ?? 2);
const G = 8;
const MINI_BATCH = 32;
const policy = Policy.create({
  model: 'tiny',
  tokenizer: await domainTokenizer({ vocabSize: 1024, tokenizerTasks: 100 }),
  seed: 0,
});
const generator = new HouseholdGenerator({ receptacles: 4, objects: 1 });
const trajectories = await rollout({
  model: new PolicyChatModel(policy),
  tasks: Array.from({ length: TASKS }, (_, s) => generator.generate('train', s)),
  groupSize: G,
  loops: {
    household: {
      promptFormat: 'windowed',
      history: 1,
      maxSteps: 12,
      sampling: { maxTokens: 40, temperature: 0.5, seed: 3 },
    },
  },
});
const steps = trainSteps(trajectories);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
const loss = { kind: 'rl' as const, klCoef: 0.01, entropyCoef: 0.001, learningRate: 1e-6 };
const paths = { whole: 0, shared: 32 };
const seen: Record<string, { score: number[]; update: number[]; tokens: number; batches: number }> = {};
for (let round = -1; round < ROUNDS; round++) {
  for (const [name, sharedPrefix] of Object.entries(paths)) {
    const c0 = cpuMs();
    const { rows } = await tokenRows(policy, policy, steps, {
      pack: true,
      rolloutLogprobs: true,
      klCoef: 0.01,
      sharedPrefix,
    });
    const c1 = cpuMs();
    const batches = miniBatches(rows, MINI_BATCH, new Rng(`bench:${round}`));
    for (const batch of batches) await policy.update(batch, loss);
    const c2 = cpuMs();
    if (round < 0) continue; // warm-up: session builds
    seen[name] ??= { score: [], update: [], tokens: 0, batches: batches.length };
    const s = seen[name]!;
    s.score.push((c1 - c0) / steps.length);
    s.update.push((c2 - c1) / steps.length);
    const prefixes = new Map(rows.map((r) => [r.unit, r.prefix?.length ?? 0]));
    s.tokens =
      rows.reduce((a, r) => a + r.tokens.length, 0) + [...prefixes.values()].reduce((a, b) => a + b, 0);
  }
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  `${trajectories.length} trajectories, ${steps.length} steps, ${ROUNDS} rounds (CPU ms per env step):`,
);
for (const [name, s] of Object.entries(seen)) {
  console.log(
    `  ${name.padEnd(6)} scoring ${mean(s.score).toFixed(2)} [${s.score.map((x) => x.toFixed(2)).join(', ')}], update ${mean(s.update).toFixed(2)} [${s.update.map((x) => x.toFixed(2)).join(', ')}], ${s.batches} mini-batches, ${s.tokens} tokens an epoch`,
  );
}
const w = seen.whole!;
const sh = seen.shared!;
console.log(
  `shared / whole: update ${(mean(sh.update) / mean(w.update)).toFixed(3)}, scoring ${(mean(sh.score) / mean(w.score)).toFixed(3)}, tokens ${(sh.tokens / w.tokens).toFixed(3)}`,
);
await policy.dispose();
