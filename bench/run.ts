/**
 * The bench harness: lists and runs suites, writes their JSON, and keeps docs/BENCHMARKS.md's
 * tables current (with --record).
 */
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resultsTable, type Suite } from './suite.ts';
import { suites } from './suites/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const docPath = path.join(root, 'docs', 'BENCHMARKS.md');

export interface BenchOptions {
  /** A suite's name, or `quick` for every quick suite. */
  suite: string;
  json?: string;
  /** The suite's own options as command-line words (see `SUITE_OPTIONS`). */
  args?: string[];
  /** Rewrite the tables of the suites that ran in docs/BENCHMARKS.md. */
  record?: boolean;
}

/** `--suite quick`: every suite marked quick, one after the other. */
export const QUICK = 'quick';

/** Options only one suite reads (from `BenchContext.args`); any other suite refuses them. */
export const SUITE_OPTIONS: Record<string, readonly string[]> = {
  learning: ['--only', '--seeds', '--scratch', '--report-only'],
  trainer: ['--tasks', '--iterations', '--start', '--former-start', '--sft-steps'],
};

/** The suites with their descriptions and the commands that run them (`stepwise bench` alone). */
export async function suiteList(): Promise<string> {
  const lines = ['bench suites (run one with --suite <name>, every quick one with --suite quick):'];
  for (const [name, load] of Object.entries(suites)) {
    const suite = await load();
    const options = SUITE_OPTIONS[name] ? `; options ${SUITE_OPTIONS[name].join(', ')}` : '';
    lines.push(`  ${name.padEnd(10)} ${suite.quick ? 'quick' : 'long '}  ${suite.description}${options}`);
  }
  lines.push("--record rewrites the suites' tables in docs/BENCHMARKS.md; --json <file> writes the results.");
  return lines.join('\n');
}

export interface BenchFile {
  suite: string;
  results: Record<string, number>;
  env: Record<string, string | number>;
}

/** The machine and software a figure was measured on; saved beside every result. */
export function benchEnv(): Record<string, string | number> {
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {}
  return {
    node: process.version,
    platform: `${os.platform()}-${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    commit,
    date: new Date().toISOString(),
  };
}

export async function runBench(opts: BenchOptions): Promise<BenchFile[]> {
  const all = opts.suite === QUICK;
  if (!all && !(opts.suite in suites)) {
    throw new Error(
      `unknown bench suite '${opts.suite}'; expected ${QUICK} or one of: ${Object.keys(suites).join(', ')}`,
    );
  }
  const names = all ? Object.keys(suites) : [opts.suite];
  const given = (opts.args ?? []).filter((word) => word.startsWith('--'));
  for (const flag of given) {
    const takers = Object.keys(SUITE_OPTIONS).filter((n) => SUITE_OPTIONS[n]!.includes(flag));
    if (takers.length === 0) throw new Error(`unknown bench option ${flag}`);
    if (all || !takers.includes(opts.suite)) {
      throw new Error(
        `bench option ${flag} belongs to the ${takers.join(', ')} suite; use it with --suite ${takers[0]}`,
      );
    }
  }
  const files: BenchFile[] = [];
  const reports: Array<{ suite: Suite; body: string }> = [];
  for (const n of names) {
    const suite = await suites[n]!();
    if (all && !suite.quick) {
      console.log(`bench: skipping '${n}' (long; run it with --suite ${n})`);
      continue;
    }
    console.log(`bench: suite '${n}': ${suite.description}`);
    const out = await suite.run({ args: opts.args ?? [], log: (l) => console.log(`  ${l}`) });
    const file: BenchFile = { suite: n, results: out.results, env: benchEnv() };
    files.push(file);
    console.log(resultsTable(out.results));
    reports.push({ suite, body: `${resultsTable(out.results)}\n\n${out.report ?? ''}`.trim() });
  }
  if (opts.json) {
    writeFileSync(opts.json, `${JSON.stringify(files.length === 1 ? files[0] : files, null, 2)}\n`);
    console.log(`bench: wrote ${opts.json}`);
  }
  // Only when asked: a run to try something never replaces the recorded figures.
  if (opts.record) {
    for (const r of reports) recordSuite(r.suite, r.body, files.find((f) => f.suite === r.suite.name)!);
  }
  return files;
}

/** Replace (or append) the suite's section of docs/BENCHMARKS.md between its markers. */
function recordSuite(suite: Suite, body: string, file: BenchFile): void {
  const start = `<!-- bench:${suite.name}:start -->`;
  const end = `<!-- bench:${suite.name}:end -->`;
  const env = file.env;
  const section = [
    start,
    `Measured ${String(env.date).slice(0, 10)} at commit \`${env.commit}\` on ${env.cores} × ${env.cpu}, Node ${env.node}, with \`npm run bench -- --suite ${suite.name}\`.`,
    '',
    body,
    end,
  ].join('\n');
  let doc = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '# Benchmarks\n';
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + section + doc.slice(j + end.length);
  else doc = `${doc.trimEnd()}\n\n## Suite \`${suite.name}\`\n\n${section}\n`;
  writeFileSync(docPath, doc);
  console.log(`bench: updated docs/BENCHMARKS.md (${suite.name})`);
}
