/** `ModelConfig` (zod) and the named presets: a decoder-only transformer as data. */
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';

/**
 * A decoder-only transformer, GPT style, as data. One definition serves every graph (train,
 * prefill, decode, score) and the tfjs reference in the bench:
 *
 *   x = tokenEmbedding[ids] (+ positionEmbedding[pos] when positions = 'learned')
 *   for each layer:  x += Attention(Norm(x));  x += MLP(Norm(x))
 *   logits = Norm(x) @ tokenEmbedding^T            (the head is tied to the embedding)
 *
 * Attention is causal multi-head with one fused QKV projection (width -> 3 * width) and an output
 * projection; RoPE rotates q and k when positions = 'rope'. The MLP is width -> mlpRatio * width
 * -> width with GELU (tanh form). Linear layers have no bias; LayerNorm has gain and bias, RMSNorm
 * a gain only.
 *
 * The optional fields describe imported Llama-family models (src/policy/hf); left out, each one
 * means the preset's behaviour above, so preset configs (and the checkpoints that store them)
 * are unchanged. Read them through the helpers below (`kvHeads`, `headSize`, ...), never directly.
 */
/** Linear layers LoRA can adapt, by their Hugging Face module names. */
export const LORA_TARGETS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/**
 * LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): each target
 * W x becomes W x + (alpha / rank) B A x with A [rank, in], B [out, rank], B starting at zero.
 * `dropout` applies to the adapters' input in training, as PEFT's lora_dropout.
 */
export const LoraConfig = z.strictObject({
  rank: z.number().int().min(1).default(8),
  alpha: z.number().positive().default(16),
  targets: z.array(z.enum(LORA_TARGETS)).min(1).default(['q_proj', 'k_proj', 'v_proj', 'o_proj']),
  dropout: z.number().min(0).max(0.9).default(0),
});
export type LoraConfig = z.infer<typeof LoraConfig>;

export const ModelConfig = z.object({
  vocabSize: z.number().int().min(2),
  width: z.number().int().min(8),
  layers: z.number().int().min(1),
  heads: z.number().int().min(1),
  contextLength: z.number().int().min(2),
  mlpRatio: z.number().int().min(1).default(4),
  norm: z.enum(['layernorm', 'rmsnorm']).default('layernorm'),
  positions: z.enum(['learned', 'rope']).default('learned'),
  /** Key/value heads (grouped-query attention: each serves heads / kvHeads query heads). */
  kvHeads: z.number().int().min(1).optional(),
  /** Size of one head (default width / heads); q, k, v are heads (kvHeads) x headSize wide. */
  headSize: z.number().int().min(1).optional(),
  /** Hidden size of the MLP (default mlpRatio * width). */
  mlpWidth: z.number().int().min(1).optional(),
  /** 'gelu' (default): one input matrix; 'swiglu': silu(x @ gate) * (x @ up), gate and up fused. */
  activation: z.enum(['gelu', 'swiglu']).optional(),
  /** RoPE base (default 10000). */
  ropeTheta: z.number().positive().optional(),
  /** Llama 3's RoPE frequency scaling ("llama3" rope_type in transformers). */
  ropeScaling: z
    .object({
      factor: z.number().positive(),
      lowFreqFactor: z.number().positive(),
      highFreqFactor: z.number().positive(),
      originalContextLength: z.number().int().positive(),
    })
    .optional(),
  /** Biases on the q, k and v projections (Qwen2). */
  qkvBias: z.boolean().optional(),
  /** RMSNorm of each head of q and k before RoPE (Qwen3). */
  qkNorm: z.boolean().optional(),
  /** The head is its own [vocab, width] matrix instead of the embedding (default tied). */
  untiedHead: z.boolean().optional(),
  /** Epsilon of every norm (default 1e-5). */
  normEps: z.number().positive().optional(),
  /** LoRA adapters: the base weights are frozen and only the adapters train (see `LoraConfig`). */
  lora: LoraConfig.optional(),
});
export type ModelConfig = z.infer<typeof ModelConfig>;

