import { type ModelConfig, modelConfig, parameterCount } from '../../src/policy/model/config.ts';
import { LossConfig } from '../../src/policy/model/loss.ts';
import { initParams } from '../../src/policy/model/params.ts';
import { ModelRunner, type TokenRow } from '../../src/policy/runtime/runner.ts';
import { tfjsReady, tfjsTrainStepTimes } from '../policy-tfjs.ts';
import { formatNumber, median, type Suite } from '../suite.ts';
import { matmulGflops, timed } from '../timing.ts';

/** Model FLOPs of a train step: 6 x parameters x tokens + attention (12 x layers x batch x seq^2 x width). */
export function trainFlops(c: ModelConfig, batch: number, seq: number): number {
  return 6 * parameterCount(c) * batch * seq + 12 * c.layers * batch * seq * seq * c.width;
}

/** A deterministic RL batch: prompt of seq/4 tokens, response of the rest, advantages of both signs. */
function rlBatch(c: ModelConfig, batch: number, seq: number): TokenRow[] {
  return Array.from({ length: batch }, (_, b) => {
    const tokens = Array.from(
      { length: seq + 1 },
      (_, i) => (b * 131 + i * 17 + ((i * i) % 7)) % c.vocabSize,
    );
    const promptLength = seq / 4;
    return {
      tokens,
      mask: tokens.map((_, i) => (i > promptLength ? 1 : 0)),
      advantages: tokens.map(() => (b % 2 === 0 ? 1 : -0.5)),
      oldLogprobs: tokens.map(() => -Math.log(c.vocabSize)),
      refLogprobs: tokens.map(() => -Math.log(c.vocabSize)),
    };
  });
}

