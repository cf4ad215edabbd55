/**
 * What one PPO mini-batch costs (issue 13's `update_share`): `Policy.update` (forward, loss,
 * backward, AdamW in one graph) and the scoring of the same rows' loss-masked tokens (the
 * reference pass), on rows shaped like the household default's windowed steps: `rows` rows of
 * about `length` tokens whose last 23 carry the loss, in groups of G = 8 that begin with the same
 * tokens (the rollouts of a task at one step). The same mini-batch runs whole and, for each
 * prefix length, with the groups' common prefix shared (`TokenRow.prefix`, `ppo.sharedPrefix`),
 * in alternating rounds so that the machine's load falls on every variant alike. CPU per call
 * (process.cpuUsage) after a warm-up; the ratios are shared over whole within a round, their mean
 * and range over the rounds. Untrained weights: the cost does not depend on them.
 *
 *   npx tsx bench/train-step.ts [preset tiny] [rows 32] [length 222] [prefixes 16,32,60,150] [rounds 6]
 */
import { Policy } from '../src/policy/policy.ts';
import type { TokenRow } from '../src/policy/runtime/runner.ts';
import { domainTokenizer } from '../src/training/sft.ts';

const preset = (process.argv[2] ?? 'tiny') as 'tiny';
const B = Number(process.argv[3] ?? 32);
const T = Number(process.argv[4] ?? 222);
const PREFIXES = (process.argv[5] ?? '16,32,60,150').split(',').map(Number);
const ROUNDS = Number(process.argv[6] ?? 6);
const RESPONSE = 23;
const G = 8;
const policy = Policy.create({
  model: preset,
  tokenizer: await domainTokenizer({ vocabSize: 1024, tokenizerTasks: 100 }),
  seed: 0,
});
const V = policy.config.vocabSize;

/** The mini-batch with groups sharing `shared` tokens; the same lengths for every `shared`. */
function batch(shared: number): { whole: TokenRow[]; split: TokenRow[] } {
  let seed = 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const draw = (n: number) => Array.from({ length: n }, () => 1 + Math.floor(rnd() * (V - 1)));
  let prefix: number[] = [];
  const whole = Array.from({ length: B }, (_, i) => {
    if (i % G === 0) prefix = draw(shared);
    const n = T - Math.floor(rnd() * 20);
    const tokens = [...prefix, ...draw(n - shared)];
    const mask = tokens.map((_, i) => (i >= n - RESPONSE ? 1 : 0));
    return {
      tokens,
      mask,
      advantages: mask.map(() => rnd() - 0.5),
      oldLogprobs: mask.map(() => -1),
      refLogprobs: mask.map(() => -1),
    };
  });
  const split = whole.map((r) => ({
    prefix: r.tokens.slice(0, shared),
    tokens: r.tokens.slice(shared),
    mask: r.mask.slice(shared),
    advantages: r.advantages.slice(shared),
    oldLogprobs: r.oldLogprobs.slice(shared),
    refLogprobs: r.refLogprobs.slice(shared),
  }));
  return { whole, split };
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
const loss = { kind: 'rl' as const, klCoef: 0.01, entropyCoef: 0.001, learningRate: 1e-6 };
const update = (rows: TokenRow[]) => () => policy.update(rows, loss);
const score = (rows: TokenRow[]) => () =>
  policy.runner.score(
    rows.map((r) => r.tokens),
    rows.map((r) => r.mask),
    rows.map((r) => r.prefix),
  );
const { whole } = batch(0);
const calls: Record<string, () => Promise<unknown>> = {
  'update whole': update(whole),
  'score whole': score(whole),
};
for (const p of PREFIXES) {
  const { split } = batch(p);
  calls[`update shared ${p}`] = update(split);
  calls[`score shared ${p}`] = score(split);
}
for (const call of Object.values(calls)) await call(); // session builds
const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(calls).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, call] of Object.entries(calls)) {
    const c0 = cpuMs();
    await call();
    cpu[name]!.push(cpuMs() - c0);
  }
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  `${preset}, ${B} rows of ~${T} tokens (${RESPONSE} with loss), groups of ${G}, ${ROUNDS} rounds:`,
);
for (const [name, ms] of Object.entries(cpu)) {
  const kind = name.split(' ')[0]!;
  const base = cpu[`${kind} whole`]!;
  const ratios = ms.map((m, i) => m / base[i]!);
  console.log(
    `  ${name.padEnd(18)} ${mean(ms).toFixed(0).padStart(5)} ms CPU a call, / whole ${mean(ratios).toFixed(3)} [${Math.min(...ratios).toFixed(3)}, ${Math.max(...ratios).toFixed(3)}]`,
  );
}
await policy.dispose();
