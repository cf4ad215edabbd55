import type { Command } from 'commander';

// Placeholder so that commands/index.ts can list every command; its owner replaces this file.
export function registerCredit(program: Command): void {
  program
    .command('credit')
    .description('(not available yet)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error("'stepwise credit' is not available yet");
    });
}
