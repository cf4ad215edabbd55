// Suite `viewer`: how fast the replay viewer answers and draws, on stores written by the viewer's
// fixture (real household env, tokenizer, untrained policy's log-probs, real estimators; it will
// be a short training run once the trainer lands).
//
// - api_trajectory_ms: median time of GET .../trajectories/<id> for a 50-step trajectory with its
//   tokens, log-probs, advantages and credit details (HTTP on 127.0.0.1, response parsed).
// - page_load_ms: median first contentful paint of the run page of a store with 100 iterations,
//   in headless Debian Chromium (fresh page each time). page_curves_ms: until every curve is drawn.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import { startViewer } from '../../src/viewer/server.ts';
import { hasChromium, launchChromium } from '../../test/viewer/chromium.ts';
import { buildFixtureStore, disposeFixtureModels, HOUSEHOLD_RUN } from '../../test/viewer/fixture-store.ts';
import type { Suite } from '../suite.ts';
import { median } from '../suite.ts';

const API_REPEATS = 60;
const PAGE_REPEATS = 7;

const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

async function apiTrajectory(dir: string, log: (l: string) => void) {
  const db = join(dir, 'long.db');
  // random household rollouts rarely finish, so most run to the 50-step limit
  await buildFixtureStore(db, { iterations: 1, groups: 1, groupSize: 4, maxSteps: 50, runs: ['household'] });
  const store = openStore(db, { readonly: true });
  const group = store.groups(HOUSEHOLD_RUN, 0)[0]!;
  const long = group.trajectories.find((t) => t.length === 50);
  store.close();
  if (!long)
    throw new Error(
      'bench viewer: no 50-step trajectory in the fixture; expected a random rollout to hit the limit',
    );
  const viewer = await startViewer({ db, port: 0 });
  const url = `${viewer.url}api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/${group.groupId}/trajectories/${long.trajectoryId}`;
  try {
    let tokens = 0;
    const times: number[] = [];
    for (let i = 0; i < API_REPEATS + 5; i++) {
      const t0 = performance.now();
      const body = (await (await fetch(url)).json()) as { steps: Array<{ tokens: unknown[] }> };
      const ms = performance.now() - t0;
      if (i >= 5) times.push(ms); // the first requests warm up the prepared statements and the JIT
      tokens = body.steps.reduce((n, s) => n + s.tokens.length, 0);
    }
    log(`api: 50 steps, ${tokens} response tokens, median ${median(times).toFixed(2)} ms`);
    return { median: median(times), p90: p90(times), tokens };
  } finally {
    await viewer.close();
  }
}

async function pageLoad(dir: string, log: (l: string) => void) {
  const db = join(dir, 'hundred.db');
  const t0 = performance.now();
  await buildFixtureStore(db, { iterations: 100, groups: 2, groupSize: 2, maxSteps: 6, runs: ['household'] });
  log(`store with 100 iterations written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const viewer = await startViewer({ db, port: 0 });
  const browser = await launchChromium(join(dir, 'profile'));
  try {
    const fcp: number[] = [];
    const curves: number[] = [];
    for (let i = 0; i < PAGE_REPEATS + 1; i++) {
      const page = await browser.newPage();
      await page.goto(`${viewer.url}#/run/${HOUSEHOLD_RUN}`);
      await page.waitForSelector('figure.chart[data-chart="tokens/s"] canvas');
      const t = await page.evaluate(() => ({
        fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? Number.NaN,
        now: performance.now(),
      }));
      if (i === PAGE_REPEATS) {
        mkdirSync('test-artifacts', { recursive: true });
        await page.screenshot({ path: 'test-artifacts/viewer-run-100-iterations.png', fullPage: true });
      }
      await page.close();
      if (i === 0) continue; // the first load also starts the browser's caches and workers
      fcp.push(t.fcp);
      curves.push(t.now);
    }
    return { fcp: median(fcp), curves: median(curves) };
  } finally {
    await browser.close();
    await viewer.close();
  }
}

export const suite: Suite = {
  name: 'viewer',
  description: 'replay viewer: trajectory API latency and run-page first paint in headless Chromium',
  quick: true,
  async run(ctx) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-viewer-'));
    try {
      const api = await apiTrajectory(dir, ctx.log);
      const results: Record<string, number> = {
        api_trajectory_ms: api.median,
        api_trajectory_p90_ms: api.p90,
      };
      let pageNote = '';
      if (hasChromium()) {
        const page = await pageLoad(dir, ctx.log);
        results.page_load_ms = page.fcp;
        results.page_curves_ms = page.curves;
      } else {
        pageNote =
          '\n\npage_load_ms not measured: no Chromium at /usr/bin/chromium (apt-get install -y chromium).';
      }
      const report = [
        `Targets: \`api_trajectory_ms\` < 50 (median of ${API_REPEATS} GETs of a 50-step household trajectory,`,
        `${api.tokens} response tokens, with prompts, log-probs, tool calls and three estimators' credit; p90 beside it),`,
        `\`page_load_ms\` < 1000 (first contentful paint of the run page of a 100-iteration store in headless`,
        `Chromium, median of ${PAGE_REPEATS} fresh pages; \`page_curves_ms\`: until every curve is drawn).`,
        'Stores from test/viewer/fixture-store.ts (real household env, tokenizer, untrained tiny policy, estimators).',
      ].join('\n');
      return { results, report: report + pageNote };
    } finally {
      await disposeFixtureModels();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
