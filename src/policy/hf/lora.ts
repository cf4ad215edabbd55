/**
 * LoRA adapters in PEFT's layout, and merging them into the base weights.
 *
 *   adapter_config.json          { peft_type: "LORA", r, lora_alpha, target_modules, lora_dropout, ... }
 *   adapter_model.safetensors    base_model.model.model.layers.{l}.{self_attn|mlp}.{target}.lora_A.weight [r, in]
 *                                base_model.model.model.layers.{l}.{self_attn|mlp}.{target}.lora_B.weight [out, r]
 *
 * stepwise keeps A as [in, r] and B as [r, out] (x A B), the transposes of PEFT's (B A x).
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { Rng } from '../../util/random.ts';
import { parseOrThrow } from '../../util/zod.ts';
import {
  loadSafetensors,
  type SafetensorsTensor,
  saveSafetensors,
  toFloat32,
} from '../checkpoint/safetensors.ts';
import {
  headSize,
  kvHeads,
  LORA_TARGETS,
  LoraConfig,
  type LoraTarget,
  loraShape,
  type ModelConfig,
  mlpWidth,
} from '../model/config.ts';
import { elementCount, loraName, type Params, paramSpecs } from '../model/params.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** The config without adapters: the base model's. */
export function baseConfig(c: ModelConfig): ModelConfig {
  const { lora: _, ...base } = c;
  return base;
}

function peftName(l: number, target: LoraTarget, factor: 'A' | 'B'): string {
  const module = ['gate_proj', 'up_proj', 'down_proj'].includes(target) ? 'mlp' : 'self_attn';
  return `base_model.model.model.layers.${l}.${module}.${target}.lora_${factor}.weight`;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** Fresh adapters (A random, B zero: the adapted model starts equal to the base), seeded. */
export function initAdapters(c: ModelConfig, seed = 0): Params {
  const rng = new Rng(seed);
  const out: Params = new Map();
  for (const s of paramSpecs(c)) {
    if (s.frozen) continue;
    const a = new Float32Array(elementCount(s.shape));
    if (s.init.kind === 'const') a.fill(s.init.value);
    else for (let i = 0; i < a.length; i++) a[i] = s.init.std * rng.normal();
    out.set(s.name, a);
  }
  return out;
}

/** adapter_config.json's fields we read and write. */
const PeftConfig = z.looseObject({
  peft_type: z.literal('LORA'),
  r: z.number().int().min(1),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).default(0),
  target_modules: z.union([z.array(z.string()), z.string()]),
  bias: z.string().default('none'),
  use_dora: z.boolean().default(false),
  use_rslora: z.boolean().default(false),
});

/** Read a folder's adapter_config.json as a `LoraConfig` (undefined when there is none). */
export async function readLoraConfig(dir: string): Promise<LoraConfig | undefined> {
  const p = path.join(dir, ADAPTER_CONFIG);
  if (!existsSync(p)) return undefined;
  const raw = parseOrThrow(PeftConfig, JSON.parse(await readFile(p, 'utf8')), p);
  const unsupported = (field: string, value: unknown) =>
    new Error(`${p}: '${field}' is ${JSON.stringify(value)}; stepwise supports plain LoRA only`);
  if (raw.bias !== 'none') throw unsupported('bias', raw.bias);
  if (raw.use_dora) throw unsupported('use_dora', true);
  if (raw.use_rslora) throw unsupported('use_rslora', true);
  const targets = typeof raw.target_modules === 'string' ? [raw.target_modules] : raw.target_modules;
  for (const t of targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) {
      throw new Error(`${p}: target_modules has '${t}'; expected some of ${LORA_TARGETS.join(', ')}`);
    }
  }
  return parseOrThrow(
    LoraConfig,
    { rank: raw.r, alpha: raw.lora_alpha, targets, dropout: raw.lora_dropout },
    `${p}`,
  );
}

