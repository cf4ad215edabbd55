/**
 * The runs list, a run (curves, evaluations, iterations, trajectory search) and an iteration (its groups).
 */
/// <reference lib="dom" />
import { html } from 'htm/preact';
import type { iterationDetail, listRuns, runDetail, searchTrajectories } from '../api.ts';
import { Chart } from './chart.ts';
import { api, fmt, useJson } from './data.ts';
import { href, type Route, setQuery } from './route.ts';

type Runs = ReturnType<typeof listRuns>;
type RunData = ReturnType<typeof runDetail>;
type IterationData = ReturnType<typeof iterationDetail>;
type Search = ReturnType<typeof searchTrajectories>;

/** How often a run's page asks for new iterations while the run is going. */
const POLL_MS = 2000;

export function Problem({ error }: { error: Error & { status?: number } }) {
  if (error.status === 404) return NotFoundView({ message: error.message });
  return html`<div class="problem" role="alert"><h2>Cannot show this page</h2><p>${error.message}</p></div>`;
}

export function NotFoundView({ message }: { message: string }) {
  return html`<div class="not-found" role="alert">
    <h2>Not found</h2>
    <p>${message}</p>
    <p><a href="#/">Back to the runs</a></p>
  </div>`;
}

function Select(props: { label: string; name: string; value: string; options: string[]; all?: string }) {
  return html`<label class="filter">${props.label}
    <select name=${props.name} value=${props.value} onChange=${(e: Event) =>
      setQuery({ [props.name]: (e.target as HTMLSelectElement).value })}>
      <option value="">${props.all ?? 'all'}</option>
      ${props.options.map((o) => html`<option value=${o} selected=${o === props.value}>${o}</option>`)}
    </select></label>`;
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);

export function RunsPage({ route }: { route: Route }) {
  const estimator = route.query.get('estimator') ?? '';
  const { data, error } = useJson<Runs>(
    `/api/runs${estimator ? `?estimator=${encodeURIComponent(estimator)}` : ''}`,
    POLL_MS,
  );
  if (error && !data) return Problem({ error });
  if (!data) return html`<p class="loading">Loading runs…</p>`;
  return html`<section>
    <h1>Runs</h1>
    <div class="filters">${Select({ label: 'estimator', name: 'estimator', value: estimator, options: data.estimators })}</div>
    ${
      data.runs.length === 0
        ? html`<p class="empty">No runs${estimator ? ` with estimator ${estimator}` : ''} in this store yet.</p>`
        : html`<table class="runs">
      <thead><tr><th>run</th><th>estimator</th><th>env</th><th>status</th><th>iterations</th><th>best success</th><th>config</th></tr></thead>
      <tbody>${data.runs.map(
        (r) => html`<tr>
          <td><a href=${href(['run', r.runId])}>${r.runId}</a></td>
          <td>${r.estimator ?? '–'}</td><td>${r.env ?? '–'}</td>
          <td><span class=${`status ${r.status}`}>${r.status}</span></td>
          <td>${r.iterations}</td><td>${pct(r.bestSuccess)}</td>
          <td class="config">${configSummary(r.config)}</td>
        </tr>`,
      )}</tbody></table>`
    }
  </section>`;
}

/** Where a run lives rather than what it is (the trainer stores its paths in the config). */
const PLACES = new Set(['db', 'runId', 'checkpointDir', 'reference']);

function configSummary(config: unknown): string {
  if (!config || typeof config !== 'object') return '';
  return Object.entries(config as Record<string, unknown>)
    .filter(([k, v]) => typeof v !== 'object' && !PLACES.has(k))
    .map(([k, v]) => `${k}=${v}`)
    .join(' · ');
}

/** The curves the issue lists, in order; metrics not named here get charts of their own after them. */
const CURVES: Array<[string, (name: string) => boolean]> = [
  ['success', (n) => n === 'success_rate' || n.startsWith('success_rate/')],
  ['return', (n) => n === 'mean_return'],
  ['invalid rate', (n) => n === 'invalid_rate'],
  ['KL', (n) => n === 'kl'],
  ['entropy', (n) => n === 'entropy'],
  // the trainer writes rollout_tokens_per_s and update_tokens_per_s
  ['tokens/s', (n) => n.endsWith('tokens_per_s')],
];

/** Evaluations (before/, eval/, after/) are tables, not curves. */
const isEvaluation = (name: string) => /^(before|eval|after)\//.test(name);

