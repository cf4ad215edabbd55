/**
 * The learning benchmark: does each credit-assignment method make the agent better, and in the
 * papers' order? Parts (household: GRPO/GiGPO/HGPO; search: GRPO/IGPO; agentflow: SFT vs
 * Flow-GRPO) live in bench/learning/; each trains one SFT checkpoint and every method from it at
 * an equal environment-step budget, for each seed.
 *
 *   npm run bench -- --suite learning [--only household|search|agentflow[,...]] [--seeds 3] [--scratch dir]
 *   npm run bench -- --suite learning --report-only --record   # rebuild the docs from the results file
 *
 * `--scratch <dir>` keeps the parts' stores and checkpoints there (default: a new temporary
 * folder); given the folder of a killed run, each part resumes its runs where they stopped.
 *
 * Results of every part ever run are merged into bench/results/learning.json (a part run alone
 * replaces only its own entry), and the report (tables, targets, curves) is rebuilt from that file,
 * so docs/BENCHMARKS.md always shows all parts with the command and commit each came from.
 */
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lineChartSvg } from '../../src/training/report.ts';
import type { LearningPart, LearningPartName, LearningPartResult } from '../learning/types.ts';
import type { Suite } from '../suite.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const resultsPath = join(root, 'bench', 'results', 'learning.json');

const PART_NAMES: readonly LearningPartName[] = ['household', 'search', 'agentflow'];

/** A part's module, bench/learning/<name>.ts, loaded only when that part runs. */
async function loadPart(name: LearningPartName): Promise<LearningPart> {
  const mod = (await import(`../learning/${name}.ts`)) as { part?: LearningPart };
  if (!mod.part) throw new Error(`learning: bench/learning/${name}.ts exports no \`part\``);
  return mod.part;
}

/** The issue's targets, checked on the means over seeds. */
const TARGETS: { text: string; parts: LearningPartName[]; met: (m: Record<string, number>) => boolean }[] = [
  {
    text: 'GiGPO >= GRPO + 5 points (household, valid-unseen)',
    parts: ['household'],
    met: (m) => m.household_gigpo_unseen! >= m.household_grpo_unseen! + 0.05,
  },
  {
    text: 'HGPO >= GiGPO (household, valid-unseen)',
    parts: ['household'],
    met: (m) => m.household_hgpo_unseen! >= m.household_gigpo_unseen!,
  },
  {
    text: 'best household valid-unseen success >= 85%',
    parts: ['household'],
    met: (m) => m.household_best_unseen! >= 0.85,
  },
  {
    text: 'household SFT held-out action accuracy >= 90%',
    parts: ['household'],
    met: (m) => m.household_sft_action_acc! >= 0.9,
  },
  {
    text: 'IGPO >= GRPO + 3 F1 points (search)',
    parts: ['search'],
    met: (m) => m.search_igpo_f1! >= m.search_grpo_f1! + 0.03,
  },
  {
    text: 'Flow-GRPO >= SFT + 10 points (AgentFlow)',
    parts: ['agentflow'],
    met: (m) => m.agentflow_flowgrpo_acc! >= m.agentflow_sft_acc! + 0.1,
  },
];

interface StoredPart extends LearningPartResult {
  command: string;
  commit: string;
  date: string;
  seeds: number[];
}

interface LearningFile {
  /** Means over seeds of every metric of every part run so far. */
  metrics: Record<string, number>;
  parts: Partial<Record<LearningPartName, StoredPart>>;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const std = (xs: readonly number[]) => {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
};
const pct = (x: number) => (100 * x).toFixed(1);

/** `--only a,b` and `--seeds n` from the suite's extra words. */
export function learningArgs(args: readonly string[]): {
  only: LearningPartName[];
  seeds: number;
  scratch?: string;
} {
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const names = PART_NAMES;
  // A run recorded without --record (or in another checkout) reaches the docs without rerunning.
  if (args.includes('--report-only')) return { only: [], seeds: 0 };
  const only = (value('--only')?.split(',') ?? names).map((n) => {
    if (!names.includes(n as LearningPartName)) {
      throw new Error(`learning: --only '${n}' is not a part; expected one of: ${names.join(', ')}`);
    }
    return n as LearningPartName;
  });
  const seeds = Number(value('--seeds') ?? 3);
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`learning: --seeds must be a positive integer`);
  return { only, seeds, scratch: value('--scratch') };
}

function readResults(): LearningFile {
  if (!existsSync(resultsPath)) return { metrics: {}, parts: {} };
  return JSON.parse(readFileSync(resultsPath, 'utf8')) as LearningFile;
}

