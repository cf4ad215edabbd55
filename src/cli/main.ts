#!/usr/bin/env node
/**
 * The `stepwise` command. Each subcommand lives in its own file under ./commands and is
 * registered here, so adding a command never touches another command's code. The package runs
 * this file compiled (dist/cli/main.js); a clone runs it from source through bin/stepwise.js.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.ts';

// Two folders up from both src/cli/main.ts and dist/cli/main.js.
const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command()
  .name('stepwise')
  .description('Train multi-turn, tool-using LLM agents with reinforcement learning, offline.')
  .version(version, '-V, --version', 'print the version of stepwise')
  .showHelpAfterError()
  .exitOverride();

for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  console.error(`stepwise: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
