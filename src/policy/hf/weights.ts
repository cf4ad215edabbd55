/**
 * Hugging Face weights <-> stepwise parameters. transformers stores a linear layer as
 * `weight [out, in]` (y = x W^T) under names like `model.layers.3.self_attn.q_proj.weight`;
 * stepwise keeps `[in, out]` matrices with q|k|v and gate|up fused (paramSpecs). Reading
 * transposes and concatenates, writing splits and transposes back, so a folder read and written
 * again has the same tensors under the same names.
 *
 * Files: `model.safetensors`, or shards listed by `model.safetensors.index.json`'s `weight_map`;
 * F32, F16 or BF16 (widened to float32 for the graphs).
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  fromFloat32,
  loadSafetensors,
  type SafetensorsTensor,
  saveSafetensors,
  toFloat32,
} from '../checkpoint/safetensors.ts';
import { headSize, kvHeads, type ModelConfig, mlpWidth } from '../model/config.ts';
import { checkParams, type Params } from '../model/params.ts';

/** The float dtypes a Hugging Face folder may store its weights in. */
export type HfDtype = 'F32' | 'F16' | 'BF16';

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';

/** [rows, cols] row-major -> its transpose [cols, rows]. */
function transposed(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[base + c]!;
  }
  return out;
}

/** Several [rows_i, cols] matrices (HF weights) -> one [cols, sum rows_i] matrix (stepwise). */
function fuseTransposed(parts: Float32Array[], cols: number): Float32Array {
  const total = parts.reduce((n, p) => n + p.length / cols, 0);
  const out = new Float32Array(total * cols);
  let at = 0;
  for (const part of parts) {
    const rows = part.length / cols;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[c * total + at + r] = part[r * cols + c]!;
    }
    at += rows;
  }
  return out;
}

/** The inverse of fuseTransposed: [cols, sum rows] -> the [rows_i, cols] pieces. */
function splitTransposed(fused: Float32Array, cols: number, rows: number[]): Float32Array[] {
  const total = rows.reduce((a, b) => a + b, 0);
  let at = 0;
  return rows.map((n) => {
    const part = new Float32Array(n * cols);
    for (let r = 0; r < n; r++)
      for (let c = 0; c < cols; c++) part[r * cols + c] = fused[c * total + at + r]!;
    at += n;
    return part;
  });
}

function attnRows(c: ModelConfig): [number, number, number] {
  const hs = headSize(c);
  return [c.heads * hs, kvHeads(c) * hs, kvHeads(c) * hs];
}

/** Read every tensor of a folder's weights (single file or shards), keyed by HF name. */
export async function readHfTensors(dir: string): Promise<Record<string, SafetensorsTensor>> {
  const indexPath = path.join(dir, INDEX);
  if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (e) {
      throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new Error(`${indexPath}: 'weight_map' is missing; expected { tensor name: shard file }`);
    }
    const files = [...new Set(Object.values(index.weight_map))];
    const tensors: Record<string, SafetensorsTensor> = {};
    for (const file of files) {
      const shard = path.join(dir, file);
      if (!existsSync(shard)) throw new Error(`${indexPath} lists shard '${file}', which does not exist`);
      Object.assign(tensors, (await loadSafetensors(shard)).tensors);
    }
    for (const [name, file] of Object.entries(index.weight_map)) {
      if (!tensors[name]) throw new Error(`${indexPath}: tensor '${name}' is not in its shard '${file}'`);
    }
    return tensors;
  }
  const single = path.join(dir, SINGLE);
  if (!existsSync(single)) throw new Error(`'${dir}' has neither ${SINGLE} nor ${INDEX}`);
  return (await loadSafetensors(single)).tensors;
}

/** HF tensors -> stepwise parameters for `c`; errors name a missing or misshapen tensor. */
export function paramsFromHf(c: ModelConfig, tensors: Record<string, SafetensorsTensor>, dir = ''): Params {
  const get = (name: string, shape: number[]): Float32Array => {
    const t = tensors[name];
    if (!t) throw new Error(`${dir}: tensor '${name}' is missing; expected shape [${shape}]`);
    if (t.shape.join(',') !== shape.join(',')) {
      throw new Error(`${dir}: tensor '${name}' has shape [${t.shape}]; expected [${shape}]`);
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new Error(`${dir}: tensor '${name}' is ${t.dtype}; expected F32, F16 or BF16`);
    }
    return toFloat32(t);
  };
  const d = c.width;
  const hs = headSize(c);
  const ff = mlpWidth(c);
  const [qRows, kRows, vRows] = attnRows(c);
  const params: Params = new Map();
  params.set('tokenEmbedding', get('model.embed_tokens.weight', [c.vocabSize, d]));
  for (let l = 0; l < c.layers; l++) {
    const hf = `model.layers.${l}`;
    const p = `layers.${l}`;
    params.set(`${p}.attnNorm.gain`, get(`${hf}.input_layernorm.weight`, [d]));
    params.set(
      `${p}.qkv`,
      fuseTransposed(
        [
          get(`${hf}.self_attn.q_proj.weight`, [qRows, d]),
          get(`${hf}.self_attn.k_proj.weight`, [kRows, d]),
          get(`${hf}.self_attn.v_proj.weight`, [vRows, d]),
        ],
        d,
      ),
    );
    if (c.qkvBias) {
      const b = new Float32Array(qRows + kRows + vRows);
      b.set(get(`${hf}.self_attn.q_proj.bias`, [qRows]), 0);
      b.set(get(`${hf}.self_attn.k_proj.bias`, [kRows]), qRows);
      b.set(get(`${hf}.self_attn.v_proj.bias`, [vRows]), qRows + kRows);
      params.set(`${p}.qkvBias`, b);
    }
    if (c.qkNorm) {
      params.set(`${p}.qNorm.gain`, get(`${hf}.self_attn.q_norm.weight`, [hs]));
      params.set(`${p}.kNorm.gain`, get(`${hf}.self_attn.k_norm.weight`, [hs]));
    }
    params.set(`${p}.attnOut`, transposed(get(`${hf}.self_attn.o_proj.weight`, [d, qRows]), d, qRows));
    params.set(`${p}.mlpNorm.gain`, get(`${hf}.post_attention_layernorm.weight`, [d]));
    params.set(
      `${p}.mlpIn`,
      fuseTransposed(
        [get(`${hf}.mlp.gate_proj.weight`, [ff, d]), get(`${hf}.mlp.up_proj.weight`, [ff, d])],
        d,
      ),
    );
    params.set(`${p}.mlpOut`, transposed(get(`${hf}.mlp.down_proj.weight`, [d, ff]), d, ff));
  }
  params.set('finalNorm.gain', get('model.norm.weight', [d]));
  if (c.untiedHead) params.set('head', get('lm_head.weight', [c.vocabSize, d]));
  checkParams(c, params);
  return params;
}

