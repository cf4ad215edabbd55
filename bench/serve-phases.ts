/**
 * Where a served request's time goes (issue 13's `batching_speedup`): the serve half of suite
 * `agents` (bench/agents-serve.ts: the untrained `small` policy behind `stepwise serve`, the
 * openai client in the same process, 32 cached household prompts, 32 tokens each), three rounds
 * of the 32 requests concurrently and then one after another, each with its wall and CPU time,
 * the event loop's idle time, the decode steps and prefills (extend calls) run and the wall time
 * inside them (ONNX Runtime's run is synchronous, so that time is the graphs' plus their feeds).
 *
 *   npx tsx bench/serve-phases.ts
 */
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import { HOUSEHOLD_INSTRUCTIONS, HouseholdGenerator, renderHouseholdTask } from '../src/envs/index.ts';
import { Policy } from '../src/policy/policy.ts';
import type { SlotCache } from '../src/policy/runtime/slots.ts';
import { Tokenizer } from '../src/policy/tokenizer/tokenizer.ts';
import { PolicyServer } from '../src/serve/index.ts';

const CLIENTS = 32;
const tasks = new HouseholdGenerator();
const prompts = Array.from({ length: CLIENTS * 4 }, (_, i) =>
  renderHouseholdTask(tasks.generate('train', i)),
);
const tokenizer = Tokenizer.train([HOUSEHOLD_INSTRUCTIONS, ...prompts], { vocabSize: 2048 });
const policy = Policy.create({ model: 'small', tokenizer, seed: 0 });
const server = new PolicyServer(policy, { port: 0, modelId: 'small' });
const client = new OpenAI({ baseURL: await server.listen(), apiKey: 'unused', maxRetries: 0 });
const runner = policy.runner;
const inside = { decode: 0, extend: 0 };
const decodeSlots = runner.decodeSlots.bind(runner);
runner.decodeSlots = async (slots: SlotCache, tokens: number[], promptTokens?: number) => {
  const t0 = performance.now();
  const out = await decodeSlots(slots, tokens, promptTokens);
  inside.decode += performance.now() - t0;
  return out;
};
const extend = runner.extend.bind(runner);
runner.extend = async (slots: SlotCache, first: number, suffixes: number[][]) => {
  const t0 = performance.now();
  const out = await extend(slots, first, suffixes);
  inside.extend += performance.now() - t0;
  return out;
};
const ask = async (i: number) => {
  await client.chat.completions.create({
    model: 'small',
    messages: [{ role: 'user', content: prompts[i % prompts.length]! }],
    max_tokens: 32,
    seed: i,
  });
};
const ids = Array.from({ length: CLIENTS }, (_, i) => 1000 + i);
await Promise.all(Array.from({ length: 4 }, (_, i) => ask(i))); // session builds
await Promise.all(ids.map((i) => ask(i))); // the prompts into the prefix cache
const stats = server.model.batcher.batch.stats;
async function phase(name: string, run: () => Promise<unknown>) {
  inside.decode = 0;
  inside.extend = 0;
  const before = { ...stats };
  const loop0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const loop = performance.eventLoopUtilization(loop0);
  console.log(
    `${name}: wall ${wall.toFixed(0)} ms, CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, ` +
      `event loop idle ${loop.idle.toFixed(0)} ms; ${stats.steps - before.steps} decode steps ` +
      `(${inside.decode.toFixed(0)} ms), ${stats.prefills - before.prefills} prefills (${inside.extend.toFixed(0)} ms)`,
  );
}
for (let round = 0; round < 3; round++) {
  await phase('concurrent', () => Promise.all(ids.map((i) => ask(i))));
  await phase('one after another', async () => {
    for (const i of ids) await ask(i);
  });
}
await server.close();
await policy.dispose();
