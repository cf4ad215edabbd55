/**
 * Named LoRA adapters on one Hugging Face base (an adapter per role): their config, and how a
 * checkpoint holds them. The layout is PEFT's for several adapters: the base folder once, then one
 * PEFT adapter folder per name,
 *
 *   <dir>/config.json, model.safetensors, tokenizer files     the frozen base, in its stored dtype
 *   <dir>/<name>/adapter_config.json, adapter_model.safetensors    each adapter (PEFT and vLLM load it)
 *   <dir>/<name>/optimizer.safetensors, stepwise.json          a trained adapter's AdamW state and step
 *   <dir>/stepwise-adapters.json                               the names and which ones train
 *
 * so `vllm serve <dir> --enable-lora --lora-modules planner=<dir>/planner ...` serves what
 * `stepwise serve --checkpoint <dir>` serves.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { hashSeed } from '../../util/random.ts';
import { parseOrThrow } from '../../util/zod.ts';
import { type Checkpoint, loadOptimizer, saveOptimizer } from '../checkpoint/checkpoint.ts';
import { LORA_TARGETS, LoraConfig, type ModelConfig } from '../model/config.ts';
import type { Params } from '../model/params.ts';
import { ADAPTER_CONFIG, initAdapters, loadAdapters, readLoraConfig, saveAdapters } from './lora.ts';

/**
 * One adapter of `policy.adapters`: a LoRA config (as `policy.lora`), whether it trains, and
 * optionally a PEFT adapter folder it starts from (else fresh: A random, B zero, the base model).
 * Fields left out come from the adapter's folder when it has one (`from`, or the checkpoint's own
 * folder of that name), else from `LoraConfig`'s defaults; a rank or targets given must match the
 * folder's.
 */
export const AdapterConfig = z.strictObject({
  // LoraConfig's fields without their defaults (which are applied after the folder's values).
  rank: z.number().int().min(1).optional(),
  alpha: z.number().positive().optional(),
  targets: z.array(z.enum(LORA_TARGETS)).min(1).optional(),
  dropout: z.number().min(0).max(0.9).optional(),
  /** false: the adapter is served and scored but never updated (no optimizer state). */
  trainable: z.boolean().default(true),
  /** A PEFT adapter folder (adapter_config.json + adapter_model.safetensors) to start from. */
  from: z.string().min(1).optional(),
});
export type AdapterConfig = z.output<typeof AdapterConfig>;
export type AdapterConfigInput = z.input<typeof AdapterConfig>;

/** An adapter's name is a folder name and a served model id. */
const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const AdaptersConfig = z
  .record(z.string(), AdapterConfig)
  .superRefine((r, ctx) => {
    for (const name of Object.keys(r)) {
      if (!ADAPTER_NAME.test(name)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `'${name}' is not an adapter name; expected letters, digits, '.', '_' or '-' (it names a folder and a served model)`,
        });
      }
    }
  })
  .refine((r) => Object.keys(r).length > 0, 'name at least one adapter');

export const ADAPTERS_FILE = 'stepwise-adapters.json';

const AdaptersFile = z.object({
  format: z.literal('stepwise-adapters-1'),
  adapters: z.record(z.string(), z.object({ trainable: z.boolean() })),
});

const AdapterState = z.object({
  format: z.literal('stepwise-adapter-state-1'),
  step: z.number().int().min(0),
});

/** An adapter as read: its model config (the base's plus its `lora`), its tensors, its state. */
export interface NamedAdapter {
  name: string;
  config: ModelConfig;
  /** The adapter's own tensors (A and B per target and layer), stepwise's layout. */
  params: Params;
  trainable: boolean;
  optimizer?: Checkpoint['optimizer'];
  step: number;
}

/** The adapters a checkpoint folder holds, by name (undefined: none). */
export async function storedAdapters(
  dir: string,
): Promise<Record<string, { trainable: boolean }> | undefined> {
  const manifest = path.join(dir, ADAPTERS_FILE);
  if (existsSync(manifest)) {
    return parseOrThrow(AdaptersFile, JSON.parse(await readFile(manifest, 'utf8')), manifest).adapters;
  }
  // A folder PEFT wrote with several adapters: every subfolder with an adapter_config.json.
  if (!existsSync(dir)) return undefined;
  const found: Record<string, { trainable: boolean }> = {};
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && existsSync(path.join(dir, e.name, ADAPTER_CONFIG)))
      found[e.name] = { trainable: true };
  }
  return Object.keys(found).length > 0 ? found : undefined;
}

