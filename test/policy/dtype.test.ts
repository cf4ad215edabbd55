// Compute precision (policy.dtype) on the CPU path, with real ONNX Runtime sessions: half-precision
// graphs keep norms, softmaxes and logits in float32; float16 generation agrees with float32 to
// half-precision rounding; bfloat16, which the CPU provider cannot run, falls back to float32 with
// one message; a CUDA request here (no GPU) says what runs instead. The CUDA path itself is not run.
import onnxProto from 'onnx-proto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Graph } from '../../src/policy/graph/index.ts';
import { type ModelConfig, modelConfig } from '../../src/policy/model/config.ts';
import {
  buildDecodeGraph,
  buildExtendGraph,
  buildPrefillGraph,
  buildScoreGraph,
} from '../../src/policy/model/graphs.ts';
import { LossConfig } from '../../src/policy/model/loss.ts';
import { initParams, isNormParam, type Params } from '../../src/policy/model/params.ts';
import { buildTrainGraph } from '../../src/policy/model/train.ts';
import { Policy } from '../../src/policy/policy.ts';
import { INITIAL_LOSS_SCALE, ModelRunner } from '../../src/policy/runtime/runner.ts';
import {
  CUDA_INSTALL_HINT,
  cudaInstalled,
  parseDtype,
  resolveCompute,
} from '../../src/policy/runtime/session.ts';
import { SlotCache } from '../../src/policy/runtime/slots.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { parseTrainConfig } from '../../src/training/config.ts';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;

/** GPT-2 style (LayerNorm, learned positions, GELU) and Llama/Qwen style (everything an import uses). */
const configs: Record<string, ModelConfig> = {
  gpt2: modelConfig({ vocabSize: 64, width: 32, layers: 2, heads: 4, contextLength: 48 }),
  llama: modelConfig({
    vocabSize: 64,
    width: 32,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    contextLength: 48,
    norm: 'rmsnorm',
    positions: 'rope',
    activation: 'swiglu',
    mlpWidth: 48,
    qkvBias: true,
    qkNorm: true,
    untiedHead: true,
  }),
};

/**
 * Random weights at the scale of a trained model's (std 0.2 rather than the init's 0.02), so the
 * logits spread over several units and rounding has something to show.
 */
function weights(c: ModelConfig): Params {
  const p = initParams(c, 7);
  for (const [name, v] of p) {
    if (isNormParam(name)) continue;
    for (let i = 0; i < v.length; i++) v[i]! *= 10;
  }
  return p;
}

const prompts = [
  [5, 9, 2, 33, 17, 8, 1, 60, 4, 12, 30, 7],
  [3, 3, 41, 22, 9],
];

/** Largest |a - b| and largest |a| over row-wise logits. */
function compare(a: Float32Array[], b: Float32Array[]): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  a.forEach((row, r) => {
    row.forEach((x, i) => {
      expect(Number.isFinite(b[r]![i]!)).toBe(true);
      diff = Math.max(diff, Math.abs(x - b[r]![i]!));
      scale = Math.max(scale, Math.abs(x));
    });
  });
  return { diff, scale };
}

/** Prefill, three decode steps, then an extend of two suffixes after cached prefixes. */
async function generate(r: ModelRunner): Promise<Float32Array[][]> {
  const copy = (ls: Float32Array[]) => ls.map((l) => Float32Array.from(l));
  const out: Float32Array[][] = [];
  const { logits, cache } = await r.prefill(prompts, 24);
  out.push(copy(logits));
  for (const t of [
    [11, 6],
    [0, 63],
    [25, 25],
  ])
    out.push(copy(await r.decode(t, cache)));
  const slots = new SlotCache(r.config);
  slots.reserve(2, 32);
  slots.rows = 2;
  slots.lengths = [0, 0];
  await r.extend(slots, 0, [prompts[0]!, prompts[1]!]);
  // Suffixes of different lengths: the shorter is left-padded, its padding queries see nothing.
  out.push(copy(await r.extend(slots, 0, [[13, 14, 15, 16, 17], [40]])));
  return out;
}

/**
 * Ops with float16 and bfloat16 kernels in ONNX Runtime's CUDA provider, by its operator table
 * (docs/OperatorKernels.md): a half graph may use only these on half values, or CUDA would hand the
 * node to the CPU provider, which has no bfloat16 kernels at all.
 */
