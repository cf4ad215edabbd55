/** `stepwise bench`: runs the benchmark harness (bench/run.ts) with the CLI's options. */
import type { Command } from 'commander';
import { runBench } from '../../../bench/run.ts';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('run benchmark suites; with no --suite, every quick suite, and rewrite docs/BENCHMARKS.md')
    .option('--suite <name>', 'one suite to run')
    .option('--json <file>', 'write the results as JSON to this file')
    .option('--record', "rewrite this suite's table in docs/BENCHMARKS.md")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(async (opts: { suite?: string; json?: string; record?: boolean }, cmd: Command) => {
      await runBench({ ...opts, args: cmd.args });
    });
}
