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
 */
export const ModelConfig = z.object({
  vocabSize: z.number().int().min(2),
  width: z.number().int().min(8),
  layers: z.number().int().min(1),
  heads: z.number().int().min(1),
  contextLength: z.number().int().min(2),
  mlpRatio: z.number().int().min(1).default(4),
  norm: z.enum(['layernorm', 'rmsnorm']).default('layernorm'),
  positions: z.enum(['learned', 'rope']).default('learned'),
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
  if (c.width % c.heads !== 0) {
    throw new Error(`invalid model config: 'width' (${c.width}) must be divisible by 'heads' (${c.heads})`);
  }
  if (c.positions === 'rope' && (c.width / c.heads) % 2 !== 0) {
    throw new Error(
      `invalid model config: RoPE needs an even head size, got width/heads = ${c.width / c.heads}`,
    );
  }
  return c;
}

/** Number of trainable parameters of a config (embedding counted once: the head is tied). */
export function parameterCount(c: ModelConfig): number {
  const d = c.width;
  const norm = c.norm === 'layernorm' ? 2 * d : d;
  const perLayer = 2 * norm + d * 3 * d + d * d + 2 * d * c.mlpRatio * d;
  const positions = c.positions === 'learned' ? c.contextLength * d : 0;
  return c.vocabSize * d + positions + c.layers * perLayer + norm;
}