const CUDA_HALF_OPS = new Set(
  'Add Cast Concat Div Expand Gather MatMul Mul Neg RandomUniformLike ReduceSum Reshape Shape Sigmoid Slice Split Squeeze Sub Sum Transpose Unsqueeze'.split(
    ' ',
  ),
);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('half-precision graphs', () => {
  for (const dtype of ['float16', 'bfloat16'] as const) {
    it(`${dtype}: float32 inputs and outputs, half matrices, float32 norms and softmaxes`, () => {
      for (const c of Object.values(configs)) checkHalfGraphs(c, dtype);
    });
  }

  function checkHalfGraphs(c: ModelConfig, dtype: 'float16' | 'bfloat16'): void {
    const p = weights(c);
    const sft = LossConfig.parse({ kind: 'sft' });
    const rl = LossConfig.parse({ klCoef: 0.1, entropyCoef: 0.01 });
    const lora = modelConfig({
      ...c,
      lora: { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj', 'gate_proj'], dropout: 0.1 },
    });
    for (const g of [
      buildTrainGraph(lora, sft, 'float32', dtype),
      buildPrefillGraph(c, dtype, p),
      buildDecodeGraph(c, dtype, p),
      buildExtendGraph(c, dtype, p),
      buildDecodeGraph(c, dtype),
      buildScoreGraph(c, dtype, p, true),
      buildTrainGraph(c, sft, 'float32', dtype),
      buildTrainGraph(c, rl, 'float32', dtype),
    ]) {
      const model = onnx.ModelProto.decode(g.toOnnx());
      const elem = (v: onnxProto.onnx.IValueInfoProto) => v.type!.tensorType!.elemType;
      for (const v of [...model.graph!.input!, ...model.graph!.output!]) {
        expect([T.FLOAT, T.INT64, T.BOOL], `${g.name} ${v.name}`).toContain(elem(v));
      }
      const half = dtype === 'float16' ? T.FLOAT16 : T.BFLOAT16;
      for (const init of model.graph!.initializer!) {
        if (!p.has(init.name!)) continue;
        expect(init.dataType, `${g.name} ${init.name}`).toBe(isNormParam(init.name!) ? T.FLOAT : half);
      }
      const ops = new Map<string, number>();
      for (const n of model.graph!.node!) {
        const touched = [...n.input!, ...n.output!]
          .filter((x) => x !== '' && g.has(x))
          .map((x) => g.dtypeOf(x));
        if (touched.includes(dtype)) expect(CUDA_HALF_OPS, `${g.name} ${n.name}`).toContain(n.opType);
      }
      for (const n of g.nodes) {
        const types = n.inputs.filter((x) => x !== '').map((x) => g.dtypeOf(x));
        if (['Softmax', 'LayerNormalization', 'ReduceMean', 'Sqrt'].includes(n.opType)) {
          expect(types[0], `${g.name} ${n.name}`).toBe('float32');
        }
        // The train graph's AdamW and clip run on the float32 master weights; every other
        // product is half.
        if (n.opType === 'MatMul') {
          expect(types, `${g.name} ${n.name}`).toEqual([dtype, dtype]);
          ops.set('MatMul', (ops.get('MatMul') ?? 0) + 1);
        }
        if (n.opType === 'ScatterElements') expect(types[0], `${g.name} ${n.name}`).toBe('float32');
        if (n.opType === 'Softmax') ops.set('Softmax', (ops.get('Softmax') ?? 0) + 1);
      }
      // Every layer's projections and attention products are half; one softmax per layer.
      expect(ops.get('MatMul')).toBeGreaterThanOrEqual(5 * c.layers);
      expect(ops.get('Softmax')).toBe(c.layers);
      if (g.name.startsWith('train')) {
        // Parameters, moments and their new values are float32 (mixed precision).
        for (const o of model.graph!.output!) expect(elem(o), o.name!).not.toBe(half);
        expect(model.graph!.input!.some((i) => i.name === 'lossScale')).toBe(dtype === 'float16');
      }
    }
  }

  it('a float32 graph has no half value and no Cast', () => {
    const g = buildDecodeGraph(configs.llama!, 'float32', weights(configs.llama!));
    expect(g.nodes.some((n) => n.opType === 'Cast')).toBe(false);
    for (const n of g.nodes)
      for (const o of n.outputs) expect(['float16', 'bfloat16']).not.toContain(g.dtypeOf(o));
  });

  it('half constants round to nearest even', () => {
    const g = new Graph('consts');
    const raw = (dtype: 'float16' | 'bfloat16', v: number[]) =>
      Array.from(new Uint16Array(g.initializers.get(g.constant(v, dtype).name)!.raw.slice().buffer));
    expect(raw('float16', [1, -2, 65504, 1e6, 1 + 2 ** -11])).toEqual([
      0x3c00, 0xc000, 0x7bff, 0x7c00, 0x3c00,
    ]);
    expect(raw('bfloat16', [1, -2, 1 + 2 ** -8 + 2 ** -9])).toEqual([0x3f80, 0xc000, 0x3f81]);
  });
});

describe('float16 generation on the CPU provider', () => {
  for (const [name, c] of Object.entries(configs)) {
    it(`${name}: prefill, decode and extend logits agree with float32 to half-precision rounding`, async () => {
      const p = weights(c);
      const f32 = new ModelRunner(c, p, 'cpu', { prefixCacheBytes: 0 });
      const f16 = new ModelRunner(c, p, 'cpu', { prefixCacheBytes: 0, dtype: 'float16' });
      const a = await generate(f32);
      const b = await generate(f16);
      expect(f16.runningDtype).toBe('float16');
      for (let step = 0; step < a.length; step++) {
        const { diff, scale } = compare(a[step]!, b[step]!);
        // float16 keeps 11 significant bits (2^-11 = 5e-4 relative); two layers of rounded
        // products stay within a few hundredths of the logits' scale, and above zero: the graph
        // really rounds.
        expect(scale).toBeGreaterThan(1);
        expect(diff, `step ${step}`).toBeLessThan(0.01 * scale);
        expect(diff, `step ${step}`).toBeGreaterThan(0);
      }
      await f32.dispose();
      await f16.dispose();
    });
  }

  it('mixed-precision updates: float32 weights and moments, losses within 1% of float32 training', async () => {
    const c = configs.llama!;
    const p = initParams(c, 3);
    const copy = () => new Map([...p].map(([k, v]) => [k, Float32Array.from(v)]));
    const f32 = new ModelRunner(c, copy(), 'cpu', { prefixCacheBytes: 0 });
    const f16 = new ModelRunner(c, copy(), 'cpu', { prefixCacheBytes: 0, dtype: 'float16' });
    const before = (await f16.prefill(prompts)).logits.map((l) => Float32Array.from(l));
    const rows = [
      { tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], mask: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1] },
      { tokens: [11, 5, 9, 40, 2, 33], mask: [0, 1, 1, 1, 1, 1] },
    ];
    const cfg = LossConfig.parse({ kind: 'sft', learningRate: 3e-3 });
    let differs = false;
    for (let i = 0; i < 30; i++) {
      const a = await f32.update(rows, cfg);
      const b = await f16.update(rows, cfg);
      expect(b.skipped).toBe(false);
      expect(Math.abs(b.loss - a.loss), `step ${i}`).toBeLessThan(0.01 * a.loss);
      differs ||= b.loss !== a.loss;
    }
    expect(differs).toBe(true);
    // Memorized about as well: 30 steps took the loss from 4.1 to about 0.8 in both.
    expect((await f16.update(rows, cfg)).loss).toBeLessThan(1.5);
    for (const t of f16.getParams().values()) expect(t).toBeInstanceOf(Float32Array);
    for (const t of f16.getOptimizerState()!.v.values()) expect(t).toBeInstanceOf(Float32Array);
    // Generation after the updates uses the new weights (the baked half graph was rebuilt).
    const after32 = (await f32.prefill(prompts)).logits;
    const after16 = (await f16.prefill(prompts)).logits;
    expect(compare(after32, after16).diff).toBeLessThan(0.05 * compare(after32, after16).scale);
    expect(compare(before, after16).diff).toBeGreaterThan(1);
    await f32.dispose();
    await f16.dispose();
  });

  it('float16 with shared prompt prefixes: the same log-probs as whole rows, and a clean update', async () => {
    // The two layouts meet in the half graphs: the prefix's keys and values are half, its mask
    // float32; whole rows and prefixed rows must agree to float16 rounding.
    const c = configs.llama!;
    const p = initParams(c, 4);
    const runner = new ModelRunner(c, p, 'cpu', { prefixCacheBytes: 0, dtype: 'float16' });
    const shared = [3, 9, 14, 2, 7, 21, 5];
    const tails = [
      [4, 8, 15],
      [16, 23, 42, 1],
    ];
    const mask = (n: number, from: number) => Array.from({ length: n }, (_, t) => (t >= from ? 1 : 0));
    const whole = await runner.score(
      tails.map((t) => [...shared, ...t]),
      tails.map((t) => mask(shared.length + t.length, shared.length)),
    );
    const split = await runner.score(
      tails,
      tails.map((t) => mask(t.length, 1)),
      tails.map(() => shared),
    );
    let worst = 0;
    tails.forEach((t, i) => {
      for (let j = 1; j < t.length; j++)
        worst = Math.max(worst, Math.abs(split.logprobs[i]![j]! - whole.logprobs[i]![shared.length + j]!));
    });
    expect(runner.runningDtype).toBe('float16');
    expect(worst).toBeLessThan(0.02);
    const rows = tails.map((t) => ({ prefix: shared, tokens: t, mask: mask(t.length, 1) }));
    const m = await runner.update(rows, LossConfig.parse({ kind: 'sft', learningRate: 1e-3 }));
    expect(m.skipped).toBe(false);
    expect(Number.isFinite(m.loss)).toBe(true);
    await runner.dispose();
  });

  it('float16 loss scaling: an overflowing scale skips the step untouched and halves until it fits', async () => {
    const c = configs.gpt2!;
    const r = new ModelRunner(c, initParams(c, 3), 'cpu', { prefixCacheBytes: 0, dtype: 'float16' });
    expect(r.lossScale).toBe(INITIAL_LOSS_SCALE);
    const rows = [{ tokens: [1, 2, 3, 4, 5, 6], mask: [0, 1, 1, 1, 1, 1] }];
    const cfg = LossConfig.parse({ kind: 'sft', learningRate: 1e-2 });
    r.lossScale = 2 ** 40; // scaled gradients far beyond float16's 65504
    const start = new Map([...r.getParams()].map(([k, v]) => [k, Float32Array.from(v)]));
    const first = await r.update(rows, cfg);
    expect(first.skipped).toBe(true);
    expect(r.lossScale).toBe(2 ** 39);
    for (const [k, v] of r.getParams()) expect(v).toEqual(start.get(k));
    let skipped = 1;
    while ((await r.update(rows, cfg)).skipped) skipped++;
    // It fits somewhere between 2^39 and 2^0, and then the step is applied.
    expect(skipped).toBeLessThan(40);
    expect(r.lossScale).toBe(2 ** (40 - skipped));
    expect(r.getParams().get('tokenEmbedding')).not.toEqual(start.get('tokenEmbedding'));
    // An RL step (PPO ratio, KL to a reference, entropy bonus) through the same half graph.
    const tokens = [1, 2, 3, 4, 5, 6];
    const { logprobs } = await r.score([tokens]);
    const old = Array.from(logprobs[0]!);
    const rl = await r.update(
      [
        {
          tokens,
          mask: [0, 1, 1, 1, 1, 1],
          advantages: [0, 1, 1, -1, 1, 1],
          oldLogprobs: old,
          refLogprobs: old,
        },
      ],
      LossConfig.parse({ klCoef: 0.1, entropyCoef: 0.01, learningRate: 1e-3 }),
    );
    expect(rl.skipped).toBe(false);
    // Scored in the same precision as the update's forward: the ratio starts at about 1.
    expect(rl.clipFraction).toBe(0);
    expect(Math.abs(rl.kl)).toBeLessThan(1e-3);
    await r.dispose();
  });
});

