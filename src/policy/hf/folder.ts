/**
 * Hugging Face model folders as policies' parts: `config.json` (transformers' own), the weights
 * (weights.ts) and the tokenizer files (tokenizer.ts). A folder stepwise writes is again such a
 * folder (transformers loads it), plus, after training, `optimizer.safetensors` and
 * `stepwise.json` (the optimizer step) so a run resumes exactly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';
import { type Checkpoint, loadOptimizer, saveOptimizer } from '../checkpoint/checkpoint.ts';
import { LoraConfig, type ModelConfig } from '../model/config.ts';
import { type Params, paramSpecs } from '../model/params.ts';
import { modelConfigFromHf } from './config.ts';
import { baseConfig, initAdapters, loadAdapters, readLoraConfig, saveAdapters } from './lora.ts';
import { HfTokenizer } from './tokenizer.ts';
import {
  type HfDtype,
  paramsFromHf,
  paramsToHf,
  readHfTensors,
  storedDtype,
  writeHfTensors,
} from './weights.ts';

/** What a policy keeps of the folder it was imported from, to write a folder like it. */
export interface HfSource {
  /** config.json as read (fields stepwise does not interpret are written back unchanged). */
  rawConfig: Record<string, unknown>;
  /** The dtype the weights were stored in. */
  dtype: HfDtype;
}

export interface HfModel {
  config: ModelConfig;
  params: Params;
  tokenizer: HfTokenizer;
  source: HfSource;
  optimizer?: Checkpoint['optimizer'];
  step: number;
}

const StateFile = z.object({ format: z.literal('stepwise-hf-state-1'), step: z.number().int().min(0) });

const TORCH_DTYPE: Record<HfDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** A folder whose config.json is a transformers config (has `model_type`), not a stepwise one. */
export function isHfFolder(dir: string): boolean {
  const p = path.join(dir, 'config.json');
  if (!existsSync(p)) return false;
  try {
    const raw = JSON.parse(readFileSync(p, 'utf8'));
    return typeof raw === 'object' && raw !== null && 'model_type' in raw && !('format' in raw);
  } catch {
    return false;
  }
}

export interface HfLoadOptions {
  /** Caps the context (KV buffers and RoPE tables are sized by it). */
  contextLength?: number;
  /**
   * Train LoRA adapters on the frozen base: fresh ones (seeded by `seed`) unless the folder has
   * adapters already (adapter_config.json), which must then have the same rank and targets.
   */
  lora?: z.input<typeof LoraConfig>;
  seed?: number;
}

/** Read a Hugging Face folder (and its LoRA adapters, when it has them or `lora` asks for them). */
export async function loadHfModel(dir: string, options: HfLoadOptions = {}): Promise<HfModel> {
  const configPath = path.join(dir, 'config.json');
  let rawConfig: Record<string, unknown>;
  try {
    rawConfig = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new Error(`${configPath}: not readable JSON (${(e as Error).message})`);
  }
  const base = modelConfigFromHf(rawConfig, { file: configPath, contextLength: options.contextLength });
  const tensors = await readHfTensors(dir);
  const params = paramsFromHf(base, tensors, dir);
  const stored = await readLoraConfig(dir);
  const asked = options.lora ? parseOrThrow(LoraConfig, options.lora, 'invalid lora config') : undefined;
  if (stored && asked && (stored.rank !== asked.rank || stored.targets.join() !== asked.targets.join())) {
    throw new Error(
      `${dir} has LoRA adapters of rank ${stored.rank} on ${stored.targets.join(', ')}; ` +
        `the config asks for rank ${asked.rank} on ${asked.targets.join(', ')}`,
    );
  }
  const lora =
    stored && asked ? { ...stored, alpha: asked.alpha, dropout: asked.dropout } : (stored ?? asked);
  const config: ModelConfig = lora ? { ...base, lora } : base;
  if (lora) {
    const adapters = stored ? await loadAdapters(dir, config) : initAdapters(config, options.seed ?? 0);
    for (const [k, v] of adapters) params.set(k, v);
  }
  const tokenizer = await HfTokenizer.fromFolder(dir, config.vocabSize);
  if (tokenizer.vocabSize !== config.vocabSize) {
    throw new Error(
      `${dir}: the tokenizer has ids up to ${tokenizer.vocabSize - 1}, beyond config.json's vocab_size ${config.vocabSize}`,
    );
  }
  const statePath = path.join(dir, 'stepwise.json');
  const step = existsSync(statePath)
    ? parseOrThrow(StateFile, JSON.parse(await readFile(statePath, 'utf8')), statePath).step
    : 0;
  return {
    config,
    params,
    tokenizer,
    source: { rawConfig, dtype: storedDtype(tensors) },
    optimizer: await loadOptimizer(dir, config),
    step,
  };
}

/**
 * Write a Hugging Face folder: config.json, the weights in `dtype` (default float32, so a
 * resumed run continues from exactly the trained values; with LoRA the frozen base keeps its
 * stored dtype, losslessly, and the adapters go to PEFT's files), the tokenizer files and, when
 * given, the optimizer state.
 */
export async function saveHfModel(
  dir: string,
  model: Omit<HfModel, 'step' | 'optimizer'> & Partial<Pick<HfModel, 'step' | 'optimizer'>>,
  options: { dtype?: HfDtype; shardBytes?: number } = {},
): Promise<void> {
  const dtype = options.dtype ?? (model.config.lora ? model.source.dtype : 'F32');
  await mkdir(dir, { recursive: true });
  const rawConfig: Record<string, unknown> = { ...model.source.rawConfig, torch_dtype: TORCH_DTYPE[dtype] };
  if ('dtype' in model.source.rawConfig) rawConfig.dtype = TORCH_DTYPE[dtype];
  await writeFile(path.join(dir, 'config.json'), `${JSON.stringify(rawConfig, null, 2)}\n`);
  const base = baseConfig(model.config);
  const baseParams: Params = new Map(paramSpecs(base).map((s) => [s.name, model.params.get(s.name)!]));
  await writeHfTensors(dir, paramsToHf(base, baseParams, dtype), { shardBytes: options.shardBytes });
  if (model.config.lora) {
    await saveAdapters(dir, model.config, model.params, String(model.source.rawConfig._name_or_path ?? ''));
  }
  await model.tokenizer.save(dir);
  if (model.optimizer) {
    await saveOptimizer(dir, model.config, model.optimizer);
    const state = { format: 'stepwise-hf-state-1', step: model.step ?? 0 };
    await writeFile(path.join(dir, 'stepwise.json'), `${JSON.stringify(state)}\n`);
  }
}
