/**
 * Bench suite `hf`: an imported Hugging Face model shaped like SmolLM2-135M (30 layers, hidden
 * 576, 9 heads, 3 KV heads, vocabulary 49152, tied embedding; random init, written as a BF16
 * folder and read back through the import path): prefill and decode speed with the KV cache,
 * LoRA and full fine-tuning train-step throughput, peak RSS, and MFU against the ONNX Runtime
 * MatMul peak measured in the same run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadHfModel } from '../../src/policy/hf/folder.ts';
import { paramsToHf, writeHfTensors } from '../../src/policy/hf/weights.ts';
import { modelConfig, parameterCount } from '../../src/policy/model/config.ts';
import { LossConfig } from '../../src/policy/model/loss.ts';
import { initParams } from '../../src/policy/model/params.ts';
import { ModelRunner, type TokenRow } from '../../src/policy/runtime/runner.ts';
import { formatNumber, median, type Suite } from '../suite.ts';
import { matmulGflops, timed } from '../timing.ts';

/** SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M), as the folder states it. */
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  vocab_size: 49152,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  hidden_act: 'silu',
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
};

function sftRows(vocab: number, batch: number, seq: number): TokenRow[] {
  return Array.from({ length: batch }, (_, b) => {
    const tokens = Array.from({ length: seq + 1 }, (_, i) => (b * 131 + i * 17 + ((i * i) % 7)) % vocab);
    return { tokens, mask: tokens.map((_, i) => (i > seq / 4 ? 1 : 0)) };
  });
}

