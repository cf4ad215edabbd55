/**
 * `stepwise worker --db postgres://... [--concurrency N]`: a rollout worker of distributed runs
 * (src/distributed/worker.ts). Runs until SIGINT or SIGTERM, then finishes the jobs in flight.
 */
import type { Command } from 'commander';

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run rollout jobs of `stepwise train --queue` runs from a PostgreSQL store, until stopped')
    .requiredOption(
      '--db <url>',
      'the PostgreSQL store of the runs (postgres://user@host/db), as the learner was given',
    )
    .option('--concurrency <n>', 'jobs at once in this process', '1')
    .action(async (opts: { db: string; concurrency: string }) => {
      const { isPostgresUrl } = await import('../../store/postgres/store.ts');
      if (!isPostgresUrl(opts.db)) {
        throw new Error(
          `--db ${opts.db}: expected a postgres:// URL (workers share the learner's PostgreSQL store)`,
        );
      }
      const concurrency = Number(opts.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) {
        throw new Error(`--concurrency ${opts.concurrency}: expected a positive integer`);
      }
      const { runWorker } = await import('../../distributed/worker.ts');
      const stop = new AbortController();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());
      await runWorker({ db: opts.db, concurrency, signal: stop.signal });
    });
}
