/**
 * What the SFT batch's shared prompt opening saves (`sft.sharedPrefix`): real household default
 * batches (16 fresh expert decisions from the SFT stream, the domain tokenizer the default trains),
 * each trained as whole rows and with the batch's common opening passed once (`sftRows`), on two
 * copies of the same untrained policy, alternating within every round so that the machine's load
 * falls on both alike. CPU per update (process.cpuUsage); the ratio shared / whole per round, its
 * mean and range over the rounds. The cost does not depend on the weights.
 *
 *   npx tsx bench/sft-prefix.ts [rounds 12]
 */
import { Policy } from '../src/policy/policy.ts';
import { parseTrainConfig } from '../src/training/config.ts';
import { makeFamily } from '../src/training/families/index.ts';
import { HOUSEHOLD_DEFAULT } from '../src/training/presets.ts';
import { demonstrationStream, domainTokenizer, sftRow, sftRows } from '../src/training/sft.ts';

const ROUNDS = Number(process.argv[2] ?? 12);
const config = parseTrainConfig(HOUSEHOLD_DEFAULT);
const family = await makeFamily(config, {});
const demos = await family.demonstrations(Array.from({ length: 100 }, (_, k) => family.task('train', k)));
const tokenizer = await domainTokenizer({ ...config.policy, demos, texts: await family.tokenizerText?.() });
const policies = [0, 1].map(() => Policy.create({ model: config.policy.preset, tokenizer, seed: 0 }));
const stream = demonstrationStream(family, tokenizer, policies[0]!.config.contextLength);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const ratios: number[] = [];
let tokensWhole = 0;
let tokensShared = 0;
for (let round = -1; round < ROUNDS; round++) {
  const samples = await stream.next(config.sft.batchSize);
  const whole = samples.map(sftRow);
  const shared = sftRows(samples, config.sft.sharedPrefix);
  const cost = async (p: Policy, rows: typeof whole) => {
    const c0 = cpu();
    await p.update(rows, { kind: 'sft', learningRate: 1e-3 });
    return cpu() - c0;
  };
  const order = round % 2 === 0;
  const a = order ? await cost(policies[0]!, whole) : 0;
  const b = await cost(policies[1]!, shared);
  const c = order ? a : await cost(policies[0]!, whole);
  if (round < 0) continue; // warm-up: graph build and session start
  ratios.push(b / c);
  tokensWhole += whole.reduce((s, r) => s + r.tokens.length, 0);
  tokensShared += shared.reduce((s, r) => s + r.tokens.length, 0) + (shared[0]!.prefix?.length ?? 0);
}
const mean = ratios.reduce((s, r) => s + r, 0) / ratios.length;
console.log(
  JSON.stringify({
    rounds: ROUNDS,
    batch: config.sft.batchSize,
    tokens_per_batch_whole: tokensWhole / ROUNDS,
    tokens_per_batch_shared: tokensShared / ROUNDS,
    sft_update_cpu_ratio: { mean, min: Math.min(...ratios), max: Math.max(...ratios) },
  }),
);
for (const p of policies) await p.dispose();
