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
import type { ModelConfig } from '../model/config.ts';
import type { Params } from '../model/params.ts';
import { modelConfigFromHf } from './config.ts';
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

/** Read a Hugging Face folder; `contextLength` caps the context (KV buffers are sized by it). */
export async function loadHfModel(dir: string, options: { contextLength?: number } = {}): Promise<HfModel> {
  const configPath = path.join(dir, 'config.json');
  let rawConfig: Record<string, unknown>;
  try {
    rawConfig = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (e) {
    throw new Error(`${configPath}: not readable JSON (${(e as Error).message})`);
  }
  const config = modelConfigFromHf(rawConfig, { file: configPath, contextLength: options.contextLength });
  const tensors = await readHfTensors(dir);
  const params = paramsFromHf(config, tensors, dir);
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
 * resumed run continues from exactly the trained values), the tokenizer files and, when given,
 * the optimizer state.
 */
export async function saveHfModel(
  dir: string,
  model: Omit<HfModel, 'step' | 'optimizer'> & Partial<Pick<HfModel, 'step' | 'optimizer'>>,
  options: { dtype?: HfDtype; shardBytes?: number } = {},
): Promise<void> {
  const dtype = options.dtype ?? 'F32';
  await mkdir(dir, { recursive: true });
  const rawConfig: Record<string, unknown> = { ...model.source.rawConfig, torch_dtype: TORCH_DTYPE[dtype] };
  if ('dtype' in model.source.rawConfig) rawConfig.dtype = TORCH_DTYPE[dtype];
  await writeFile(path.join(dir, 'config.json'), `${JSON.stringify(rawConfig, null, 2)}\n`);
  await writeHfTensors(dir, paramsToHf(model.config, model.params, dtype), {
    shardBytes: options.shardBytes,
  });
  await model.tokenizer.save(dir);
  if (model.optimizer) {
    await saveOptimizer(dir, model.config, model.optimizer);
    const state = { format: 'stepwise-hf-state-1', step: model.step ?? 0 };
    await writeFile(path.join(dir, 'stepwise.json'), `${JSON.stringify(state)}\n`);
  }
}
