/**
 * What one PPO mini-batch costs (issue 13's `update_share`): `Policy.update` (forward, loss,
 * backward, AdamW in one graph) and the scoring of the same rows' loss-masked tokens (the
 * reference pass), on rows shaped like the household default's windowed steps: `rows` rows of
 * about `length` tokens whose last 23 carry the loss. CPU per call (process.cpuUsage over 4 calls
 * after a warm-up). Untrained weights: the cost does not depend on them.
 *
 *   npx tsx bench/train-step.ts [preset tiny] [rows 32] [length 222]
 */
import { Policy } from '../src/policy/policy.ts';
import { domainTokenizer } from '../src/training/sft.ts';

const preset = (process.argv[2] ?? 'tiny') as 'tiny';
const B = Number(process.argv[3] ?? 32);
const T = Number(process.argv[4] ?? 222);
const RESPONSE = 23;
const policy = Policy.create({ model: preset, tokenizer: await domainTokenizer(1024, 100), seed: 0 });
let seed = 1;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const V = policy.config.vocabSize;
const rows = Array.from({ length: B }, () => {
  const n = T - Math.floor(rnd() * 20);
  const tokens = Array.from({ length: n }, () => 1 + Math.floor(rnd() * (V - 1)));
  const mask = tokens.map((_, i) => (i >= n - RESPONSE ? 1 : 0));
  return {
    tokens,
    mask,
    advantages: mask.map(() => rnd() - 0.5),
    oldLogprobs: mask.map(() => -1),
    refLogprobs: mask.map(() => -1),
  };
});
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
const loss = { kind: 'rl' as const, klCoef: 0.01, entropyCoef: 0.001, learningRate: 1e-6 };
const calls = {
  update: () => policy.update(rows, loss),
  score: () =>
    policy.runner.score(
      rows.map((r) => r.tokens),
      rows.map((r) => r.mask),
    ),
};
for (const [name, call] of Object.entries(calls)) {
  await call(); // session build
  const n = 4;
  const c0 = cpuMs();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await call();
  console.log(
    `${preset} ${name} ${B} rows of ~${T} tokens: ${((cpuMs() - c0) / n).toFixed(0)} ms CPU, ${((performance.now() - t0) / n).toFixed(0)} ms wall a call`,
  );
}
await policy.dispose();