export const suite: Suite = {
  name: 'policy',
  description:
    'policy engine: ORT MatMul peak, small-preset RL train step (batch 8 x 256), tfjs ratio, decode and KV-cache speed',
  quick: true,
  async run(ctx) {
    const results: Record<string, number> = {};
    const notes: string[] = [];

    // 1. The machine's fp32 MatMul peak through ONNX Runtime, measured now.
    let peak = 0;
    let peakCpu = 0;
    for (const n of [512, 1024, 2048]) {
      const r = await matmulGflops(n, n === 2048 ? 4 : 10);
      ctx.log(`matmul ${n}^3: ${r.wall.toFixed(1)} GFLOP/s (${r.cpu.toFixed(1)} per CPU second)`);
      notes.push(`| MatMul ${n}x${n}x${n} | ${formatNumber(r.wall)} | ${formatNumber(r.cpu)} |`);
      peak = Math.max(peak, r.wall);
      peakCpu = Math.max(peakCpu, r.cpu);
    }
    results.matmul_peak_gflops = peak;

    // 2. The small preset's RL train step (forward, backward, clip, AdamW in one session.run).
    const c = modelConfig('small');
    const batch = 8;
    const seq = 256;
    const runner = new ModelRunner(c, initParams(c, 0));
    const rows = rlBatch(c, batch, seq);
    const cfg = LossConfig.parse({});
    await runner.update(rows, cfg); // builds the graph and the session
    await runner.update(rows, cfg);
    const steps: { ms: number; cpuMs: number }[] = [];
    for (let i = 0; i < 7; i++) steps.push(await timed(() => runner.update(rows, cfg)));
    const stepMs = median(steps.map((s) => s.ms));
    const bestMs = Math.min(...steps.map((s) => s.ms));
    const stepCpuMs = median(steps.map((s) => s.cpuMs));
    ctx.log(
      `train step: median ${stepMs.toFixed(0)} ms, best ${bestMs.toFixed(0)} ms (${stepCpuMs.toFixed(0)} ms CPU)`,
    );
    const flops = trainFlops(c, batch, seq);
    // Throughput from the best of 7 steps, as the MatMul peak is the best of its runs: both sides
    // then estimate the idle machine when other processes share the cores (medians are reported too).
    results.train_tokens_per_s = (batch * seq) / (bestMs / 1000);
    results.train_gflops = flops / bestMs / 1e6;
    results.mfu = results.train_gflops / peak;
    results.train_step_ms = stepMs;
    results.train_step_cpu_ms = stepCpuMs;
    // The same ratio in CPU seconds: what the step makes of the cores it gets, even when other
    // processes share them (equal to mfu on an idle machine with every thread busy).
    results.mfu_cpu_time = flops / stepCpuMs / 1e6 / peakCpu;

    // 3. Decoding: 8 prompts of 256 tokens, 64 new tokens each, with the KV cache.
    const prompt = (b: number) => Array.from({ length: 256 }, (_, i) => (b * 37 + i * 11) % c.vocabSize);
    const newTokens = 64;
    const decodeRun = async (prompts: number[][]) => {
      const { cache } = await runner.prefill(prompts, prompts[0]!.length + newTokens);
      const t = await timed(async () => {
        for (let s = 0; s < newTokens; s++) {
          await runner.decode(
            prompts.map((_, b) => (s * 13 + b) % c.vocabSize),
            cache,
          );
        }
      });
      return t;
    };
    const prompts8 = Array.from({ length: 8 }, (_, b) => prompt(b));
    await decodeRun(prompts8); // warm-up: sessions
    const decode8 = await decodeRun(prompts8);
    results.decode_tokens_per_s = (8 * newTokens) / (decode8.ms / 1000);

    // 4. KV cache vs recomputation: one sequence, 64 tokens after a 256-token prompt. Without the
    //    cache every token reruns the whole sequence through the prefill graph.
    const one = [prompt(0)];
    const cached = await decodeRun(one);
    const recompute = await timed(async () => {
      const seqNow = [...one[0]!];
      for (let s = 0; s < newTokens; s++) {
        await runner.prefill([seqNow], seqNow.length);
        seqNow.push((s * 13) % c.vocabSize);
      }
    });
    results.kv_cache_speedup = recompute.ms / cached.ms;
    ctx.log(`decode 1 x 64: cache ${cached.ms.toFixed(0)} ms, recompute ${recompute.ms.toFixed(0)} ms`);

    // Peak memory of stepwise's own work, read before the tfjs baseline (whose wasm heap grows large).
    results.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
    await runner.dispose();

    // 5. The same model's forward + backward + Adam step in tfjs-core (wasm backend), same batch.
    await tfjsReady();
    const tfjs = await tfjsTrainStepTimes(c, batch, seq, 3);
    ctx.log(`tfjs step: ${tfjs.wallMs.toFixed(0)} ms (${tfjs.cpuMs.toFixed(0)} ms CPU)`);
    // Median against median (tfjsTrainStepTimes reports the median of its timed steps).
    results.tfjs_ratio = tfjs.wallMs / stepMs;
    // Work instead of time (tfjs's wasm backend runs one thread in Node, stepwise two): steadier
    // when other processes share the cores, and a floor for the wall ratio on an idle machine.
    results.tfjs_ratio_cpu_time = tfjs.cpuMs / stepCpuMs;

    const report = [
      `Model: \`small\` preset (${parameterCount(c).toLocaleString('en')} parameters), RL loss (PPO clip + KL + entropy),`,
      `batch ${batch} x ${seq} tokens; model FLOPs per step ${(flops / 1e9).toFixed(1)} G (6 x parameters x tokens + attention).`,
      `Train step: median ${stepMs.toFixed(0)} ms wall (best ${bestMs.toFixed(0)} ms; train_gflops and mfu use the best, as the MatMul peak does),`,
      `${stepCpuMs.toFixed(0)} ms CPU; tfjs (wasm, 1 thread) median ${tfjs.wallMs.toFixed(0)} ms wall,`,
      `${tfjs.cpuMs.toFixed(0)} ms CPU. Decode: batch 8, 64 tokens after 256-token prompts (prefill excluded);`,
      `KV-cache speedup on one sequence: ${recompute.ms.toFixed(0)} ms recomputing vs ${cached.ms.toFixed(0)} ms cached.`,
      '',
      '| baseline | GFLOP/s | GFLOP per CPU second |',
      '|---|---|---|',
      ...notes,
    ].join('\n');
    return { results, report };
  },
};