export const suite: Suite = {
  name: 'hf',
  description:
    'imported HF model, SmolLM2-135M shape (random init): prefill/decode speed, LoRA and full train steps, peak RSS, MFU',
  quick: false,
  async run(ctx) {
    const results: Record<string, number> = {};
    const dir = mkdtempSync(path.join(tmpdir(), 'stepwise-bench-hf-'));
    try {
      // The folder: config.json + BF16 weights under transformers' names, read back by the importer.
      const shape = modelConfig({
        vocabSize: 49152,
        width: 576,
        layers: 30,
        heads: 9,
        kvHeads: 3,
        contextLength: 512,
        norm: 'rmsnorm',
        positions: 'rope',
        activation: 'swiglu',
        mlpWidth: 1536,
        ropeTheta: 100000,
      });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(SMOLLM2_135M));
      await writeHfTensors(dir, paramsToHf(shape, initParams(shape, 0), 'BF16'));
      const t = JSON.stringify({
        version: '1.0',
        added_tokens: [{ id: 0, content: '<|endoftext|>', special: true }],
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        model: { type: 'BPE', vocab: { '<|endoftext|>': 0 }, merges: [] },
        decoder: { type: 'ByteLevel' },
      });
      writeFileSync(path.join(dir, 'tokenizer.json'), t);
      writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
      const load = await timed(() => loadHfModel(dir, { contextLength: 512 }));
      results.load_cpu_ms = load.cpuMs;
      const m = load.value;
      const params = parameterCount(m.config);
      ctx.log(`loaded ${params.toLocaleString('en')} parameters in ${load.ms.toFixed(0)} ms`);
      results.load_ms = load.ms;

      // MatMul peak, measured now (the MFU denominator).
      let peak = 0;
      let peakCpu = 0;
      for (const n of [512, 1024]) {
        const r = await matmulGflops(n, 6);
        peak = Math.max(peak, r.wall);
        peakCpu = Math.max(peakCpu, r.cpu);
      }
      results.matmul_peak_gflops = peak;
      ctx.log(`matmul peak ${peak.toFixed(1)} GFLOP/s (${peakCpu.toFixed(1)} per CPU second)`);

      // Inference: prefill 4 prompts of 128 tokens, then 32 tokens each through the KV cache.
      const runner = new ModelRunner(m.config, m.params);
      const B = 4;
      const P = 128;
      const N = 32;
      const prompts = Array.from({ length: B }, (_, b) =>
        Array.from({ length: P }, (_, i) => (b * 37 + i * 11) % 49152),
      );
      const inference = async () => {
        const pre = await timed(() => runner.prefill(prompts, P + N));
        const cache = pre.value.cache;
        const dec = await timed(async () => {
          for (let s = 0; s < N; s++)
            await runner.decode(
              prompts.map((_, b) => (s * 13 + b) % 49152),
              cache,
            );
        });
        return { pre, dec };
      };
      await inference(); // sessions
      const inf = await inference();
      results.prefill_tokens_per_s = (B * P) / (inf.pre.ms / 1000);
      results.decode_tokens_per_s = (B * N) / (inf.dec.ms / 1000);
      // Per CPU second: what the work costs, steadier than wall time when the cores are shared.
      results.prefill_tokens_per_cpu_s = (B * P) / (inf.pre.cpuMs / 1000);
      results.decode_tokens_per_cpu_s = (B * N) / (inf.dec.cpuMs / 1000);
      // Forward FLOPs ~ 2 x parameters per token (attention over 128 keys is small beside it).
      results.prefill_mfu = (2 * params * B * P) / inf.pre.ms / 1e6 / peak;
      results.prefill_mfu_cpu_time = (2 * params * B * P) / inf.pre.cpuMs / 1e6 / peakCpu;
      ctx.log(
        `prefill ${B}x${P}: ${inf.pre.ms.toFixed(0)} ms; decode ${B}x${N}: ${inf.dec.ms.toFixed(0)} ms (${inf.dec.cpuMs.toFixed(0)} ms CPU)`,
      );
      await runner.dispose();

      // Train steps, SFT loss, batch 2 x 128 tokens: LoRA (rank 16 on q, k, v, o) and full.
      const rows = sftRows(49152, 2, 128);
      const tokens = 2 * 128;
      const cfg = LossConfig.parse({ kind: 'sft' });
      const steps = async (r: ModelRunner) => {
        await r.update(rows, cfg); // builds the graph and the session
        const ts: { ms: number; cpuMs: number }[] = [];
        for (let i = 0; i < 2; i++) ts.push(await timed(() => r.update(rows, cfg)));
        return { ms: median(ts.map((x) => x.ms)), cpuMs: median(ts.map((x) => x.cpuMs)) };
      };
      const lora = await loadHfModel(dir, { contextLength: 512, lora: { rank: 16, alpha: 32 } });
      const loraRunner = new ModelRunner(lora.config, lora.params);
      const loraStep = await steps(loraRunner);
      await loraRunner.dispose();
      results.lora_train_tokens_per_s = tokens / (loraStep.ms / 1000);
      // A LoRA step skips the base weights' gradients: ~4 x parameters x tokens of model FLOPs.
      results.lora_train_mfu = (4 * params * tokens) / loraStep.ms / 1e6 / peak;
      results.lora_train_tokens_per_cpu_s = tokens / (loraStep.cpuMs / 1000);
      results.lora_train_mfu_cpu_time = (4 * params * tokens) / loraStep.cpuMs / 1e6 / peakCpu;
      ctx.log(`LoRA step: ${loraStep.ms.toFixed(0)} ms (${loraStep.cpuMs.toFixed(0)} ms CPU)`);

      const fullRunner = new ModelRunner(m.config, m.params);
      const fullStep = await steps(fullRunner);
      await fullRunner.dispose();
      results.full_train_tokens_per_s = tokens / (fullStep.ms / 1000);
      results.full_train_mfu = (6 * params * tokens) / fullStep.ms / 1e6 / peak;
      results.full_train_tokens_per_cpu_s = tokens / (fullStep.cpuMs / 1000);
      results.full_train_mfu_cpu_time = (6 * params * tokens) / fullStep.cpuMs / 1e6 / peakCpu;
      ctx.log(`full step: ${fullStep.ms.toFixed(0)} ms (${fullStep.cpuMs.toFixed(0)} ms CPU)`);
      results.peak_rss_mb = process.resourceUsage().maxRSS / 1024;

      const report = [
        `Model: SmolLM2-135M's config.json (${params.toLocaleString('en')} parameters, tied embedding), random init,`,
        'written as a BF16 Hugging Face folder and imported (weights widened to float32 for the graphs); CPU, ONNX Runtime.',
        `Prefill: ${B} prompts x ${P} tokens in one call; decode: ${N} tokens per row with the KV cache (batch ${B}).`,
        `Train: SFT loss, batch 2 x 128 tokens, median of 2 steps after a warm-up; LoRA rank 16 on q/k/v/o.`,
        `MFU: model FLOPs (2N per token forward, 4N LoRA step, 6N full step) per second over the MatMul peak`,
        `(${formatNumber(peak)} GFLOP/s, best of 512^3 and 1024^3 products measured in the same run).`,
        'Wall-time figures (`*_tokens_per_s`, `*_mfu`) depend on what else runs on the cores; the `*_cpu_s` and',
        '`*_mfu_cpu_time` figures divide by the CPU time the process used (MatMul peak per CPU second likewise).',
        'CUDA was not run here (no GPU on this machine).',
      ].join('\n');
      return { results, report };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
