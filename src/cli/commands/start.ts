import type { Command } from 'commander';

// `npm start`: the main job on the embedded default. Until the trainer exists (issue 7) this is
// the policy engine's demo: train the local policy on a small text task and sample from it.
export function registerStart(program: Command): void {
  program
    .command('start')
    .description('the main job on the embedded default (for now: the policy engine demo)')
    .allowUnknownOption(true)
    .action(async () => {
      throw new Error('the policy demo is not wired yet (owned by src/policy/demo.ts)');
    });
}
