import type { Command } from 'commander';

// Placeholder so that commands/index.ts can list every command; its owner replaces this file.
export function registerTool(program: Command): void {
  program
    .command('tool')
    .description('(not available yet)')
    .allowUnknownOption(true)
    .action(() => {
      throw new Error("'stepwise tool' is not available yet");
    });
}