/**
 * The adapters of a base: those `asked` for (each from the checkpoint's own folder of that name
 * when it has one, else from `from`, else fresh), or, with nothing asked, every stored one.
 * A stored adapter must have the rank and targets asked for.
 */
export async function loadNamedAdapters(
  dir: string,
  base: ModelConfig,
  asked: Record<string, AdapterConfigInput> | undefined,
  seed = 0,
): Promise<NamedAdapter[]> {
  const stored = (await storedAdapters(dir)) ?? {};
  const wanted: Record<string, Partial<AdapterConfig>> = asked
    ? parseOrThrow(AdaptersConfig, asked, 'invalid adapters config')
    : Object.fromEntries(Object.entries(stored).map(([n, s]) => [n, { trainable: s.trainable }]));
  const out: NamedAdapter[] = [];
  for (const [name, want] of Object.entries(wanted)) {
    const own = path.join(dir, name);
    const source = existsSync(path.join(own, ADAPTER_CONFIG)) ? own : want.from;
    const fromFile = source ? await readLoraConfig(source) : undefined;
    if (source && !fromFile) throw new Error(`adapter '${name}': '${source}' has no ${ADAPTER_CONFIG}`);
    const lora = LoraConfig.parse({ ...fromFile, ...pickLora(want) });
    if (fromFile && (fromFile.rank !== lora.rank || fromFile.targets.join() !== lora.targets.join())) {
      throw new Error(
        `adapter '${name}': ${source} has rank ${fromFile.rank} on ${fromFile.targets.join(', ')}; ` +
          `the config asks for rank ${lora.rank} on ${lora.targets.join(', ')}`,
      );
    }
    const config: ModelConfig = { ...base, lora };
    const params = source
      ? await loadAdapters(source, config)
      : initAdapters(config, hashSeed(`${seed}|${name}`));
    const trainable = want.trainable ?? true;
    let optimizer: Checkpoint['optimizer'];
    let step = 0;
    // Only the checkpoint's own folder carries state to resume; a `from` folder starts afresh.
    if (source === own && trainable) {
      optimizer = await loadOptimizer(own, config);
      const statePath = path.join(own, 'stepwise.json');
      if (existsSync(statePath)) {
        step = parseOrThrow(AdapterState, JSON.parse(await readFile(statePath, 'utf8')), statePath).step;
      }
    }
    out.push({ name, config, params, trainable, optimizer, step });
  }
  return out;
}

/** The LoRA fields an adapter's config gives (absent ones left out, so a folder's stand). */
function pickLora(a: Partial<AdapterConfig>): z.input<typeof LoraConfig> {
  const { trainable: _t, from: _f, ...lora } = a;
  return Object.fromEntries(Object.entries(lora).filter(([, v]) => v !== undefined));
}

/** Write each adapter's PEFT folder under `dir` (with its optimizer state when it has one) and the manifest. */
export async function saveNamedAdapters(
  dir: string,
  adapters: readonly NamedAdapter[],
  baseModel: string,
): Promise<void> {
  const manifest: z.infer<typeof AdaptersFile> = { format: 'stepwise-adapters-1', adapters: {} };
  for (const a of adapters) {
    const own = path.join(dir, a.name);
    await mkdir(own, { recursive: true });
    await saveAdapters(own, a.config, a.params, baseModel);
    if (a.optimizer) {
      await saveOptimizer(own, a.config, a.optimizer);
      const state = { format: 'stepwise-adapter-state-1', step: a.step };
      await writeFile(path.join(own, 'stepwise.json'), `${JSON.stringify(state)}\n`);
    }
    manifest.adapters[a.name] = { trainable: a.trainable };
  }
  await writeFile(path.join(dir, ADAPTERS_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
}
