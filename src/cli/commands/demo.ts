/**
 * `stepwise demo`: the policy engine alone; a tiny policy learns to count from scratch (SFT, then RL
 * against a frozen reference).
 */
import type { Command } from 'commander';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('the policy engine alone: a tiny policy learns to count (SFT then RL, ~90 s)')
    .option('--seconds <n>', 'training time budget in seconds', '90')
    .option('--device <name>', "'cpu' or 'cuda' (falls back to CPU when CUDA is not installed)", 'cpu')
    .option('--seed <n>', 'seed of the data, the weights and the sampling', '0')
    .option('--save <dir>', 'save the trained policy to this checkpoint folder')
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
