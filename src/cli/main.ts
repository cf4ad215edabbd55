/**
 * The `stepwise` command. Each subcommand lives in its own file under ./commands and is
 * registered here, so adding a command never touches another command's code.
 */
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.ts';

const program = new Command()
  .name('stepwise')
  .description('Train multi-turn, tool-using LLM agents with reinforcement learning, offline.')
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
