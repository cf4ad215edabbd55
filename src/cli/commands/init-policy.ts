/**
 * `stepwise init-policy --preset tiny --out <dir>`: a fresh, untrained checkpoint whose tokenizer
 * was trained on text from the envs (task statements, observations, expert actions, instructions
 * and the agents' prompt tags), so the vocabulary fits the domain and prompts stay short.
 */
import type { Command } from 'commander';
import { type PresetName, presets } from '../../policy/model/config.ts';
import { Policy } from '../../policy/policy.ts';
import { Tokenizer } from '../../policy/tokenizer/tokenizer.ts';
import { domainCorpus } from '../../training/corpus.ts';

export interface InitPolicyOptions {
  preset: PresetName;
  out: string;
  seed?: number;
  /** Tasks per env in the tokenizer's training text. */
  tasks?: number;
}

/** Train the tokenizer, initialize the model and save both; returns the policy (dispose it). */
export async function initPolicy(options: InitPolicyOptions): Promise<Policy> {
  if (!(options.preset in presets)) {
    throw new Error(
      `unknown preset "${options.preset}" (expected one of: ${Object.keys(presets).join(', ')})`,
    );
  }
  const corpus = await domainCorpus(options.tasks);
  const tokenizer = Tokenizer.train(corpus, { vocabSize: presets[options.preset].vocabSize });
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
    .action(async (opts: { preset: string; out: string; seed: string }) => {
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got "${opts.seed}"`);
      const policy = await initPolicy({ preset: opts.preset as PresetName, out: opts.out, seed });
      console.log(
        `wrote ${opts.out}: preset ${opts.preset}, vocabulary ${policy.tokenizer.vocabSize}, ` +
          `context ${policy.config.contextLength}`,
      );
      await policy.dispose();
    });
}