function curveGroups(metrics: RunData['metrics']): Array<[string, RunData['metrics']]> {
  const used = new Set<string>();
  const out: Array<[string, RunData['metrics']]> = [];
  for (const [title, match] of CURVES) {
    const names = Object.keys(metrics).filter(match);
    if (names.length === 0) continue;
    for (const n of names) used.add(n);
    out.push([title, Object.fromEntries(names.map((n) => [n, metrics[n]!]))]);
  }
  for (const [name, points] of Object.entries(metrics)) {
    if (!used.has(name) && !isEvaluation(name)) out.push([name, { [name]: points }]);
  }
  return out;
}

export function RunPage({ route, runId }: { route: Route; runId: string }) {
  const { data, error } = useJson<RunData>(api('runs', runId), POLL_MS);
  if (error && !data) return Problem({ error });
  if (!data) return html`<p class="loading">Loading run ${runId}…</p>`;
  const { run, metrics, evaluations, iterations } = data;
  const splits = [...new Set(evaluations.map((e) => e.split))];
  // a rate's stored Wilson interval (<metric>_low, <metric>_high) goes into the rate's cell
  const evalMetrics = [...new Set(evaluations.map((e) => e.metric))].filter((m) => !/_(low|high)$/.test(m));
  const evalValue = (row: { phase: string; iteration: number }, split: string, metric: string) =>
    evaluations.find(
      (e) =>
        e.phase === row.phase && e.iteration === row.iteration && e.split === split && e.metric === metric,
    )?.value;
  const evalCell = (row: { phase: string; iteration: number }, split: string, metric: string) => {
    const [low, high] = [evalValue(row, split, `${metric}_low`), evalValue(row, split, `${metric}_high`)];
    const value = fmt(evalValue(row, split, metric));
    return low === undefined || high === undefined ? value : `${value} [${fmt(low)}, ${fmt(high)}]`;
  };
  // one row per evaluation (the API gives them in order: before, every k iterations, after)
  const evalRows = [...new Map(evaluations.map((e) => [`${e.phase} ${e.iteration}`, e])).values()];
  const columns = splits.flatMap((s) =>
    evalMetrics
      .filter((m) => evaluations.some((e) => e.split === s && e.metric === m))
      .map((m) => [s, m] as const),
  );
  return html`<section>
    <nav class="crumbs"><a href="#/">runs</a> / ${runId}</nav>
    <h1>${runId} <span class=${`status ${run.status}`}>${run.status}</span></h1>
    <p class="meta">estimator ${run.estimator ?? '–'} · ${run.iterations} iterations · ${configSummary(run.config)}
      ${run.status === 'running' ? html` · <span class="live">live</span>` : ''}</p>
    <h2>Learning curves</h2>
    <div class="charts">${curveGroups(metrics).map(([title, series]) => html`<${Chart} key=${title} title=${title} series=${series} />`)}</div>
    ${
      evaluations.length > 0 &&
      html`<h2>Evaluations</h2>
      <div class="scroll"><table class="evaluations"><thead><tr><th>when</th>${columns.map(([s, m]) => html`<th>${s} ${m}</th>`)}</tr></thead>
      <tbody>${evalRows.map(
        (row) =>
          html`<tr data-phase=${row.phase}><td>${evaluationLabel(row.phase, row.iteration)}</td>${columns.map(
            ([s, m]) => html`<td>${evalCell(row, s, m)}</td>`,
          )}</tr>`,
      )}</tbody></table></div>`
    }
    <h2>Iterations</h2>
    <div class="scroll"><table class="iterations"><thead><tr><th>iteration</th><th>groups</th><th>trajectories</th><th>steps</th><th>success</th><th>mean return</th><th>mean length</th></tr></thead>
    <tbody>${iterations.map(
      (
        i,
      ) => html`<tr><td><a href=${href(['run', runId, 'it', i.iteration])}>${i.iteration}</a></td><td>${i.groups}</td><td>${i.trajectories}</td><td>${i.steps}</td>
        <td>${pct(i.successRate)}</td><td>${fmt(i.meanReturn)}</td><td>${fmt(i.meanLength, 1)}</td></tr>`,
    )}</tbody></table></div>
    <${TrajectorySearch} route=${route} runId=${runId} iterations=${iterations.map((i) => i.iteration)} />
  </section>`;
}

function evaluationLabel(phase: string, iteration: number): string {
  if (phase === 'before') return 'before training';
  if (phase === 'after') return `after training (iteration ${iteration})`;
  return `iteration ${iteration}`;
}

