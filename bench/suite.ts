/** What a benchmark suite is: a named function that measures and returns metrics by name. */
export interface BenchContext {
  /** Extra command-line words after the suite flags (a suite may read its own options from them). */
  args: string[];
  /** Print a progress line. */
  log: (line: string) => void;
}

export interface SuiteResult {
  /** Metric name -> value. Names are part of the public contract (issues fix them). */
  results: Record<string, number>;
  /** Markdown written under the suite's heading in docs/BENCHMARKS.md (a table, notes). */
  report?: string;
}

export interface Suite {
  name: string;
  description: string;
  /** Quick suites (minutes) run when `npm run bench` is given no --suite. */
  quick: boolean;
  run(ctx: BenchContext): Promise<SuiteResult>;
}

/** Markdown table of a result map, in insertion order. */
export function resultsTable(results: Record<string, number>): string {
  const rows = Object.entries(results).map(([k, v]) => `| \`${k}\` | ${formatNumber(v)} |`);
  return ['| metric | value |', '|---|---|', ...rows].join('\n');
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(3) : v.toPrecision(3);
}

/** The median (the mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