/** Write adapter_config.json and adapter_model.safetensors (PEFT's names and layouts, float32). */
export async function saveAdapters(
  dir: string,
  c: ModelConfig,
  params: Params,
  baseModel = '',
): Promise<void> {
  const lora = c.lora;
  if (!lora) throw new Error('saveAdapters: the config has no lora section');
  const tensors: Record<string, SafetensorsTensor> = {};
  for (let l = 0; l < c.layers; l++) {
    for (const t of lora.targets) {
      const [fanIn, fanOut] = loraShape(c, t);
      const a = params.get(loraName(l, t, 'A'))!;
      const b = params.get(loraName(l, t, 'B'))!;
      tensors[peftName(l, t, 'A')] = {
        dtype: 'F32',
        shape: [lora.rank, fanIn],
        data: transpose(a, fanIn, lora.rank),
      };
      tensors[peftName(l, t, 'B')] = {
        dtype: 'F32',
        shape: [fanOut, lora.rank],
        data: transpose(b, lora.rank, fanOut),
      };
    }
  }
  await saveSafetensors(path.join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: lora.rank,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    target_modules: lora.targets,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    use_dora: false,
    use_rslora: false,
  };
  await writeFile(path.join(dir, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
}

/** Read adapter_model.safetensors into stepwise's adapter parameters. */
export async function loadAdapters(dir: string, c: ModelConfig): Promise<Params> {
  const lora = c.lora!;
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) throw new Error(`'${dir}' has ${ADAPTER_CONFIG} but no ${ADAPTER_WEIGHTS}`);
  const { tensors } = await loadSafetensors(file);
  const out: Params = new Map();
  for (let l = 0; l < c.layers; l++) {
    for (const t of lora.targets) {
      const [fanIn, fanOut] = loraShape(c, t);
      const get = (factor: 'A' | 'B', shape: [number, number]) => {
        // PEFT also writes names without the adapter name; some tools add '.default'.
        const name = peftName(l, t, factor);
        const x = tensors[name] ?? tensors[name.replace('.weight', '.default.weight')];
        if (!x) throw new Error(`${file}: tensor '${name}' is missing; expected shape [${shape}]`);
        if (x.shape.join(',') !== shape.join(',')) {
          throw new Error(`${file}: tensor '${name}' has shape [${x.shape}]; expected [${shape}]`);
        }
        return toFloat32(x);
      };
      out.set(loraName(l, t, 'A'), transpose(get('A', [lora.rank, fanIn]), lora.rank, fanIn));
      out.set(loraName(l, t, 'B'), transpose(get('B', [fanOut, lora.rank]), fanOut, lora.rank));
    }
  }
  return out;
}

/**
 * The base parameters with the adapters folded in: W += (alpha / rank) A B, each target into its
 * columns of the fused q|k|v and gate|up matrices. A new map; the inputs are not changed.
 */
export function mergeAdapters(c: ModelConfig, params: Params): Params {
  const lora = c.lora;
  const base = baseConfig(c);
  const out: Params = new Map();
  for (const s of paramSpecs(base)) out.set(s.name, Float32Array.from(params.get(s.name)!));
  if (!lora) return out;
  const scale = lora.alpha / lora.rank;
  const hs = headSize(c);
  const q = c.heads * hs;
  const kv = kvHeads(c) * hs;
  const ff = mlpWidth(c);
  // Where each target sits: the stepwise matrix, its column count and the target's first column.
  const place: Record<LoraTarget, [string, number, number]> = {
    q_proj: ['qkv', q + 2 * kv, 0],
    k_proj: ['qkv', q + 2 * kv, q],
    v_proj: ['qkv', q + 2 * kv, q + kv],
    o_proj: ['attnOut', c.width, 0],
    gate_proj: ['mlpIn', 2 * ff, 0],
    up_proj: ['mlpIn', 2 * ff, ff],
    down_proj: ['mlpOut', c.width, 0],
  };
  for (let l = 0; l < c.layers; l++) {
    for (const t of lora.targets) {
      const [fanIn, fanOut] = loraShape(c, t);
      const [matrix, cols, first] = place[t];
      const w = out.get(`layers.${l}.${matrix}`)!;
      const a = params.get(loraName(l, t, 'A'))!;
      const b = params.get(loraName(l, t, 'B'))!;
      for (let i = 0; i < fanIn; i++) {
        for (let r = 0; r < lora.rank; r++) {
          const air = a[i * lora.rank + r]! * scale;
          if (air === 0) continue;
          const row = i * cols + first;
          for (let j = 0; j < fanOut; j++) w[row + j]! += air * b[r * fanOut + j]!;
        }
      }
    }
  }
  return out;
}