describe('fallbacks and errors', () => {
  it('bfloat16 on CPU: the graph does not load, one message, float32 logits', async () => {
    const c = configs.gpt2!;
    const p = weights(c);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const bf16 = new ModelRunner(c, p, 'cpu', { prefixCacheBytes: 0, dtype: 'bfloat16' });
    const f32 = new ModelRunner(c, p, 'cpu', { prefixCacheBytes: 0 });
    const a = await generate(f32);
    const b = await generate(bf16);
    expect(bf16.runningDtype).toBe('float32');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(
      /dtype 'bfloat16' requested but its graph does not load on CPU \(.+\); running in float32\. For bfloat16 on a GPU: .*cuda12.*--device cuda/,
    );
    a.forEach((step, i) => {
      expect(compare(step, b[i]!).diff).toBe(0);
    });
    await f32.dispose();
    await bf16.dispose();
  });

  it.skipIf(cudaInstalled())('CUDA requested here (no CUDA build): one line naming what runs instead', () => {
    const lines: string[] = [];
    const warn = (l: string) => lines.push(l);
    expect(resolveCompute({ device: 'cuda', dtype: 'float16' }, warn)).toEqual({
      device: 'cpu',
      dtype: 'float16',
    });
    expect(resolveCompute({ device: 'cuda', dtype: 'float16' }, warn)).toEqual({
      device: 'cpu',
      dtype: 'float16',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("device 'cuda' with dtype 'float16' requested");
    expect(lines[0]).toContain("onnxruntime-node's CUDA binaries are not installed; running on CPU.");
    expect(lines[0]).toContain(CUDA_INSTALL_HINT);

    expect(resolveCompute({ device: 'cuda', dtype: 'bfloat16' }, warn)).toEqual({
      device: 'cpu',
      dtype: 'float32',
    });
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain("device 'cuda' with dtype 'bfloat16' requested");
    expect(lines[1]).toContain('running on CPU in float32');
  });

  it('bfloat16 asked on CPU runs float32, saying why', () => {
    const lines: string[] = [];
    expect(resolveCompute({ device: 'cpu', dtype: 'bfloat16' }, (l) => lines.push(l))).toEqual({
      device: 'cpu',
      dtype: 'float32',
    });
    expect(lines).toEqual([
      expect.stringMatching(
        /device 'cpu' with dtype 'bfloat16' requested but ONNX Runtime's CPU provider has no bfloat16 kernels; running on CPU in float32\. For bfloat16 on a GPU/,
      ),
    ]);
    // What the CPU runs as asked prints nothing.
    const quiet: string[] = [];
    expect(resolveCompute({ device: 'cpu', dtype: 'float16' }, (l) => quiet.push(l)).dtype).toBe('float16');
    expect(resolveCompute({}, (l) => quiet.push(l))).toEqual({ device: 'cpu', dtype: 'float32' });
    expect(quiet).toEqual([]);
  });

  it('a Policy takes dtype beside device: float16 generates and trains, bfloat16 on CPU is float32', async () => {
    const tokenizer = Tokenizer.train(['the cat sat on the mat', 'a dog ran to the cat'], { vocabSize: 280 });
    const model = { width: 32, layers: 2, heads: 4, contextLength: 48 };
    const half = Policy.create({ model, tokenizer, dtype: 'float16' });
    expect(half.dtype).toBe('float16');
    const [reply] = await half.generate(['the cat'], { maxNewTokens: 3 });
    expect(reply!.tokens.length).toBeGreaterThan(0);
    const quiet = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const bf16 = Policy.create({ model, tokenizer, dtype: 'bfloat16' });
    expect(bf16.dtype).toBe('float32');
    quiet.mockRestore();
    expect(() => Policy.create({ model, tokenizer, dtype: 'fp8' })).toThrow(
      "unknown dtype 'fp8'; expected one of: float32, float16, bfloat16",
    );
    await half.dispose();
    await bf16.dispose();
  });

  it('a bad dtype is refused naming the allowed ones', () => {
    expect(() => parseDtype('fp16')).toThrow(
      "unknown dtype 'fp16'; expected one of: float32, float16, bfloat16",
    );
    expect(() => resolveCompute({ dtype: 'half' })).toThrow(/expected one of: float32, float16, bfloat16/);
    expect(() => parseTrainConfig({ policy: { dtype: 'half' } })).toThrow(
      /policy\.dtype.*float32.*float16.*bfloat16/s,
    );
    expect(parseTrainConfig({}).policy.dtype).toBe('float32');
    expect(parseTrainConfig({ policy: { dtype: 'bfloat16' } }).policy.dtype).toBe('bfloat16');
  });
});