function commit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

/** Mean curve over seeds per (method, metric), with a +-std band, as an SVG beside the docs. */
function curvesSvg(name: LearningPartName, part: StoredPart): string {
  const byLine = new Map<string, Map<number, number[]>>();
  for (const c of part.curves) {
    const key = `${c.method}: ${c.metric}`;
    const line = byLine.get(key) ?? new Map<number, number[]>();
    // Seeds evaluate at slightly different step counts: bucket by the evaluation's rank.
    for (const [rank, p] of c.points.entries()) {
      line.set(rank, [...(line.get(rank) ?? []), p.envSteps, p.value]);
    }
    byLine.set(key, line);
  }
  const series = [...byLine].map(([key, line]) => ({
    name: key,
    points: [...line.values()].map((flat) => {
      const steps = flat.filter((_, i) => i % 2 === 0);
      const values = flat.filter((_, i) => i % 2 === 1);
      const m = mean(values);
      const s = std(values);
      return { x: Math.round(mean(steps)), y: m, low: m - s, high: m + s };
    }),
  }));
  return lineChartSvg({
    title: `learning benchmark, ${name}: mean over ${part.seeds.length} seeds (band: +-1 std)`,
    xLabel: 'environment steps',
    series,
  });
}

function report(file: LearningFile): string {
  const lines: string[] = [];
  for (const name of PART_NAMES) {
    const part = file.parts[name];
    if (!part) {
      lines.push(`### ${name}\n\nNot run yet (\`npm run bench -- --suite learning --only ${name}\`).\n`);
      continue;
    }
    lines.push(`### ${name}\n`);
    lines.push(
      `\`${part.command}\` at commit \`${part.commit}\` (${part.date.slice(0, 10)}), seeds ${part.seeds.join(', ')}, ${(part.cpuSeconds / 60).toFixed(1)} CPU-minutes in the recording process (runs resumed from \`--scratch\` count only what was redone).\n`,
    );
    const columns = [...new Set(part.table.flatMap((r) => Object.keys(r.columns)))];
    lines.push(`| method | ${columns.join(' | ')} |`, `|---|${columns.map(() => '---|').join('')}`);
    for (const row of part.table) {
      const cells = columns.map((c) => {
        const xs = row.columns[c];
        return xs ? `${pct(mean(xs))} ± ${pct(std(xs))}` : '-';
      });
      lines.push(`| ${row.method} | ${cells.join(' | ')} |`);
    }
    lines.push('', '(percent, mean ± standard deviation over seeds)', '');
    for (const t of TARGETS.filter((t) => t.parts.includes(name))) {
      lines.push(`- ${t.met(file.metrics) ? 'met' : '**missed**'}: ${t.text}`);
    }
    lines.push('', `![${name} learning curves](learning-${name}.svg)`, '', part.notes.trim(), '');
  }
  return lines.join('\n');
}

export const suite: Suite = {
  name: 'learning',
  description:
    'SFT checkpoint, then each credit-assignment method at an equal env-step budget, 3 seeds (long: tens of CPU-minutes per part)',
  quick: false,
  async run(ctx) {
    const { only, seeds, scratch } = learningArgs(ctx.args);
    const file = readResults();
    for (const name of only) {
      const part = await loadPart(name);
      const dir = scratch ? join(scratch, name) : mkdtempSync(join(tmpdir(), `stepwise-learning-${name}-`));
      mkdirSync(dir, { recursive: true });
      ctx.log(`part ${name}: ${seeds} seeds, scratch ${dir}`);
      const result = await part.run({ seeds: Array.from({ length: seeds }, (_, i) => i), dir, log: ctx.log });
      file.parts[name] = {
        ...result,
        command: `npm run bench -- --suite learning --only ${name}${seeds === 3 ? '' : ` --seeds ${seeds}`}`,
        commit: commit(),
        date: new Date().toISOString(),
        seeds: Array.from({ length: seeds }, (_, i) => i),
      };
      for (const [metric, values] of Object.entries(result.metrics)) file.metrics[metric] = mean(values);
      mkdirSync(dirname(resultsPath), { recursive: true });
      writeFileSync(resultsPath, `${JSON.stringify(file, null, 2)}\n`);
      writeFileSync(join(root, 'docs', `learning-${name}.svg`), curvesSvg(name, file.parts[name]!));
      ctx.log(`part ${name}: written to bench/results/learning.json and docs/learning-${name}.svg`);
    }
    return { results: file.metrics, report: report(file) };
  },
};
