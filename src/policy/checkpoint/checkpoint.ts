/**
 * Checkpoint folders: everything needed to restore a policy, in formats other tools read.
 *
 *   <dir>/model.safetensors      parameters (F32), names as in paramSpecs
 *   <dir>/config.json            { format, model: ModelConfig, step }
 *   <dir>/tokenizer.json         the tokenizer's own JSON (written by the tokenizer module)
 *   <dir>/optimizer.safetensors  AdamW moments (optional: present when saved from training)
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';
import { ModelConfig } from '../model/config.ts';
import { checkParams, type Params, paramSpecs, trainableSpecs } from '../model/params.ts';
import { loadSafetensors, type SafetensorsTensor, saveSafetensors } from './safetensors.ts';

const FORMAT = 'stepwise-policy-1';

const ConfigFile = z.object({
  format: z.literal(FORMAT),
  model: ModelConfig,
  /** Optimizer steps taken so far (AdamW's bias correction resumes from it). */
  step: z.number().int().min(0).default(0),
});

export interface Checkpoint {
  config: ModelConfig;
  params: Params;
  /** The tokenizer's JSON text, stored verbatim. */
  tokenizerJson?: string;
  /** AdamW first and second moments per parameter name, and the step count. */
  optimizer?: { m: Params; v: Params };
  step: number;
}

function toTensors(
  config: ModelConfig,
  params: Params,
  suffix = '',
  specs = paramSpecs(config),
): Record<string, SafetensorsTensor> {
  const out: Record<string, SafetensorsTensor> = {};
  for (const spec of specs) {
    out[spec.name + suffix] = { dtype: 'F32', shape: spec.shape, data: params.get(spec.name)! };
  }
  return out;
}

function fromTensors(
  config: ModelConfig,
  tensors: Record<string, SafetensorsTensor>,
  file: string,
  suffix = '',
  specs = paramSpecs(config),
): Params {
  const params: Params = new Map();
  for (const spec of specs) {
    const t = tensors[spec.name + suffix];
    if (!t) throw new Error(`checkpoint ${file}: tensor '${spec.name + suffix}' is missing`);
    if (t.dtype !== 'F32' || t.shape.join(',') !== spec.shape.join(',')) {
      throw new Error(
        `checkpoint ${file}: tensor '${spec.name + suffix}' is ${t.dtype}[${t.shape}]; expected F32[${spec.shape}]`,
      );
    }
    params.set(spec.name, t.data as Float32Array);
  }
  return params;
}

export async function saveCheckpoint(dir: string, ckpt: Checkpoint): Promise<void> {
  checkParams(ckpt.config, ckpt.params);
  await mkdir(dir, { recursive: true });
  await saveSafetensors(path.join(dir, 'model.safetensors'), toTensors(ckpt.config, ckpt.params), {
    format: FORMAT,
  });
  const config = { format: FORMAT, model: ckpt.config, step: ckpt.step };
  await writeFile(path.join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  if (ckpt.tokenizerJson !== undefined) await writeFile(path.join(dir, 'tokenizer.json'), ckpt.tokenizerJson);
  if (ckpt.optimizer) await saveOptimizer(dir, ckpt.config, ckpt.optimizer);
}

/** Write AdamW's moments as `<dir>/optimizer.safetensors` (names: parameter + '.m' / '.v'). */
export async function saveOptimizer(
  dir: string,
  config: ModelConfig,
  optimizer: NonNullable<Checkpoint['optimizer']>,
): Promise<void> {
  await saveSafetensors(path.join(dir, 'optimizer.safetensors'), {
    ...toTensors(config, optimizer.m, '.m', trainableSpecs(config)),
    ...toTensors(config, optimizer.v, '.v', trainableSpecs(config)),
  });
}

/**
 * Write only the trainable parameters (all of them, or a model's LoRA adapters) to one file, with
 * string metadata: a running mean of them, for one (src/training/average.ts).
 */
export async function saveTrainable(
  file: string,
  config: ModelConfig,
  params: Params,
  metadata: Record<string, string> = {},
): Promise<void> {
  await saveSafetensors(file, toTensors(config, params, '', trainableSpecs(config)), metadata);
}

/** The trainable parameters written by `saveTrainable`, checked against the config's shapes. */
export async function loadTrainable(
  file: string,
  config: ModelConfig,
): Promise<{ params: Params; metadata: Record<string, string> }> {
  const { tensors, metadata } = await loadSafetensors(file);
  return { params: fromTensors(config, tensors, file, '', trainableSpecs(config)), metadata };
}

/** `<dir>/optimizer.safetensors` if present. */
export async function loadOptimizer(dir: string, config: ModelConfig): Promise<Checkpoint['optimizer']> {
  const optPath = path.join(dir, 'optimizer.safetensors');
  if (!existsSync(optPath)) return undefined;
  const opt = (await loadSafetensors(optPath)).tensors;
  return {
    m: fromTensors(config, opt, 'optimizer.safetensors', '.m', trainableSpecs(config)),
    v: fromTensors(config, opt, 'optimizer.safetensors', '.v', trainableSpecs(config)),
  };
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const configPath = path.join(dir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`no checkpoint at '${dir}': config.json is missing`);
  const file = parseOrThrow(
    ConfigFile,
    JSON.parse(await readFile(configPath, 'utf8')),
    `checkpoint ${configPath}`,
  );
  const config = file.model;
  const { tensors } = await loadSafetensors(path.join(dir, 'model.safetensors'));
  const params = fromTensors(config, tensors, 'model.safetensors');
  const tokPath = path.join(dir, 'tokenizer.json');
  const tokenizerJson = existsSync(tokPath) ? await readFile(tokPath, 'utf8') : undefined;
  const optimizer = await loadOptimizer(dir, config);
  return { config, params, tokenizerJson, optimizer, step: file.step };
}