/** Trajectories of the run by iteration, task type, split and success; the filters live in the URL. */
function TrajectorySearch({
  route,
  runId,
  iterations,
}: {
  route: Route;
  runId: string;
  iterations: number[];
}) {
  const q = route.query;
  const params = new URLSearchParams();
  for (const k of ['iteration', 'taskType', 'split', 'success']) if (q.get(k)) params.set(k, q.get(k)!);
  const { data, error } = useJson<Search>(`${api('runs', runId, 'trajectories')}?${params}`);
  const kinds = data?.taskTypes ?? [];
  const splits = data?.splits ?? [];
  return html`<h2>Trajectories</h2>
    <div class="filters">
      ${Select({ label: 'iteration', name: 'iteration', value: q.get('iteration') ?? '', options: iterations.map(String) })}
      ${Select({ label: 'task type', name: 'taskType', value: q.get('taskType') ?? '', options: kinds })}
      ${Select({ label: 'split', name: 'split', value: q.get('split') ?? '', options: splits })}
      ${Select({ label: 'outcome', name: 'success', value: q.get('success') ?? '', options: ['won', 'lost'], all: 'any' })}
    </div>
    ${
      error
        ? Problem({ error })
        : !data
          ? html`<p class="loading">Searching…</p>`
          : html`<div class="scroll"><table class="search">
      <thead><tr><th>iteration</th><th>group</th><th>task type</th><th>split</th><th>trajectory</th><th>outcome</th><th>length</th><th>return</th></tr></thead>
      <tbody>${data.trajectories.map(
        (
          r,
        ) => html`<tr class=${r.won ? 'won' : 'lost'}><td>${r.iteration}</td><td>${r.groupId}</td><td>${r.taskType}</td><td>${r.split}</td>
          <td><a href=${href(['run', runId, 'it', r.iteration, 'g', r.groupId, 't', r.trajectoryId])}>${r.trajectoryId}</a></td>
          <td>${r.outcome}</td><td>${r.length}</td><td>${fmt(r.episodeReturn)}</td></tr>`,
      )}</tbody></table></div>`
    }`;
}

export function IterationPage({
  route,
  runId,
  iteration,
}: {
  route: Route;
  runId: string;
  iteration: number;
}) {
  const q = route.query;
  const params = new URLSearchParams();
  for (const k of ['taskType', 'split', 'success']) if (q.get(k)) params.set(k, q.get(k)!);
  const { data, error } = useJson<IterationData>(`${api('runs', runId, 'iterations', iteration)}?${params}`);
  if (error && !data) return Problem({ error });
  if (!data) return html`<p class="loading">Loading iteration ${iteration}…</p>`;
  const info = data.iteration;
  return html`<section>
    <nav class="crumbs"><a href="#/">runs</a> / <a href=${href(['run', runId])}>${runId}</a> / iteration ${iteration}</nav>
    <h1>Iteration ${iteration}</h1>
    <p class="meta">${info.groups} groups · ${info.trajectories} trajectories · ${info.steps} steps · success ${pct(info.successRate)}</p>
    <div class="filters">
      ${Select({ label: 'task type', name: 'taskType', value: q.get('taskType') ?? '', options: data.taskTypes })}
      ${Select({ label: 'split', name: 'split', value: q.get('split') ?? '', options: data.splits })}
      ${Select({ label: 'outcome', name: 'success', value: q.get('success') ?? '', options: ['won', 'lost'], all: 'any' })}
    </div>
    ${data.groups.length === 0 ? html`<p class="empty">No group matches these filters.</p>` : ''}
    ${data.groups.map(
      (g) => html`<article class="group" data-group=${g.groupId}>
        <h3>group ${g.groupId} <small>${g.taskId} · ${g.taskType ?? ''} · ${g.split} · seed ${g.seed}</small></h3>
        <div class="rollouts">${g.trajectories.map(
          (
            t,
          ) => html`<a class=${`rollout ${t.won ? 'won' : 'lost'}`} href=${href(['run', runId, 'it', iteration, 'g', g.groupId, 't', t.trajectoryId])}>
            <strong>${t.trajectoryId}</strong>
            <span class="outcome">${t.outcome}</span>
            <span>length ${t.length}</span>
            <span>return ${fmt(t.episodeReturn)}</span>
          </a>`,
        )}</div>
      </article>`,
    )}
  </section>`;
}
