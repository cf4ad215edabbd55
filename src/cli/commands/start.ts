import type { Command } from 'commander';

// `npm start`: the main job on the embedded default. Until the trainer exists (issue 7) this is
// the policy engine's demo: train the local policy on a small text task and sample from it.
// Unknown options are accepted and ignored, so later flags can pass through this command.
export function registerStart(program: Command): void {
  program
    .command('start')
    .description('the main job on the embedded default (for now: the policy engine demo)')
    .option('--seconds <n>', 'training time budget in seconds', '90')
    .option('--device <name>', "'cpu' or 'cuda' (falls back to CPU when CUDA is not installed)", 'cpu')
    .option('--seed <n>', 'seed of the data, the weights and the sampling', '0')
    .option('--save <dir>', 'save the trained policy to this checkpoint folder')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(async (opts: { seconds: string; device: string; seed: string; save?: string }) => {
      const { runDemo } = await import('../../policy/demo.ts');
      const seconds = Number(opts.seconds);
      const seed = Number(opts.seed);
      if (!Number.isFinite(seconds) || seconds <= 0) {
        throw new Error(`--seconds must be a positive number, got '${opts.seconds}'`);
      }
      if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got '${opts.seed}'`);
      await runDemo({ seconds, device: opts.device, seed, save: opts.save });
    });
}
