/**
 * The viewer page: a hash router over the four views.
 */
/// <reference lib="dom" />
import { html } from 'htm/preact';
import { render } from 'preact';
import { useRoute } from './route.ts';
import { TrajectoryPage } from './trajectory.ts';
import { IterationPage, NotFoundView, RunPage, RunsPage } from './views.ts';

function App() {
  const route = useRoute();
  const p = route.parts;
  const isInt = (s: string | undefined) => s !== undefined && /^\d+$/.test(s);
  let view: unknown;
  if (p.length === 0) view = html`<${RunsPage} route=${route} />`;
  else if (p[0] === 'run' && p.length === 2)
    view = html`<${RunPage} key=${p[1]} route=${route} runId=${p[1]} />`;
  else if (p[0] === 'run' && p.length === 4 && p[2] === 'it' && isInt(p[3]))
    view = html`<${IterationPage} route=${route} runId=${p[1]} iteration=${Number(p[3])} />`;
  else if (p[0] === 'run' && p.length === 8 && p[2] === 'it' && isInt(p[3]) && p[4] === 'g' && p[6] === 't') {
    const ref = { runId: p[1]!, iteration: Number(p[3]), groupId: p[5]!, trajectoryId: p[7]! };
    view = html`<${TrajectoryPage} key=${p.join('/')} route=${route} loc=${ref} />`;
  } else view = html`<${NotFoundView} message=${`no page at #/${p.join('/')}`} />`;
  return html`<header><a href="#/" class="brand">stepwise viewer</a></header><main>${view}</main>`;
}

const root = document.getElementById('app')!;
root.textContent = '';
render(html`<${App} />`, root);
