/**
 * `stepwise store`: check, export, import, migrate and list the trajectory store.
 */
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import type { Command } from 'commander';
import { formatCheckReport } from '../../store/check.ts';
import { exportJsonl, importRows, parseJsonlFile } from '../../store/jsonl.ts';
import { redactUrl } from '../../store/postgres/store.ts';
import { openStore } from '../../store/store.ts';

export function registerStore(program: Command): void {
  const store = program
    .command('store')
    .description('inspect, check, export and import a trajectory store (SQLite file or postgres:// URL)');

  store
    .command('check')
    .description('integrity and consistency report; exits 1 when an error is found')
    .requiredOption('--db <file>', 'the store file or postgres:// URL')
    .option('--json', 'print the report as JSON')
    .action((opts: { db: string; json?: boolean }) => {
      const s = openStore(opts.db, { readonly: true });
      try {
        const report = s.check();
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatCheckReport(s.path, report));
        if (!report.ok) process.exitCode = 1;
      } finally {
        s.close();
      }
    });

  store
    .command('export')
    .description('write every step row as one JSON object per line')
    .requiredOption('--db <file>', 'the store file or postgres:// URL')
    .option('--format <format>', 'output format (jsonl)', 'jsonl')
    .option('--out <file>', 'write here instead of standard output')
    .option('--run <id>', 'only this run')
    .option('--iteration <n>', 'only this iteration (of every run, or of --run)')
    .action(async (opts: { db: string; format: string; out?: string; run?: string; iteration?: string }) => {
      if (opts.format !== 'jsonl')
        throw new Error(`--format ${opts.format} is not supported; expected jsonl`);
      const iteration = opts.iteration === undefined ? undefined : Number(opts.iteration);
      if (iteration !== undefined && !(Number.isInteger(iteration) && iteration >= 0)) {
        throw new Error(`--iteration ${opts.iteration}: expected a non-negative integer`);
      }
      const s = openStore(opts.db, { readonly: true });
      try {
        if (opts.run !== undefined && !s.run(opts.run)) throw new Error(`no run '${opts.run}' in ${s.path}`);
        const filter = { runId: opts.run, iteration };
        const n = opts.out
          ? await toFile(opts.out, (write) => exportJsonl(s, write, filter))
          : await exportJsonl(s, toStdout, filter);
        if (opts.out) console.error(`store export: ${n} step rows written to ${opts.out}`);
      } finally {
        s.close();
      }
    });

  store
    .command('import')
    .description('add step rows from a JSON-lines file (as `store export` writes them); all or nothing')
    .requiredOption('--db <file>', 'the store file or postgres:// URL (created if missing)')
    .requiredOption('--in <file>', 'the JSON-lines file')
    .option('--run <id>', "put every row in this run (default: each row's runId, else 'imported')")
    .option(
      '--estimator <name>',
      'rows are `stepwise credit` output: store their advantages under this estimator',
    )
    .action(async (opts: { db: string; in: string; run?: string; estimator?: string }) => {
      if (!existsSync(opts.in)) throw new Error(`no file at ${opts.in} (--in): expected a JSON-lines file`);
      // Parse everything before opening the store, so a malformed file leaves no trace.
      const rows = await parseJsonlFile(opts.in);
      const s = openStore(opts.db);
      try {
        const r = importRows(s, rows, { runId: opts.run, estimator: opts.estimator });
        console.log(
          `store import: ${r.steps} step rows, ${r.iterations} iterations into run(s) ${r.runs.join(', ')}`,
        );
      } finally {
        s.close();
      }
    });

  store
    .command('migrate')
    .description('upgrade a store file to the schema of this stepwise')
    .requiredOption('--db <file>', 'the store file or postgres:// URL')
    .action((opts: { db: string }) => {
      openStore(opts.db).close();
      console.log(`store ${redactUrl(opts.db)}: schema up to date`);
    });

  store
    .command('runs')
    .description('list the runs of a store with their iterations')
    .requiredOption('--db <file>', 'the store file or postgres:// URL')
    .action((opts: { db: string }) => {
      const s = openStore(opts.db, { readonly: true });
      try {
        for (const r of s.runs()) {
          console.log(`${r.runId}\t${r.status}\titerations ${r.iterations}\tlast ${r.lastIteration ?? '-'}`);
        }
      } finally {
        s.close();
      }
    });
}

/** Standard output with back-pressure, so a large export piped to a slow reader stays in bounded memory. */
function toStdout(chunk: string): Promise<void> | undefined {
  if (process.stdout.write(chunk)) return undefined;
  return new Promise((resolve) => process.stdout.once('drain', () => resolve()));
}

async function toFile<T>(file: string, body: (write: (chunk: string) => void) => Promise<T>): Promise<T> {
  const fd = openSync(file, 'w');
  try {
    return await body((chunk) => {
      writeSync(fd, chunk);
    });
  } finally {
    closeSync(fd);
  }
}
