/**
 * A trajectory's replay: one step at a time (j/k next/previous, g/G first/last), the response's
 * tokens coloured by advantage, and each estimator's credit at that step, drawn from the API's
 * schema-driven credit views (fields, levels, peers) without knowing any estimator.
 */
/// <reference lib="dom" />
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import type { CreditView, FieldView, trajectoryDetail } from '../api.ts';
import { api, fmt, useJson } from './data.ts';
import { href, type Route, setQuery } from './route.ts';
import { Problem } from './views.ts';

type Data = ReturnType<typeof trajectoryDetail>;
type Step = Data['steps'][number];

interface Ref {
  runId: string;
  iteration: number;
  groupId: string;
  trajectoryId: string;
}

/** Red for negative, blue for positive advantage; the strength saturates at |A| = 2. */
export function advantageColour(a: number): string {
  const s = Math.min(1, Math.abs(a) / 2);
  const alpha = (0.12 + 0.6 * s).toFixed(2);
  return a >= 0 ? `rgba(37, 99, 235, ${alpha})` : `rgba(220, 38, 38, ${alpha})`;
}

export function TrajectoryPage({ route, loc: r }: { route: Route; loc: Ref }) {
  const { data, error } = useJson<Data>(
    api('runs', r.runId, 'iterations', r.iteration, 'groups', r.groupId, 'trajectories', r.trajectoryId),
  );
  const count = data?.steps.length ?? 0;
  const at = Math.min(Math.max(0, Number(route.query.get('step') ?? 0) || 0), Math.max(0, count - 1));
  const estimators = data ? [...new Set(data.steps.flatMap((s) => s.credit.map((c) => c.estimator)))] : [];
  const estimator = route.query.get('estimator') || estimators[0] || '';

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || (e.target as HTMLElement).closest('input, select, textarea'))
        return;
      const go = { j: at + 1, k: at - 1, g: 0, G: count - 1 }[e.key];
      if (go === undefined || count === 0) return;
      e.preventDefault();
      setQuery({ step: Math.min(Math.max(0, go), count - 1) });
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [at, count]);

  if (error && !data) return Problem({ error });
  if (!data) return html`<p class="loading">Loading trajectory…</p>`;
  const step = data.steps[at]!;
  const t = data.trajectory;
  return html`<section class="replay">
    <nav class="crumbs"><a href="#/">runs</a> / <a href=${href(['run', r.runId])}>${r.runId}</a> /${' '}
      <a href=${href(['run', r.runId, 'it', r.iteration])}>iteration ${r.iteration}</a> / group ${r.groupId} / ${r.trajectoryId}</nav>
    <h1>Trajectory ${r.trajectoryId} <span class=${`outcome ${t.won ? 'won' : 'lost'}`}>${t.outcome}</span></h1>
    <p class="meta">${data.group.taskId} · ${data.group.taskType ?? ''} · ${data.group.split} · seed ${data.group.seed} · ${t.length} steps · return ${fmt(t.episodeReturn)}</p>
    <p class="others">Same group: ${data.group.trajectories.map(
      (
        o,
      ) => html`<a class=${`chip ${o.won ? 'won' : 'lost'} ${o.trajectoryId === r.trajectoryId ? 'current' : ''}`}
        href=${href(['run', r.runId, 'it', r.iteration, 'g', r.groupId, 't', o.trajectoryId], { step: at, estimator })}>${o.trajectoryId}</a>`,
    )}</p>
    <div class="stepper">
      <button onClick=${() => setQuery({ step: 0 })} title="first (g)">first</button>
      <button onClick=${() => setQuery({ step: Math.max(0, at - 1) })} title="previous (k)">◀</button>
      <span class="position" data-step=${at}>step ${at + 1} of ${count}</span>
      <button onClick=${() => setQuery({ step: Math.min(count - 1, at + 1) })} title="next (j)">▶</button>
      <button onClick=${() => setQuery({ step: count - 1 })} title="last (G)">last</button>
      <span class="keys">keys: j / k next / previous, g / G first / last</span>
      ${
        estimators.length > 0 &&
        html`<label class="filter">colour tokens by
        <select name="estimator" onChange=${(e: Event) => setQuery({ estimator: (e.target as HTMLSelectElement).value })}>
          ${estimators.map((e) => html`<option value=${e} selected=${e === estimator}>${e}</option>`)}
        </select></label>`
      }
    </div>
    <ol class="timeline">${data.steps.map(
      (s) => html`<li class=${`${s.stepIndex === at ? 'current' : ''} ${s.valid ? '' : 'invalid'}`}>
        <a href=${href(['run', r.runId, 'it', r.iteration, 'g', r.groupId, 't', r.trajectoryId], { step: s.stepIndex, estimator })}
          title=${`reward ${s.envReward}`}>${s.stepIndex}</a></li>`,
    )}</ol>
    <${StepView} step=${step} estimator=${estimator} loc=${r} />
  </section>`;
}

