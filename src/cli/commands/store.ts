import type { Command } from 'commander';

// Placeholder so that commands/index.ts can list every command; its owner replaces this file.
export function registerStore(program: Command): void {
  program
    .command('store')
    .description('(not available yet)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error("'stepwise store' is not available yet");
    });
}
