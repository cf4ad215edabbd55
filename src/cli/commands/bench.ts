/**
 * `stepwise bench`: alone, lists the benchmark suites; `--suite <name>` (or `quick`) runs them.
 * The suites live in the repository's bench/ folder, not in the package, so the harness is
 * loaded by a path tsc does not follow and an installed package says where to run them instead.
 */
import type { Command } from 'commander';

interface BenchFlags {
  suite?: string;
  json?: string;
  record?: boolean;
  only?: string;
  seeds?: string;
  scratch?: string;
  tasks?: string;
  iterations?: string;
  start?: string;
  formerStart?: string;
  sftSteps?: string;
  reportOnly?: boolean;
}

interface Harness {
  suiteList(): Promise<string>;
  runBench(opts: { suite: string; json?: string; record?: boolean; args: string[] }): Promise<unknown>;
}

const HARNESS = '../../../bench/run.ts';

async function harness(): Promise<Harness> {
  try {
    return (await import(HARNESS)) as Harness;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new Error(
      'the benchmark suites are not part of the installed package; run them from a clone of stepwise ' +
        '(`npm run bench`)',
    );
  }
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('list the benchmark suites; --suite <name> runs one, --suite quick every quick one')
    .option('--suite <name>', "a suite's name, or quick")
    .option('--json <file>', 'write the results as JSON to this file')
    .option('--record', "rewrite the suites' tables in docs/BENCHMARKS.md")
    .option('--only <parts>', 'learning suite: its parts, comma-separated')
    .option('--seeds <n>', 'learning suite: seeds per method')
    .option('--scratch <dir>', 'learning suite: folder for its stores and checkpoints')
    .option(
      '--report-only',
      'learning suite: rebuild the report from bench/results/learning.json, run nothing',
    )
    .option('--tasks <n>', 'trainer suite: tasks per RL iteration (default 8, the household default)')
    .option('--iterations <n>', 'trainer suite: RL iterations per path (default 2)')
    .option(
      '--start <dir>',
      "trainer suite: start RL from this trained checkpoint (the household default's format)",
    )
    .option(
      '--former-start <dir>',
      'trainer suite: start the former path from this checkpoint instead (e.g. a word-tokenizer SFT)',
    )
    .option(
      '--sft-steps <n>',
      "trainer suite: SFT steps of each path's own prompt format before RL (default 0)",
    )
    .action(async (flags: BenchFlags) => {
      const { suiteList, runBench } = await harness();
      // The suite's own options go to it as words, as a suite reads them.
      const args = (
        ['only', 'seeds', 'scratch', 'tasks', 'iterations', 'start', 'formerStart', 'sftSteps'] as const
      ).flatMap((k) =>
        flags[k] === undefined ? [] : [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, flags[k]!],
      );
      if (flags.reportOnly) args.push('--report-only');
      if (flags.suite === undefined) {
        if (args.length > 0 || flags.json || flags.record)
          throw new Error('bench: these options need --suite');
        console.log(await suiteList());
        return;
      }
      await runBench({ suite: flags.suite, json: flags.json, record: flags.record, args });
    });
}