function StepView({ step, estimator, loc: r }: { step: Step; estimator: string; loc: Ref }) {
  const credit = step.credit.find((c) => c.estimator === estimator);
  const observation = step.extras.observation;
  return html`<div class="step" data-step-index=${step.stepIndex}>
    <div class="facts">
      <span>role <b>${step.role}</b></span>
      <span>reward <b>${fmt(step.envReward)}</b></span>
      <span class=${step.valid ? 'valid' : 'invalid'}>${step.valid ? 'valid' : 'invalid response'}</span>
      ${step.done ? html`<span>done</span>` : ''}
      ${credit ? html`<span>advantage (${estimator}) <b>${fmt(credit.value)}</b></span>` : ''}
    </div>
    <h3>Observation (anchor)</h3>
    <pre class="anchor">${typeof step.anchor === 'string' ? step.anchor : JSON.stringify(step.anchor, null, 2)}</pre>
    <details class="prompt"><summary>Prompt (${step.promptTokens} tokens)</summary><pre>${step.promptText}</pre></details>
    <h3>Response</h3>
    <${Tokens} step=${step} advantage=${credit?.value} />
    ${
      step.toolCalls.length > 0 &&
      html`<h3>Tool calls</h3><table class="tools"><thead><tr><th>tool</th><th>arguments</th><th>ok</th><th>duration</th><th>output</th></tr></thead>
      <tbody>${step.toolCalls.map(
        (
          c,
        ) => html`<tr><td>${c.tool}</td><td><code>${c.arguments}</code></td><td>${c.ok ? 'ok' : (c.errorKind ?? 'failed')}</td>
          <td>${fmt(c.durationMs, 1)} ms</td><td>${c.outputChars} chars${c.truncated ? ' (truncated)' : ''}</td></tr>`,
      )}</tbody></table>`
    }
    ${typeof observation === 'string' && html`<h3>Result</h3><pre class="result">${observation}</pre>`}
    <h3>Credit</h3>
    ${step.credit.length === 0 ? html`<p class="empty">No advantages stored for this step.</p>` : ''}
    <div class="credit">${step.credit.map((c) => html`<${CreditPanel} credit=${c} loc=${r} />`)}</div>
  </div>`;
}

/** The response token by token, each coloured by the step's advantage; hover shows log-prob and advantage. */
function Tokens({ step, advantage }: { step: Step; advantage: number | undefined }) {
  if (step.tokens.length === 0 || step.tokens.every((t) => t.text === null)) {
    // No token texts (no tokenizer known): the text itself, and the ids below it.
    return html`<div class="response"><pre>${step.responseText}</pre>
      ${
        step.tokens.length > 0 &&
        html`<div class="tokens">${step.tokens.map(
          (
            t,
          ) => html`<span class="token" style=${advantage === undefined ? '' : `background:${advantageColour(advantage)}`}
          title=${`id ${t.id} · log-prob ${fmt(t.logprob)} · advantage ${fmt(advantage)}`}>#${t.id}</span>`,
        )}</div>`
      }</div>`;
  }
  return html`<div class="response tokens">${step.tokens.map(
    (t) => html`<span class="token" data-advantage=${advantage ?? ''} data-logprob=${t.logprob}
      style=${advantage === undefined ? '' : `background:${advantageColour(advantage)}`}
      title=${`${JSON.stringify(t.text)} · id ${t.id} · log-prob ${fmt(t.logprob)} · advantage ${fmt(advantage)}`}>${t.text}</span>`,
  )}</div>`;
}

/** Why a level's item counts or not: it needs a group of two or more members and a non-zero value. */
function levelNote(l: { size: number; kept: boolean }): string {
  if (l.kept) return 'used';
  if (l.size === 0) return 'none: too few steps so far';
  if (l.size === 1) return 'dropped: one member';
  return 'dropped: a_k = 0';
}

const link = (r: Ref, trajectoryId: string, step: number, estimator: string) =>
  href(['run', r.runId, 'it', r.iteration, 'g', r.groupId, 't', trajectoryId], { step, estimator });

/** A symbol such as "A_E" or "v_t+1": what follows '_' is a subscript. */
function MathSymbol({ symbol }: { symbol: string | undefined }) {
  if (!symbol) return '';
  const [base, sub] = symbol.split('_');
  return sub === undefined ? html`${base}` : html`${base}<sub>${sub}</sub>`;
}

const label = (f: { label: string; symbol?: string }) =>
  html`${f.label}${f.label && f.symbol ? ' ' : ''}<${MathSymbol} symbol=${f.symbol} />`;

const value = (f: FieldView) => (typeof f.value === 'string' ? f.value : fmt(f.value, f.digits));

function CreditPanel({ credit: c, loc: r }: { credit: CreditView; loc: Ref }) {
  const peers = c.peers;
  return html`<section class="panel" data-estimator=${c.estimator}>
    <h4>${c.estimator} <span class="value" style=${`background:${advantageColour(c.value)}`}>A = ${fmt(c.value)}</span></h4>
    <dl>${c.fields.map((f) => html`<dt>${label(f)}</dt><dd>${value(f)}</dd>`)}</dl>
    ${
      c.levels &&
      html`<table class="levels"><thead><tr><th>level k</th><th>group size</th><th>weight</th><th>a<sub>k</sub></th><th></th></tr></thead>
      <tbody>${c.levels.map(
        (
          l,
        ) => html`<tr class=${l.kept ? '' : 'dropped'}><td>${l.name}</td><td>${l.size}</td><td>${fmt(l.weight)}</td>
          <td>${fmt(l.advantage)}</td><td>${levelNote(l)}</td></tr>`,
      )}</tbody></table>`
    }
    ${
      peers &&
      html`<div class="members">${peers.title}${
        peers.mean ? html` (${label(peers.mean)} over ${peers.members.length}: ${fmt(peers.meanValue)})` : ''
      }:
      ${
        peers.members.length > 0
          ? html`<ul>${peers.members.map(
              (m) =>
                html`<li><a href=${link(r, m.trajectoryId, m.stepIndex, c.estimator)}>${m.trajectoryId} ${peers.unit} ${m.stepIndex}</a>${': '}${peers.fields.map(
                  (f, i) => html`${i > 0 ? ', ' : ''}${label(f)} ${fmt(m.values[f.key])}`,
                )}, A ${fmt(m.advantage)}</li>`,
            )}</ul>`
          : html` ${peers.none ?? 'none'}`
      }</div>`
    }
  </section>`;
}
