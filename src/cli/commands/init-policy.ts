/**
 * `stepwise init-policy --preset tiny --out <dir>`: a fresh, untrained checkpoint whose tokenizer
 * was trained on text from the envs (task statements, observations, expert actions, instructions
 * and the agents' prompt tags), so the vocabulary fits the domain and prompts stay short.
 * `--from <Hugging Face folder>` instead starts from a pretrained model: the folder is imported
 * (checked: config, weights, tokenizer, chat template) and written as the policy's checkpoint.
 */
import type { Command } from 'commander';
import { type PresetName, presets } from '../../policy/model/config.ts';
import { Policy } from '../../policy/policy.ts';
import { domainTokenizer } from '../../training/sft.ts';

export interface InitPolicyOptions {
  preset: PresetName;
  out: string;
  /** A Hugging Face model folder to start from (preset, seed and tasks are then unused). */
  from?: string;
  seed?: number;
  /** Tasks per env in the tokenizer's training text. */
  tasks?: number;
  /** Superword merges after the word merges (`TokenizerTrainOptions.superwords`; the household default's `policy.superwords`). */
  superwords?: number;
}

/** Train the tokenizer, initialize the model and save both; returns the policy (dispose it). */
export async function initPolicy(options: InitPolicyOptions): Promise<Policy> {
  if (options.from !== undefined) {
    const policy = await Policy.load(options.from);
    if (!policy.hf) {
      await policy.dispose();
      throw new Error(
        `--from '${options.from}' is not a Hugging Face folder (config.json with model_type llama, qwen2 or qwen3)`,
      );
    }
    await policy.save(options.out);
    return policy;
  }
  if (!(options.preset in presets)) {
    throw new Error(
      `unknown preset "${options.preset}" (expected one of: ${Object.keys(presets).join(', ')})`,
    );
  }
  const tokenizer = await domainTokenizer({
    vocabSize: presets[options.preset].vocabSize,
    tokenizerTasks: options.tasks,
    superwords: options.superwords,
  });
  const policy = Policy.create({ model: options.preset, tokenizer, seed: options.seed ?? 0 });
  await policy.save(options.out);
  return policy;
}

export function registerInitPolicy(program: Command): void {
  program
    .command('init-policy')
    .description("write a fresh (untrained) checkpoint with a tokenizer trained on the envs' text")
    .option('--preset <name>', `model size (${Object.keys(presets).join(', ')})`, 'tiny')
    .requiredOption('--out <dir>', 'the checkpoint folder to write')
    .option('--seed <n>', 'seed of the initial weights', '0')
    .option('--superwords <n>', 'superword merges across the words of a line, after the word merges', '0')
    .option(
      '--from <dir>',
      'start from a Hugging Face model folder (llama, qwen2, qwen3) instead of a preset',
    )
    .action(
      async (opts: { preset: string; out: string; seed: string; superwords: string; from?: string }) => {
        const seed = Number(opts.seed);
        if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got "${opts.seed}"`);
        const superwords = Number(opts.superwords);
        if (!Number.isInteger(superwords) || superwords < 0)
          throw new Error(`--superwords must be a whole number (0: none), got "${opts.superwords}"`);
        const policy = await initPolicy({
          preset: opts.preset as PresetName,
          out: opts.out,
          seed,
          superwords,
          from: opts.from,
        });
        const what = opts.from
          ? `${policy.hf?.rawConfig.model_type} model from ${opts.from}`
          : `preset ${opts.preset}`;
        console.log(
          `wrote ${opts.out}: ${what}, vocabulary ${policy.tokenizer.vocabSize}` +
            (!opts.from && superwords > 0 ? ` (${superwords} superword merges at most)` : '') +
            ', ' +
            `context ${policy.config.contextLength}`,
        );
        await policy.dispose();
      },
    );
}