/** Stepwise parameters -> HF tensors (names and layouts as transformers writes them) in `dtype`. */
export function paramsToHf(
  c: ModelConfig,
  params: Params,
  dtype: HfDtype,
): Record<string, SafetensorsTensor> {
  checkParams(c, params);
  const out: Record<string, SafetensorsTensor> = {};
  const put = (name: string, shape: number[], values: Float32Array) => {
    out[name] = { dtype, shape, data: fromFloat32(values, dtype) };
  };
  const d = c.width;
  const hs = headSize(c);
  const ff = mlpWidth(c);
  const [qRows, kRows, vRows] = attnRows(c);
  const get = (name: string) => params.get(name)!;
  put('model.embed_tokens.weight', [c.vocabSize, d], get('tokenEmbedding'));
  for (let l = 0; l < c.layers; l++) {
    const hf = `model.layers.${l}`;
    const p = `layers.${l}`;
    put(`${hf}.input_layernorm.weight`, [d], get(`${p}.attnNorm.gain`));
    const [q, k, v] = splitTransposed(get(`${p}.qkv`), d, [qRows, kRows, vRows]);
    put(`${hf}.self_attn.q_proj.weight`, [qRows, d], q!);
    put(`${hf}.self_attn.k_proj.weight`, [kRows, d], k!);
    put(`${hf}.self_attn.v_proj.weight`, [vRows, d], v!);
    if (c.qkvBias) {
      const b = get(`${p}.qkvBias`);
      put(`${hf}.self_attn.q_proj.bias`, [qRows], b.slice(0, qRows));
      put(`${hf}.self_attn.k_proj.bias`, [kRows], b.slice(qRows, qRows + kRows));
      put(`${hf}.self_attn.v_proj.bias`, [vRows], b.slice(qRows + kRows));
    }
    if (c.qkNorm) {
      put(`${hf}.self_attn.q_norm.weight`, [hs], get(`${p}.qNorm.gain`));
      put(`${hf}.self_attn.k_norm.weight`, [hs], get(`${p}.kNorm.gain`));
    }
    put(`${hf}.self_attn.o_proj.weight`, [d, qRows], transposed(get(`${p}.attnOut`), qRows, d));
    put(`${hf}.post_attention_layernorm.weight`, [d], get(`${p}.mlpNorm.gain`));
    const [gate, up] = splitTransposed(get(`${p}.mlpIn`), d, [ff, ff]);
    put(`${hf}.mlp.gate_proj.weight`, [ff, d], gate!);
    put(`${hf}.mlp.up_proj.weight`, [ff, d], up!);
    put(`${hf}.mlp.down_proj.weight`, [d, ff], transposed(get(`${p}.mlpOut`), ff, d));
  }
  put('model.norm.weight', [d], get('finalNorm.gain'));
  if (c.untiedHead) put('lm_head.weight', [c.vocabSize, d], get('head'));
  return out;
}

/**
 * Write HF tensors as `model.safetensors`, or, with `shardBytes`, as shards
 * `model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json` (transformers' layout).
 */
export async function writeHfTensors(
  dir: string,
  tensors: Record<string, SafetensorsTensor>,
  options: { shardBytes?: number } = {},
): Promise<void> {
  const metadata = { format: 'pt' };
  const names = Object.keys(tensors).sort();
  const bytes = (n: string) => tensors[n]!.data.byteLength;
  const total = names.reduce((s, n) => s + bytes(n), 0);
  if (!options.shardBytes || total <= options.shardBytes) {
    await saveSafetensors(path.join(dir, SINGLE), tensors, metadata);
    // An index left by an earlier sharded save would win over the new file when read.
    await rm(path.join(dir, INDEX), { force: true });
    return;
  }
  const shards: string[][] = [[]];
  let size = 0;
  for (const n of names) {
    if (size > 0 && size + bytes(n) > options.shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(n);
    size += bytes(n);
  }
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    await saveSafetensors(
      path.join(dir, file),
      Object.fromEntries(shard.map((n) => [n, tensors[n]!])),
      metadata,
    );
    for (const n of shard) weightMap[n] = file;
  }
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  await writeFile(path.join(dir, INDEX), `${JSON.stringify(index, null, 2)}\n`);
}

/** The stored dtype of a folder's weights (that of its embedding). */
export function storedDtype(tensors: Record<string, SafetensorsTensor>): HfDtype {
  const t = tensors['model.embed_tokens.weight'];
  return t && (t.dtype === 'F16' || t.dtype === 'BF16') ? t.dtype : 'F32';
}
