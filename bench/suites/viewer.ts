/**
 * Suite `viewer`: how fast the replay viewer answers and draws, on stores written by real training
 * runs (the trainer on the household world, the viewer tests' settings: test/viewer/training-store.ts).
 *
 * - api_trajectory_ms: median time of GET .../trajectories/<id> for a 50-step trajectory with its
 *   tokens, log-probs, advantages and credit details (HTTP on 127.0.0.1, response parsed).
 * - page_load_ms: median first contentful paint of the run page of a store with 100 iterations,
 *   in headless Debian Chromium (fresh page each time). page_curves_ms: until every curve is drawn.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import { train } from '../../src/training/trainer.ts';
import { startViewer } from '../../src/viewer/server.ts';
import { hasChromium, launchChromium } from '../../test/viewer/chromium.ts';
import { HOUSEHOLD, HOUSEHOLD_SFT } from '../../test/viewer/training-store.ts';
import type { Suite } from '../suite.ts';
import { median } from '../suite.ts';

const API_REPEATS = 60;
const PAGE_REPEATS = 7;

const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

const quiet = { log: () => {} };
const RUN = 'household';

/**
 * SFT, then one GiGPO iteration of 50-step rollouts (the tiny policy hardly ever finishes a task,
 * so its rollouts run to the limit). Returns the SFT checkpoint for the 100-iteration run.
 */
async function apiTrajectory(dir: string, log: (l: string) => void) {
  const db = join(dir, 'long.db');
  const t0 = performance.now();
  const result = await train(
    {
      ...HOUSEHOLD,
      envOptions: { ...HOUSEHOLD.envOptions, maxSteps: 50 },
      loop: { ...HOUSEHOLD.loop, maxSteps: 50 },
      groupSize: 2,
      tasksPerIteration: 1,
      iterations: 1,
      eval: { every: 0, tasks: 1 },
      estimator: 'gigpo',
      sft: HOUSEHOLD_SFT,
      db,
      runId: RUN,
    },
    quiet,
  );
  log(`SFT and a run of 50-step rollouts in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const store = openStore(db, { readonly: true });
  const group = store.groups(RUN, 0)[0]!;
  const long = group.trajectories.find((t) => t.length === 50);
  store.close();
  if (!long)
    throw new Error(
      `bench viewer: no 50-step trajectory in the run (lengths ${group.trajectories.map((t) => t.length)}); expected the tiny policy's rollouts to hit the limit`,
    );
  const viewer = await startViewer({ db, port: 0 });
  const url = `${viewer.url}api/runs/${RUN}/iterations/0/groups/${encodeURIComponent(group.groupId)}/trajectories/${long.trajectoryId}`;
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
    return { median: median(times), p90: p90(times), tokens, sft: result.referenceCheckpoint };
  } finally {
    await viewer.close();
  }
}

/** A real run of 100 short iterations from the SFT checkpoint (one task, two rollouts of 3 steps each). */
async function pageLoad(dir: string, sft: string, log: (l: string) => void) {
  const db = join(dir, 'hundred.db');
  const t0 = performance.now();
  await train(
    {
      ...HOUSEHOLD,
      loop: { ...HOUSEHOLD.loop, maxSteps: 3, maxTokens: 24 },
      groupSize: 2,
      tasksPerIteration: 1,
      iterations: 100,
      eval: { every: 10, tasks: 1 },
      estimator: 'gigpo',
      policy: { checkpoint: sft },
      sft: { enabled: false },
      db,
      runId: RUN,
    },
    quiet,
  );
  log(`a run of 100 iterations trained in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const viewer = await startViewer({ db, port: 0 });
  const browser = await launchChromium(join(dir, 'profile'));
  try {
    const fcp: number[] = [];
    const curves: number[] = [];
    for (let i = 0; i < PAGE_REPEATS + 1; i++) {
      const page = await browser.newPage();
      await page.goto(`${viewer.url}#/run/${RUN}`);
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
        const page = await pageLoad(dir, api.sft, ctx.log);
        results.page_load_ms = page.fcp;
        results.page_curves_ms = page.curves;
      } else {
        pageNote =
          '\n\npage_load_ms not measured: no Chromium at /usr/bin/chromium (apt-get install -y chromium).';
      }
      const report = [
        `Targets: \`api_trajectory_ms\` < 50 (median of ${API_REPEATS} GETs of a 50-step household trajectory,`,
        `${api.tokens} response tokens, with prompts, log-probs and GiGPO's credit details; p90 beside it),`,
        `\`page_load_ms\` < 1000 (first contentful paint of the run page of a 100-iteration store in headless`,
        `Chromium, median of ${PAGE_REPEATS} fresh pages; \`page_curves_ms\`: until every curve is drawn).`,
        "Both stores are written by real training runs on the household world (the viewer tests' settings,",
        'test/viewer/training-store.ts): SFT, then one iteration of 50-step rollouts; from that SFT checkpoint,',
        '100 short GiGPO iterations (one task, two rollouts of three steps, an evaluation every 10).',
      ].join('\n');
      return { results, report: report + pageNote };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
