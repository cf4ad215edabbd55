/**
 * A Hugging Face `config.json` (model_type llama, qwen2 or qwen3) as a stepwise `ModelConfig`.
 * Only what the three families' modelling code reads is interpreted; anything that would change
 * the computation in a way the transformer does not implement fails here, naming field and value.
 */
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';
import { type ModelConfig, modelConfig } from '../model/config.ts';

export const HF_MODEL_TYPES = ['llama', 'qwen2', 'qwen3'] as const;
export type HfModelType = (typeof HF_MODEL_TYPES)[number];

/** Context length an imported model gets unless asked otherwise (KV buffers are sized by it). */
export const DEFAULT_HF_CONTEXT = 4096;

const RopeScaling = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().positive().optional(),
  high_freq_factor: z.number().positive().optional(),
  original_max_position_embeddings: z.number().int().positive().optional(),
});

/** The fields of config.json we read (others are kept as they are and ignored). */
export const HfConfig = z.looseObject({
  model_type: z.string(),
  vocab_size: z.number().int().min(2),
  hidden_size: z.number().int().min(1),
  num_hidden_layers: z.number().int().min(1),
  num_attention_heads: z.number().int().min(1),
  num_key_value_heads: z.number().int().min(1).nullish(),
  head_dim: z.number().int().min(1).nullish(),
  intermediate_size: z.number().int().min(1),
  hidden_act: z.string().default('silu'),
  max_position_embeddings: z.number().int().min(2).default(2048),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().nullish(),
  rope_scaling: RopeScaling.nullish(),
  rope_parameters: RopeScaling.nullish(),
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  use_sliding_window: z.boolean().default(false),
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});
export type HfConfig = z.infer<typeof HfConfig>;

export class UnsupportedHfConfigError extends Error {
  constructor(file: string, field: string, value: unknown, expected: string) {
    super(`${file}: '${field}' is ${JSON.stringify(value)}; stepwise supports ${expected}`);
    this.name = 'UnsupportedHfConfigError';
  }
}

/**
 * config.json's object -> ModelConfig. `contextLength` defaults to the smaller of
 * max_position_embeddings and DEFAULT_HF_CONTEXT.
 */
export function modelConfigFromHf(
  raw: unknown,
  options: { file?: string; contextLength?: number } = {},
): ModelConfig {
  const file = options.file ?? 'config.json';
  const hf = parseOrThrow(HfConfig, raw, file);
  const bad = (field: string, value: unknown, expected: string) =>
    new UnsupportedHfConfigError(file, field, value, expected);
  if (!(HF_MODEL_TYPES as readonly string[]).includes(hf.model_type)) {
    throw bad('model_type', hf.model_type, HF_MODEL_TYPES.join(', '));
  }
  if (hf.hidden_act !== 'silu') throw bad('hidden_act', hf.hidden_act, "'silu' (SwiGLU)");
  if (hf.mlp_bias) throw bad('mlp_bias', true, 'false');
  // Llama and Qwen3 put attention_bias on q, k, v and o; the output projection has no bias here.
  if (hf.attention_bias && hf.model_type !== 'qwen2') {
    throw bad('attention_bias', true, 'false (a bias on o_proj is not implemented)');
  }
  if (hf.use_sliding_window) throw bad('use_sliding_window', true, 'false (full attention only)');
  const rope = { ...(hf.rope_parameters ?? {}), ...(hf.rope_scaling ?? {}) };
  const ropeType = rope.rope_type ?? rope.type ?? 'default';
  let ropeScaling: ModelConfig['ropeScaling'];
  if (ropeType === 'llama3') {
    const need = (
      k: 'factor' | 'low_freq_factor' | 'high_freq_factor' | 'original_max_position_embeddings',
    ) => {
      const v = rope[k];
      if (v === undefined) throw bad(`rope_scaling.${k}`, undefined, 'a number (llama3 rope scaling)');
      return v;
    };
    ropeScaling = {
      factor: need('factor'),
      lowFreqFactor: need('low_freq_factor'),
      highFreqFactor: need('high_freq_factor'),
      originalContextLength: need('original_max_position_embeddings'),
    };
  } else if (ropeType !== 'default') {
    throw bad('rope_scaling.rope_type', ropeType, "'default' or 'llama3'");
  }
  const heads = hf.num_attention_heads;
  const kvHeads = hf.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0) {
    throw bad('num_key_value_heads', kvHeads, `a divisor of num_attention_heads (${heads})`);
  }
  const headSize = hf.head_dim ?? hf.hidden_size / heads;
  if (!Number.isInteger(headSize) || headSize % 2 !== 0) {
    throw bad('head_dim', headSize, 'an even integer (RoPE rotates pairs)');
  }
  const contextLength = Math.min(
    hf.max_position_embeddings,
    options.contextLength ?? Math.min(hf.max_position_embeddings, DEFAULT_HF_CONTEXT),
  );
  return modelConfig({
    vocabSize: hf.vocab_size,
    width: hf.hidden_size,
    layers: hf.num_hidden_layers,
    heads,
    contextLength,
    norm: 'rmsnorm',
    positions: 'rope',
    kvHeads,
    headSize,
    mlpWidth: hf.intermediate_size,
    activation: 'swiglu',
    ropeTheta: rope.rope_theta ?? hf.rope_theta ?? 10000,
    ...(ropeScaling ? { ropeScaling } : {}),
    qkvBias: hf.model_type === 'qwen2' || hf.attention_bias,
    qkNorm: hf.model_type === 'qwen3',
    untiedHead: !hf.tie_word_embeddings,
    normEps: hf.rms_norm_eps,
  });
}
