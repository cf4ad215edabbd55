/**
 * Test fixtures for the Hugging Face import: small random-init model folders in transformers'
 * layout (config.json, safetensors under HF names in F32/F16/BF16, single file or sharded), a
 * tiny byte-level BPE tokenizer.json with a ChatML template, and the numpy reference forward
 * (fixtures/hf_reference.py) run on them.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fromFloat32, type SafetensorsTensor } from '../../src/policy/checkpoint/safetensors.ts';
import type { HfDtype } from '../../src/policy/hf/weights.ts';
import { writeHfTensors } from '../../src/policy/hf/weights.ts';
import { Rng } from '../../src/util/random.ts';

export type Family = 'llama' | 'qwen2' | 'qwen3';

/** The model vocabulary (padded above the tokenizer's 259 ids, as Qwen pads its own). */
export const VOCAB = 272;

/** One config per family, each exercising what that family adds. */
export function familyConfig(family: Family): Record<string, unknown> {
  const common = {
    vocab_size: VOCAB,
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    max_position_embeddings: 64,
    hidden_act: 'silu',
  };
  if (family === 'llama') {
    // SmolLM2 / Llama 3 style: GQA, tied embedding, llama3 RoPE scaling, a large theta.
    return {
      ...common,
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      num_attention_heads: 4,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 16,
      },
      tie_word_embeddings: true,
      attention_bias: false,
      mlp_bias: false,
    };
  }
  if (family === 'qwen2') {
    // q/k/v biases, a separate lm_head, GQA 6:2.
    return {
      ...common,
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      num_attention_heads: 6,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: false,
      use_sliding_window: false,
    };
  }
  // Qwen3: per-head q/k norms, head_dim (8) != hidden / heads (6), theta in rope_parameters.
  return {
    ...common,
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 8,
    rms_norm_eps: 1e-6,
    rope_parameters: { rope_type: 'default', rope_theta: 1000000 },
    tie_word_embeddings: false,
    attention_bias: false,
  };
}

/** Random HF tensors for a config (names and shapes as transformers has them). */
function randomTensors(cfg: Record<string, unknown>, dtype: HfDtype, seed: number) {
  const rng = new Rng(seed);
  const n = (k: string) => cfg[k] as number;
  const d = n('hidden_size');
  const H = n('num_attention_heads');
  const KV = n('num_key_value_heads');
  const hd = (cfg.head_dim as number | undefined) ?? d / H;
  const ff = n('intermediate_size');
  const V = n('vocab_size');
  const out: Record<string, SafetensorsTensor> = {};
  const put = (name: string, shape: number[], f: () => number) => {
    const a = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, f);
    out[name] = { dtype, shape, data: fromFloat32(a, dtype) };
  };
  const normal = (std: number) => () => std * rng.normal();
  const gain = () => 1 + 0.2 * rng.normal();
  put('model.embed_tokens.weight', [V, d], normal(1));
  for (let l = 0; l < n('num_hidden_layers'); l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [d], gain);
    put(`${p}.self_attn.q_proj.weight`, [H * hd, d], normal(0.3));
    put(`${p}.self_attn.k_proj.weight`, [KV * hd, d], normal(0.3));
    put(`${p}.self_attn.v_proj.weight`, [KV * hd, d], normal(0.3));
    if (cfg.model_type === 'qwen2') {
      put(`${p}.self_attn.q_proj.bias`, [H * hd], normal(0.3));
      put(`${p}.self_attn.k_proj.bias`, [KV * hd], normal(0.3));
      put(`${p}.self_attn.v_proj.bias`, [KV * hd], normal(0.3));
    }
    if (cfg.model_type === 'qwen3') {
      put(`${p}.self_attn.q_norm.weight`, [hd], gain);
      put(`${p}.self_attn.k_norm.weight`, [hd], gain);
    }
    put(`${p}.self_attn.o_proj.weight`, [d, H * hd], normal(0.2));
    put(`${p}.post_attention_layernorm.weight`, [d], gain);
    put(`${p}.mlp.gate_proj.weight`, [ff, d], normal(0.3));
    put(`${p}.mlp.up_proj.weight`, [ff, d], normal(0.3));
    put(`${p}.mlp.down_proj.weight`, [d, ff], normal(0.2));
  }
  put('model.norm.weight', [d], gain);
  if (!cfg.tie_word_embeddings) put('lm_head.weight', [V, d], normal(0.3));
  return out;
}

/** GPT-2's byte -> printable character table, as byte-level BPE vocabularies spell bytes. */
function byteChars(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const chars: string[] = new Array(256);
  for (const b of bs) chars[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (chars[b] === undefined) chars[b] = String.fromCodePoint(256 + n++);
  return chars;
}

export const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** A byte-level BPE tokenizer.json: the 256 bytes and three ChatML specials (ids 256..258). */
export function tinyTokenizerFiles(): Record<string, string> {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => {
    vocab[c] = b;
  });
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, i) => ({
      id: 256 + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: [],
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    chat_template: CHATML,
  };
  return {
    'tokenizer.json': JSON.stringify(json),
    'tokenizer_config.json': JSON.stringify(config, null, 2),
    'generation_config.json': JSON.stringify({ eos_token_id: [258, 256] }),
  };
}

/** Write a random-init model folder; returns its config.json object. */
export async function writeHfModel(
  dir: string,
  options: { family: Family; dtype: HfDtype; sharded: boolean; seed?: number; maxPositions?: number },
): Promise<Record<string, unknown>> {
  mkdirSync(dir, { recursive: true });
  const cfg = {
    ...familyConfig(options.family),
    ...(options.maxPositions ? { max_position_embeddings: options.maxPositions } : {}),
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[options.dtype],
  };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  const tensors = randomTensors(cfg, options.dtype, options.seed ?? 1);
  // Shards of a few kilobytes: several files even for these tiny models.
  await writeHfTensors(dir, tensors, options.sharded ? { shardBytes: 8000 } : {});
  for (const [name, text] of Object.entries(tinyTokenizerFiles())) writeFileSync(path.join(dir, name), text);
  return cfg;
}

/** The numpy reference's logits: per request, per row, [seq][vocab]. */
export function referenceLogits(requests: { dir: string; ids: number[][] }[]): number[][][][] {
  const script = path.join(import.meta.dirname, 'fixtures', 'hf_reference.py');
  const out = execFileSync('python3', [script], {
    input: JSON.stringify(requests),
    maxBuffer: 1 << 28,
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

export function logSoftmax(row: readonly number[]): number[] {
  const m = Math.max(...row);
  const z = Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0)) + m;
  return row.map((x) => x - z);
}
