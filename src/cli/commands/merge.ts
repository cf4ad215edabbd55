/**
 * `stepwise merge --checkpoint <dir> --out <dir>`: a LoRA checkpoint (a Hugging Face base folder
 * with PEFT adapters) folded into one full Hugging Face folder (config, safetensors with the
 * original tensor names, tokenizer files) that transformers, vLLM or `stepwise serve` load alone.
 * A checkpoint with an adapter per role (`policy.adapters`) merges one of them: `--adapter <name>`.
 */
import type { Command } from 'commander';
import { loadNamedAdapters, storedAdapters } from '../../policy/hf/adapters.ts';
import { isHfFolder, loadHfModel, saveHfModel } from '../../policy/hf/folder.ts';
import { baseConfig, mergeAdapters } from '../../policy/hf/lora.ts';
import type { HfDtype } from '../../policy/hf/weights.ts';

const DTYPES: Record<string, HfDtype> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };

export interface MergeOptions {
  checkpoint: string;
  out: string;
  /** Stored dtype of the merged weights (default float32: the merge is exact). */
  dtype?: HfDtype;
  /** Of a checkpoint with named adapters: the one to merge. */
  adapter?: string;
}

/** Merge and write; returns what was merged, for the command's message. */
export async function mergeCheckpoint(options: MergeOptions): Promise<{ rank?: number; targets?: string[] }> {
  if (!isHfFolder(options.checkpoint)) {
    throw new Error(
      `--checkpoint '${options.checkpoint}' is not a Hugging Face folder (config.json with model_type)`,
    );
  }
  const m = await loadHfModel(options.checkpoint);
  const named = await storedAdapters(options.checkpoint);
  if (named && !m.config.lora) {
    const names = Object.keys(named);
    if (options.adapter === undefined || !names.includes(options.adapter)) {
      throw new Error(
        `--checkpoint '${options.checkpoint}' has an adapter per role (${names.join(', ')}); ` +
          `${options.adapter === undefined ? 'choose one with --adapter <name>' : `--adapter '${options.adapter}' is not one of them`}`,
      );
    }
    // Nothing asked: every stored adapter as it was saved (adapters are small beside the base).
    const stored = await loadNamedAdapters(options.checkpoint, m.config, undefined);
    const a = stored.find((x) => x.name === options.adapter);
    const lora = a!.config.lora!;
    for (const [k, v] of a!.params) m.params.set(k, v);
    m.config = { ...m.config, lora };
  } else if (options.adapter !== undefined) {
    throw new Error(`--adapter: '${options.checkpoint}' has no named adapters`);
  }
  if (!m.config.lora)
    throw new Error(`--checkpoint '${options.checkpoint}' has no LoRA adapters (adapter_config.json)`);
  const params = mergeAdapters(m.config, m.params);
  await saveHfModel(
    options.out,
    { config: baseConfig(m.config), params, tokenizer: m.tokenizer, source: m.source },
    { dtype: options.dtype ?? 'F32' },
  );
  return { rank: m.config.lora.rank, targets: m.config.lora.targets };
}

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('fold a LoRA checkpoint into a full Hugging Face model folder')
    .requiredOption('--checkpoint <dir>', 'a checkpoint with LoRA adapters (from training with policy.lora)')
    .requiredOption('--out <dir>', 'the folder to write')
    .option('--adapter <name>', 'of a checkpoint with an adapter per role: the adapter to merge')
    .option('--dtype <dtype>', `stored dtype of the weights (${Object.keys(DTYPES).join(', ')})`, 'float32')
    .action(async (opts: { checkpoint: string; out: string; dtype: string; adapter?: string }) => {
      const dtype = DTYPES[opts.dtype];
      if (!dtype)
        throw new Error(`--dtype must be one of ${Object.keys(DTYPES).join(', ')}, got "${opts.dtype}"`);
      const r = await mergeCheckpoint({
        checkpoint: opts.checkpoint,
        out: opts.out,
        dtype,
        adapter: opts.adapter,
      });
      console.log(
        `wrote ${opts.out}: rank-${r.rank} adapters on ${r.targets?.join(', ')} merged, ${opts.dtype}`,
      );
    });
}
