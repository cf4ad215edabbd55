/**
 * Where a batched decode step's CPU goes (issue 13's `batching_speedup`): `ModelRunner.decodeSlots`
 * alone, at 1, 4, 16 and 64 rows whose slots hold `fill` positions, CPU per step and per row
 * (process.cpuUsage over 20 steps after a warm-up). Untrained weights: the cost does not depend
 * on them.
 *
 *   npx tsx bench/decode-step.ts [preset small] [fill 200]
 *
 * Environment: ROWS (default 1,4,16,32,64) the batch sizes; KV_HEADS the preset with that many
 * key/value heads (grouped-query attention), to see whether reading the cache is what costs.
 */
import { presets } from '../src/policy/model/config.ts';
import { Policy } from '../src/policy/policy.ts';
import { SlotCache } from '../src/policy/runtime/slots.ts';
import { Tokenizer } from '../src/policy/tokenizer/tokenizer.ts';

const preset = (process.argv[2] ?? 'small') as 'small';
const fill = Number(process.argv[3] ?? 200);
const tokenizer = Tokenizer.train(['the cat sat on the mat '.repeat(50)], { vocabSize: 2048 });
const kvHeads = process.env.KV_HEADS ? Number(process.env.KV_HEADS) : undefined;
const policy = Policy.create({
  model: kvHeads ? { ...presets[preset], kvHeads } : preset,
  tokenizer,
  seed: 0,
});
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
for (const B of (process.env.ROWS ?? '1,4,16,32,64').split(',').map(Number)) {
  const slots = new SlotCache(policy.config);
  slots.reserve(B, fill + 40);
  for (let b = 0; b < B; b++) slots.add();
  const reset = () => slots.lengths.fill(fill);
  const tokens = Array.from({ length: B }, (_, i) => 100 + i);
  reset();
  await policy.runner.decodeSlots(slots, tokens); // session build
  const steps = 20;
  const c0 = cpuMs();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    reset();
    await policy.runner.decodeSlots(slots, tokens);
  }
  const cpu = (cpuMs() - c0) / steps;
  const wall = (performance.now() - t0) / steps;
  console.log(
    `${preset} fill ${fill} rows ${String(B).padStart(2)}: ${cpu.toFixed(1)} ms CPU a step, ` +
      `${(cpu / B).toFixed(2)} ms CPU a row, ${wall.toFixed(1)} ms wall a step`,
  );
}
await policy.dispose();
