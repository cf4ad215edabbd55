/**
 * The serve half of bench suite `agents` (bench/suites/agents.ts calls `benchServe`): a real
 * `stepwise serve` on localhost with the `small` policy (untrained), queried by the official openai
 * client. Throughput and latency come from 32 concurrent clients asking for 32-token completions;
 * `batching_speedup` is the same 32 requests served concurrently versus one after another, with the
 * prefix cache on (the default) and, side by side in the same run, off.
 */
import OpenAI from 'openai';
import { HOUSEHOLD_INSTRUCTIONS, HouseholdGenerator, renderHouseholdTask } from '../src/envs/index.ts';
import { Policy } from '../src/policy/policy.ts';
import { Tokenizer } from '../src/policy/tokenizer/tokenizer.ts';
import { PolicyServer } from '../src/serve/index.ts';
import { formatNumber } from './suite.ts';

const CLIENTS = 32;
const TOKENS = 32;
/** Requests each client sends in the throughput run (one after another). */
const ROUNDS = 4;

export interface ServeBench {
  results: {
    serve_requests_per_s: number;
    serve_p50_ms: number;
    serve_p99_ms: number;
    batching_speedup: number;
    batching_speedup_no_cache: number;
    batching_speedup_cpu: number;
    batching_speedup_cpu_no_cache: number;
    serve_prefix_cache_hit_rate: number;
    serve_cache_cpu_ratio: number;
  };
  report: string;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

interface Speedup {
  serialS: number;
  concurrentS: number;
  serialCpu: number;
  concurrentCpu: number;
}

/**
 * The same 32 requests concurrently, then one after another; best of three interleaved rounds each
 * way: other processes share this machine's cores, and the best time is the one least disturbed.
 */
async function speedup(ask: (i: number) => Promise<number>): Promise<Speedup> {
  const ids = Array.from({ length: CLIENTS }, (_, i) => 1000 + i);
  const best: Speedup = {
    serialS: Number.POSITIVE_INFINITY,
    concurrentS: Number.POSITIVE_INFINITY,
    serialCpu: Number.POSITIVE_INFINITY,
    concurrentCpu: Number.POSITIVE_INFINITY,
  };
  const cpuSeconds = (since: NodeJS.CpuUsage) => {
    const u = process.cpuUsage(since);
    return (u.user + u.system) / 1e6;
  };
  for (let round = 0; round < 3; round++) {
    let cpu0 = process.cpuUsage();
    const c0 = performance.now();
    await Promise.all(ids.map((i) => ask(i)));
    best.concurrentS = Math.min(best.concurrentS, (performance.now() - c0) / 1000);
    best.concurrentCpu = Math.min(best.concurrentCpu, cpuSeconds(cpu0));
    cpu0 = process.cpuUsage();
    const s0 = performance.now();
    for (const i of ids) await ask(i);
    best.serialS = Math.min(best.serialS, (performance.now() - s0) / 1000);
    best.serialCpu = Math.min(best.serialCpu, cpuSeconds(cpu0));
  }
  return best;
}

export async function benchServe(log: (line: string) => void): Promise<ServeBench> {
  const tasks = new HouseholdGenerator();
  const prompts = Array.from({ length: CLIENTS * ROUNDS }, (_, i) =>
    renderHouseholdTask(tasks.generate('train', i)),
  );
  const tokenizer = Tokenizer.train([HOUSEHOLD_INSTRUCTIONS, ...prompts], { vocabSize: 2048 });
  const policy = Policy.create({ model: 'small', tokenizer, seed: 0 });
  const server = new PolicyServer(policy, { port: 0, modelId: 'small' });
  const client = new OpenAI({ baseURL: await server.listen(), apiKey: 'unused', maxRetries: 0 });
  let completionTokens = 0;
  let promptTokens = 0;
  let requests = 0;
  const ask = async (i: number): Promise<number> => {
    const t0 = performance.now();
    const r = await client.chat.completions.create({
      model: 'small',
      messages: [{ role: 'user', content: prompts[i % prompts.length]! }],
      max_tokens: TOKENS,
      seed: i,
    });
    completionTokens += r.usage?.completion_tokens ?? 0;
    promptTokens += r.usage?.prompt_tokens ?? 0;
    requests++;
    return performance.now() - t0;
  };
  try {
    log('serve: warming up (session builds)');
    await Promise.all(Array.from({ length: 4 }, (_, i) => ask(i)));

    log(`serve: ${CLIENTS} clients x ${ROUNDS} requests of ${TOKENS} tokens`);
    completionTokens = 0;
    promptTokens = 0;
    requests = 0;
    const batches0 = server.model.batcher.stats.batches;
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let k = 0; k < ROUNDS; k++) latencies.push(await ask(c * ROUNDS + k));
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const batches = server.model.batcher.stats.batches - batches0;
    const meanTokens = completionTokens / requests;
    const meanPrompt = promptTokens / requests;

    const hits0 = { ...policy.runner.prefixCache!.stats };
    log(`serve: the same ${CLIENTS} requests concurrently, then one after another (best of 3)`);
    const cached = await speedup(ask);
    const hits = policy.runner.prefixCache!.stats;
    const hitRate = (hits.hitTokens - hits0.hitTokens) / (hits.lookupTokens - hits0.lookupTokens);
    log('serve: the same again with the prefix cache off');
    policy.runner.setPrefixCache(0);
    const uncached = await speedup(ask);

    const results = {
      serve_requests_per_s: (CLIENTS * ROUNDS) / wall,
      serve_p50_ms: quantile(latencies, 0.5),
      serve_p99_ms: quantile(latencies, 0.99),
      batching_speedup: cached.serialS / cached.concurrentS,
      batching_speedup_no_cache: uncached.serialS / uncached.concurrentS,
      // The same ratios in CPU time, which the other processes on a shared machine disturb less.
      batching_speedup_cpu: cached.serialCpu / cached.concurrentCpu,
      batching_speedup_cpu_no_cache: uncached.serialCpu / uncached.concurrentCpu,
      serve_prefix_cache_hit_rate: hitRate,
      serve_cache_cpu_ratio:
        (uncached.serialCpu + uncached.concurrentCpu) / (cached.serialCpu + cached.concurrentCpu),
    };
    const report = [
      `Serve: the \`small\` preset (untrained; ${policy.config.layers} layers, width ${policy.config.width}) behind`,
      `\`stepwise serve\` on 127.0.0.1, queried with the openai client in the same process. ${CLIENTS} clients`,
      `each send ${ROUNDS} chat completions one after another: the opening observation of a household task`,
      `(${formatNumber(meanPrompt)} prompt tokens on average) answered with max ${TOKENS} tokens`,
      `(${formatNumber(meanTokens)} on average), in ${batches} busy period(s) of the continuous decode batch.`,
      `\`batching_speedup\`: ${CLIENTS} requests one after another took ${formatNumber(cached.serialS)} s, concurrently`,
      `${formatNumber(cached.concurrentS)} s (best of 3 each; CPU time ${formatNumber(cached.serialCpu)} s against`,
      `${formatNumber(cached.concurrentCpu)} s). These ${CLIENTS} prompts were asked before in the run, so the prefix cache`,
      `holds them (hit rate ${formatNumber(hitRate)} of the prompt tokens over these rounds): a request prefills its last`,
      'prompt token only, and the time is decoding, which batching shares. Side by side, the prefix cache off:',
      `one after another ${formatNumber(uncached.serialS)} s, concurrently ${formatNumber(uncached.concurrentS)} s`,
      `(\`batching_speedup_no_cache\` ${formatNumber(uncached.serialS / uncached.concurrentS)}; CPU ${formatNumber(uncached.serialCpu)} s against`,
      `${formatNumber(uncached.concurrentCpu)} s), where a batched prefill costs what the single prefills it replaces do.`,
      `\`serve_cache_cpu_ratio\`: CPU time of both modes without the cache over with it.`,
      `With the prompts cached, what is left is decoding: a request alone took ${formatNumber((cached.serialCpu / CLIENTS) * 1000)} ms of CPU,`,
      `the ${CLIENTS} together ${formatNumber(cached.concurrentCpu * 1000)} ms, so ${CLIENTS} rows cost ${formatNumber(cached.concurrentCpu / (cached.serialCpu / CLIENTS))} single rows: issue 13's`,
      `\`batching_speedup\` >= 8 needs ${CLIENTS} rows to cost at most 4, which a model this small on 2 cores does not give`,
      '(a one-row step is mostly fixed cost, a 32-row step is matrix work). Wall-clock figures move with the',
      'load of the shared machine; the CPU-time ratios (`batching_speedup_cpu`...) are steadier.',
    ].join('\n');
    return { results, report };
  } finally {
    await server.close();
    await policy.dispose();
  }
}
