/**
 * What a finished run shows: the before/after table per task type, the `--summary` JSON and a
 * learning-curve SVG. The SVG is written by hand (a few polylines): no plotting library runs in
 * Node without a browser or native canvas, and the curve needs nothing more.
 */
import type { TrajectoryStore } from '../store/index.ts';
import type { EvalResult } from './context.ts';
import { type Interval, pairedBootstrap, wilson } from './stats.ts';
import type { TrainResult } from './trainer.ts';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The final table: success before and after, on valid-seen and valid-unseen, overall (with task
 * count and Wilson 95% interval) and per task type; below it, after minus before on valid-unseen,
 * paired task by task, with its bootstrap interval.
 */
export function resultTable(result: TrainResult): string {
  const types = new Set<string>();
  for (const side of [result.before, result.after]) {
    for (const e of Object.values(side)) for (const t of Object.keys(e.byType)) types.add(t);
  }
  const rows: string[][] = [['task type', 'seen before', 'seen after', 'unseen before', 'unseen after']];
  const cell = (e: EvalResult, type?: string) => {
    if (type === undefined) {
      const ci = ci95(e);
      return ci ? `${pct(e.success)} ${interval(ci)} n=${e.tasks}` : pct(e.success);
    }
    const v = e.byType[type];
    return v === undefined ? '-' : pct(v.success);
  };
  for (const type of [undefined, ...[...types].sort()]) {
    rows.push([
      type ?? 'all',
      cell(result.before['valid-seen'], type),
      cell(result.after['valid-seen'], type),
      cell(result.before['valid-unseen'], type),
      cell(result.after['valid-unseen'], type),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const table = rows
    .map((r, i) => {
      const line = r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ');
      return i === 0 ? `${line}\n${'-'.repeat(line.length)}` : line;
    })
    .join('\n');
  const d = difference(result.before['valid-unseen'], result.after['valid-unseen']);
  if (!d) return table;
  const points = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
  return (
    `${table}\nvalid-unseen after - before: ${points(d.value)} points, 95% interval ` +
    `[${points(d.ci95[0])}, ${points(d.ci95[1])}] (paired bootstrap, ${d.tasks} tasks)`
  );
}

const interval = ([low, high]: Interval) => `[${(100 * low).toFixed(1)},${(100 * high).toFixed(1)}]`;

/** A rate's Wilson 95% interval, when the evaluation's task count is known. */
function ci95(e: EvalResult): Interval | null {
  return e.tasks > 0 ? wilson(Math.round(e.success * e.tasks), e.tasks) : null;
}

function side(sides: TrainResult['before']) {
  const unseen = sides['valid-unseen'];
  const seen = sides['valid-seen'];
  return {
    success: unseen.success,
    tasks: unseen.tasks,
    ci95: ci95(unseen),
    invalidRate: unseen.invalidRate,
    byType: Object.fromEntries(Object.entries(unseen.byType).map(([k, v]) => [k, v.success])),
    validSeen: {
      success: seen.success,
      tasks: seen.tasks,
      ci95: ci95(seen),
      invalidRate: seen.invalidRate,
      byType: Object.fromEntries(Object.entries(seen.byType).map(([k, v]) => [k, v.success])),
    },
  };
}

/**
 * After minus before on valid-unseen, paired task by task (both evaluate seeds 0..n-1), with the
 * paired bootstrap 95% interval; null when either side was read back from the store (rates only).
 */
function difference(before: EvalResult, after: EvalResult) {
  if (!before.outcomes || !after.outcomes || before.outcomes.length !== after.outcomes.length) return null;
  const d = pairedBootstrap(before.outcomes, after.outcomes);
  return { value: d.value, ci95: d.ci95, tasks: d.tasks };
}

/** The `--summary` JSON: success as a fraction on valid-unseen, per task type and valid-seen beside it. */
export function summaryJson(result: TrainResult, extra: Record<string, unknown> = {}) {
  return {
    before: side(result.before),
    after: side(result.after),
    difference: difference(result.before['valid-unseen'], result.after['valid-unseen']),
    db: result.db,
    runId: result.runId,
    iterationsRun: result.iterationsRun,
    checkpoint: result.finalCheckpoint,
    reference: result.referenceCheckpoint,
    ...extra,
  };
}

/** One line of a chart; `band` draws a shaded range around it (e.g. mean +- std over seeds). */
export interface ChartSeries {
  name: string;
  points: { x: number; y: number; low?: number; high?: number }[];
  color?: string;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#7f7f7f', '#8c564b'];

/**
 * A line chart as SVG, y in [0, 1] shown as percent: the learning curves of a run and of the
 * learning benchmark. Points with `low`/`high` get a shaded band.
 */
export function lineChartSvg(options: { title: string; xLabel: string; series: ChartSeries[] }): string {
  const W = 640;
  const H = 360;
  const pad = { left: 50, right: 20, top: 30, bottom: 40 };
  const xs = options.series.flatMap((s) => s.points.map((p) => p.x));
  const [x0, x1] = [Math.min(0, ...xs), Math.max(1, ...xs)];
  const x = (v: number) => pad.left + ((v - x0) / (x1 - x0)) * (W - pad.left - pad.right);
  const y = (v: number) => pad.top + (1 - Math.min(1, Math.max(0, v))) * (H - pad.top - pad.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(options.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle">${escapeXml(options.title)}</text>`,
  ];
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(
      `<line x1="${pad.left}" x2="${W - pad.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${pad.left - 6}" y="${y(v) + 4}" text-anchor="end">${v * 100}%</text>`,
    );
  }
  parts.push(
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${escapeXml(options.xLabel)} (${x0}..${x1})</text>`,
  );
  options.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const band = s.points.filter((p) => p.low !== undefined && p.high !== undefined);
    if (band.length > 1) {
      const upper = band.map((p) => `${x(p.x).toFixed(1)},${y(p.high!).toFixed(1)}`);
      const lower = band.map((p) => `${x(p.x).toFixed(1)},${y(p.low!).toFixed(1)}`).reverse();
      parts.push(`<polygon fill="${color}" fill-opacity="0.15" points="${[...upper, ...lower].join(' ')}"/>`);
    }
    if (s.points.length > 0) {
      const pts = s.points.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`);
      for (const p of s.points) {
        parts.push(`<circle cx="${x(p.x).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="2.5" fill="${color}"/>`);
      }
    }
    const ly = pad.top + 14 * i;
    parts.push(
      `<rect x="${W - pad.right - 190}" y="${ly - 9}" width="10" height="10" fill="${color}"/>`,
      `<text x="${W - pad.right - 175}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** A run's learning curve: rollout success per iteration, the periodic evaluations, the invalid rate. */
export function learningCurveSvg(store: TrajectoryStore, runId: string, evalSplit: string): string {
  const line = (name: string, metric: string, color: string): ChartSeries => ({
    name,
    color,
    points: store.metricSeries(runId, metric).map((p) => ({ x: p.iteration, y: p.value })),
  });
  return lineChartSvg({
    title: `${runId}: learning curve`,
    xLabel: 'iteration',
    series: [
      line('rollout success (train)', 'success_rate', '#1f77b4'),
      line(`eval success (${evalSplit})`, `eval/${evalSplit}/success`, '#d62728'),
      line('invalid rate', 'invalid_rate', '#7f7f7f'),
    ],
  });
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