/** Named sizes. Parameter counts assume the preset vocabulary (the tokenizer sets the real one). */
export const presets = {
  /** about 1.1M parameters */
  tiny: { vocabSize: 2048, width: 128, layers: 4, heads: 4, contextLength: 512, mlpRatio: 4 },
  /**
   * tiny with a 2048-token context (about 1.3M parameters: 196k more position embeddings), for
   * prompts that hold a whole household trajectory (the 'growing' prompt format).
   */
  'tiny-2k': { vocabSize: 2048, width: 128, layers: 4, heads: 4, contextLength: 2048, mlpRatio: 4 },
  /** about 5.4M parameters */
  small: { vocabSize: 2048, width: 256, layers: 6, heads: 8, contextLength: 512, mlpRatio: 4 },
} satisfies Record<string, z.input<typeof ModelConfig>>;
export type PresetName = keyof typeof presets;

/** Resolve a preset name or a partial config into a checked config; errors name the bad field. */
export function modelConfig(spec: PresetName | z.input<typeof ModelConfig>): ModelConfig {
  if (typeof spec === 'string') {
    if (!(spec in presets)) {
      throw new Error(`unknown model preset '${spec}'; expected one of: ${Object.keys(presets).join(', ')}`);
    }
    spec = presets[spec];
  }
  const c = parseOrThrow(ModelConfig, spec, 'invalid model config');
  if (c.headSize === undefined && c.width % c.heads !== 0) {
    throw new Error(`invalid model config: 'width' (${c.width}) must be divisible by 'heads' (${c.heads})`);
  }
  if (c.heads % kvHeads(c) !== 0) {
    throw new Error(`invalid model config: 'kvHeads' (${kvHeads(c)}) must divide 'heads' (${c.heads})`);
  }
  if (c.positions === 'rope' && headSize(c) % 2 !== 0) {
    throw new Error(`invalid model config: RoPE needs an even head size, got ${headSize(c)}`);
  }
  return c;
}

/** Key/value heads (heads unless grouped-query attention). */
export function kvHeads(c: ModelConfig): number {
  return c.kvHeads ?? c.heads;
}

/** Size of one attention head. */
export function headSize(c: ModelConfig): number {
  return c.headSize ?? c.width / c.heads;
}

/** Hidden size of the MLP. */
export function mlpWidth(c: ModelConfig): number {
  return c.mlpWidth ?? c.mlpRatio * c.width;
}

/** Columns of the fused q|k|v projection. */
export function qkvWidth(c: ModelConfig): number {
  return (c.heads + 2 * kvHeads(c)) * headSize(c);
}

/** [in, out] of a LoRA target's base matrix. */
export function loraShape(c: ModelConfig, target: LoraTarget): [number, number] {
  const d = c.width;
  const hs = headSize(c);
  switch (target) {
    case 'q_proj':
      return [d, c.heads * hs];
    case 'k_proj':
    case 'v_proj':
      return [d, kvHeads(c) * hs];
    case 'o_proj':
      return [c.heads * hs, d];
    case 'gate_proj':
    case 'up_proj':
      return [d, mlpWidth(c)];
    case 'down_proj':
      return [mlpWidth(c), d];
  }
}

export function normEps(c: ModelConfig): number {
  return c.normEps ?? 1e-5;
}

/** Number of trainable parameters of a config (embedding counted once when the head is tied). */
export function parameterCount(c: ModelConfig): number {
  const d = c.width;
  const norm = c.norm === 'layernorm' ? 2 * d : d;
  const qkv = qkvWidth(c);
  const mlpIn = c.activation === 'swiglu' ? 2 * mlpWidth(c) : mlpWidth(c);
  const perLayer =
    2 * norm +
    d * qkv +
    (c.qkvBias ? qkv : 0) +
    (c.qkNorm ? 2 * headSize(c) : 0) +
    c.heads * headSize(c) * d +
    d * mlpIn +
    mlpWidth(c) * d;
  const positions = c.positions === 'learned' ? c.contextLength * d : 0;
  const head = c.untiedHead ? c.vocabSize * d : 0;
  const lora = c.lora
    ? c.lora.targets.reduce((n, t) => n + c.lora!.rank * loraShape(c, t).reduce((a, b) => a + b), 0)
    : 0;
  return c.vocabSize * d + head + positions + c.layers * (perLayer + lora) + norm;
}
