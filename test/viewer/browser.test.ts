// biome-ignore-all lint/performance/useDomNodeTextContent: Playwright's Locator.innerText() reads the visible text, which is what these tests check
// The viewer's pages in headless Chromium (Debian's, driven by playwright-core) over a store written
// by short real training runs (training-store.ts): what a person would see. Expected texts and
// counts come from the store. Screenshots go to test-artifacts/ (gitignored).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenDecoder } from '../../src/cli/commands/view.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { openStore, type StepDetail, type TrajectoryStore } from '../../src/store/index.ts';
import { train } from '../../src/training/trainer.ts';
import { startViewer, type Viewer } from '../../src/viewer/server.ts';
import { inCI } from '../ci.ts';
import { CHROMIUM, hasChromium, launchChromium } from './chromium.ts';
import { copyStore, RUNS, resumeConfig, sharedTrainingStore } from './training-store.ts';

const chromiumFound = hasChromium();
if (!chromiumFound && !inCI) {
  console.warn(
    `viewer browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium; CI does)`,
  );
}

const ARTIFACTS = 'test-artifacts';

/** The page's number format (src/viewer/page/data.ts). */
const fmt = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(digits);

// CI installs Chromium: there a missing browser is a failure, not a skipped file.
it.runIf(inCI)('Chromium is installed (CI=true)', () => {
  expect(chromiumFound, `no Chromium at ${CHROMIUM}; CI must install it (apt-get install -y chromium)`).toBe(
    true,
  );
});

describe.skipIf(!chromiumFound)('viewer pages in Chromium', () => {
  let dir: string;
  let db: string;
  let viewer: Viewer;
  let store: TrajectoryStore;
  let browser: BrowserContext;
  let page: Page;
  const errors: string[] = [];

  const open = async (hash: string) => {
    await page.goto(`${viewer.url}${hash}`);
  };
  const shot = (name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `viewer-${name}.png`), fullPage: true });
  const trajectoryHash = (runId: string, iteration: number, groupId: string, trajectoryId: string) =>
    `#/run/${runId}/it/${iteration}/g/${encodeURIComponent(groupId)}/t/${trajectoryId}`;
  const config = (runId: string) => store.run(runId)!.config as Record<string, unknown>;

  /** The first stored step of `runId` that `match` accepts, with its trajectory. */
  const findStep = (runId: string, match: (s: StepDetail) => boolean) => {
    for (const { iteration } of store.iterations(runId)) {
      for (const g of store.groups(runId, iteration)) {
        for (const t of g.trajectories) {
          const steps = store.trajectory({
            runId,
            iteration,
            groupId: g.groupId,
            trajectoryId: t.trajectoryId,
          });
          const step = steps.find(match);
          if (step)
            return { iteration, groupId: g.groupId, trajectoryId: t.trajectoryId, won: t.won, steps, step };
        }
      }
    }
    throw new Error(`the training store has no step of run '${runId}' such as the test needs`);
  };
  const details = (s: StepDetail) => s.advantages[0]!.details as Record<string, unknown>;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const shared = await sharedTrainingStore();
    dir = mkdtempSync(join(tmpdir(), 'viewer-browser-'));
    // a copy: the live-update test resumes a run into it
    db = copyStore(shared, dir);
    store = openStore(db, { readonly: true });
    viewer = await startViewer({ db, port: 0, decodeToken: tokenDecoder(undefined, db)(store) });
    browser = await launchChromium(join(dir, 'chromium-profile'));
    page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await viewer?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
    expect(errors, 'errors thrown in the page').toEqual([]);
  });

  it('lists the runs with estimator, env, status and best success, and filters by estimator', async () => {
    await open('#/');
    const rows = page.locator('table.runs tbody tr');
    const runs = store.runs();
    await expect.poll(() => rows.count()).toBe(runs.length);
    for (const [i, r] of runs.entries()) {
      const c = config(r.runId);
      const best = Math.max(...store.metricSeries(r.runId, 'success_rate').map((p) => p.value));
      // the config's settings, not the paths the trainer keeps in it
      const summary = await rows.nth(i).locator('td.config').innerText();
      expect(summary).toContain(`groupSize=${c.groupSize} · tasksPerIteration=${c.tasksPerIteration}`);
      expect(summary).not.toMatch(/\b(db|checkpointDir|reference)=/);
      expect(await rows.nth(i).innerText()).toMatch(
        new RegExp(
          `^${r.runId}\\s+${c.estimator}\\s+${c.env}\\s+${r.status}\\s+${r.iterations}\\s+${(best * 100).toFixed(1)}%`,
        ),
      );
    }
    await shot('runs');
    await page.selectOption('select[name="estimator"]', 'hgpo');
    await expect.poll(() => page.url()).toContain('estimator=hgpo');
    await expect
      .poll(() => rows.allInnerTexts())
      .toEqual([expect.stringMatching(new RegExp(`^${RUNS.hgpo}\\s`))]);
  });

  it('draws the learning curves and adds an iteration while a resumed run writes it', async () => {
    await open(`#/run/${RUNS.gigpo}`);
    const iterations = store.iterations(RUNS.gigpo).length;
    const charts = page.locator('figure.chart');
    await expect.poll(() => charts.count()).toBeGreaterThanOrEqual(6);
    for (const title of ['success', 'return', 'invalid rate', 'KL', 'entropy', 'tokens/s']) {
      const chart = page.locator(`figure.chart[data-chart="${title}"]`);
      expect(await chart.count(), title).toBe(1);
      expect(Number(await chart.getAttribute('data-points')), title).toBeGreaterThanOrEqual(iterations);
      // the canvas has drawn pixels (uPlot draws the series on it)
      const inked = await chart.locator('canvas').evaluate((c: HTMLCanvasElement) => {
        const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
        return n;
      });
      expect(inked, title).toBeGreaterThan(200);
    }
    // rollout and update speeds share the tokens/s chart; per-task-type success joins success
    expect(await page.locator('figure.chart[data-chart="tokens/s"]').innerText()).toMatch(
      /rollout_tokens_per_s[\s\S]*update_tokens_per_s/,
    );
    const types = store.metricNames(RUNS.gigpo).filter((n) => n.startsWith('success_rate/'));
    expect(types.length).toBeGreaterThan(0);
    for (const name of types) {
      expect(await page.locator('figure.chart[data-chart="success"]').innerText()).toContain(name);
    }
    // evaluations are tables, not one-point curves
    expect(
      await page.locator('figure.chart[data-chart^="before/"], figure.chart[data-chart^="after/"]').count(),
    ).toBe(0);
    const rows = page.locator('table.iterations tbody tr');
    expect(await rows.count()).toBe(iterations);
    await shot('run');

    // the trainer resumes the run for one more iteration: the open page shows it without a reload
    await train(resumeConfig(db, RUNS.gigpo, 1, join(dir, 'resumed')), { resume: true, log: () => {} });
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(iterations + 1);
    await expect
      .poll(async () =>
        Number(await page.locator('figure.chart[data-chart="KL"]').getAttribute('data-points')),
      )
      .toBe(iterations + 1);
  });

  it('shows the evaluations before, during and after training', async () => {
    await open(`#/run/${RUNS.igpo}`);
    const rows = page.locator('table.evaluations tbody tr');
    const its = store.iterations(RUNS.igpo);
    // one row per evaluation: before, after every iteration (eval.every 1), after each train() call
    const labels = store
      .metricNames(RUNS.igpo)
      .flatMap((name) => {
        const phase = /^(before|eval|after)\//.exec(name)?.[1];
        return phase ? store.metricSeries(RUNS.igpo, name).map((p) => `${phase} ${p.iteration}`) : [];
      })
      .filter((x, i, all) => all.indexOf(x) === i);
    expect(labels.filter((l) => l.startsWith('eval ')).length).toBe(its.length);
    await expect.poll(() => rows.count()).toBe(labels.length);
    expect((await rows.first().innerText()).trim()).toMatch(/^before training/);
    expect((await rows.last().innerText()).trim()).toMatch(
      new RegExp(`^after training \\(iteration ${its.at(-1)!.iteration}\\)`),
    );
    const head = await page.locator('table.evaluations thead').innerText();
    for (const column of [
      'valid-seen success',
      'valid-unseen success',
      'valid-unseen f1',
      'valid-unseen exact_match',
    ])
      expect(head).toContain(column);
    // a cell: the valid-unseen success after training, as stored
    const headers = await page.locator('table.evaluations thead th').allInnerTexts();
    const col = headers.indexOf('valid-unseen success');
    const last = (name: string) => store.metricSeries(RUNS.igpo, `after/valid-unseen/${name}`).at(-1)!.value;
    // with its Wilson 95% interval, stored beside it
    expect(await rows.last().locator('td').nth(col).innerText()).toBe(
      `${fmt(last('success'))} [${fmt(last('success_low'))}, ${fmt(last('success_high'))}]`,
    );
    expect(headers).not.toContain('valid-unseen success_low');
    await shot('evaluations');
  });

  it("searches a run's trajectories by iteration, task type and outcome, from the URL", async () => {
    await open(`#/run/${RUNS.grpo}?iteration=0&success=won`);
    const rows = page.locator('table.search tbody tr');
    const won = store.groups(RUNS.grpo, 0).flatMap((g) => g.trajectories.filter((t) => t.won));
    expect(won.length).toBeGreaterThan(0);
    await expect.poll(() => rows.count()).toBe(won.length);
    expect(await page.locator('table.search tbody tr.lost').count()).toBe(0);

    await open(`#/run/${RUNS.gigpo}?iteration=0`);
    const groups = store.groups(RUNS.gigpo, 0);
    await expect.poll(() => rows.count()).toBe(groups.reduce((n, g) => n + g.trajectories.length, 0));
    const kind = groups[0]!.taskType!;
    await page.selectOption('select[name="taskType"]', kind);
    await expect.poll(() => page.url()).toContain(`taskType=${kind}`);
    const expected = groups.filter((g) => g.taskType === kind).reduce((n, g) => n + g.trajectories.length, 0);
    await expect
      .poll(() => page.locator('table.search tbody tr td:nth-child(3)').allInnerTexts())
      .toEqual(Array(expected).fill(kind));
    expect(await page.locator('table.search tbody tr td:nth-child(1)').allInnerTexts()).toEqual(
      Array(expected).fill('0'),
    );
  });

  it("shows an iteration's groups with their rollouts side by side, and filters them", async () => {
    await open(`#/run/${RUNS.gigpo}/it/0`);
    const groups = store.groups(RUNS.gigpo, 0);
    await expect.poll(() => page.locator('article.group').count()).toBe(groups.length);
    for (const [i, g] of groups.entries()) {
      const article = page.locator('article.group').nth(i);
      expect(await article.getAttribute('data-group')).toBe(g.groupId);
      expect(await article.locator('a.rollout').count()).toBe(g.trajectories.length);
      expect(await article.locator('h3').innerText()).toContain(`${g.taskId} · ${g.taskType} · ${g.split}`);
    }
    await shot('iteration');

    // the door run's groups hold won and lost rollouts
    await open(`#/run/${RUNS.grpo}/it/0`);
    const all = store.groups(RUNS.grpo, 0).flatMap((g) => g.trajectories);
    await expect.poll(() => page.locator('a.rollout').count()).toBe(all.length);
    expect(await page.locator('a.rollout.won').count()).toBe(all.filter((t) => t.won).length);
    expect(await page.locator('a.rollout.lost').count()).toBe(all.filter((t) => !t.won).length);
    await page.selectOption('select[name="success"]', 'won');
    await expect.poll(() => page.url()).toContain('success=won');
    // Wait for the filtered list itself: while it reloads it is empty, which has no lost rollout either.
    const shown = async () => ({
      lost: await page.locator('a.rollout.lost').count(),
      won: await page.locator('a.rollout.won').count(),
    });
    await expect.poll(shown).toEqual({ lost: 0, won: all.filter((t) => t.won).length });
    await shot('iteration-won');
  });

  it('replays a trajectory step by step with the keyboard, tokens coloured by advantage, GiGPO credit', async () => {
    const g = store.groups(RUNS.gigpo, 0)[0]!;
    const t = g.trajectories[1]!;
    const steps = store.trajectory({
      runId: RUNS.gigpo,
      iteration: 0,
      groupId: g.groupId,
      trajectoryId: t.trajectoryId,
    });
    expect(steps.length).toBeGreaterThan(2);
    await open(trajectoryHash(RUNS.gigpo, 0, g.groupId, t.trajectoryId));
    const position = page.locator('.position');
    const anchorAt = async () => (await page.locator('pre.anchor').innerText()).trim();
    const at = async (i: number) => {
      await expect.poll(() => position.innerText()).toBe(`step ${i + 1} of ${steps.length}`);
      expect(await anchorAt()).toBe((steps[i]!.anchor as string).trim());
    };
    await at(0);
    expect(await page.locator('nav.crumbs').innerText()).toBe(
      `runs / ${RUNS.gigpo} / iteration 0 / group ${g.groupId} / ${t.trajectoryId}`,
    );
    await page.keyboard.press('j');
    await at(1);
    expect(page.url()).toContain('step=1');
    await page.keyboard.press('j');
    await at(2);
    await page.keyboard.press('k');
    await at(1);
    await page.keyboard.press('Shift+G');
    await at(steps.length - 1);
    await page.keyboard.press('g');
    await at(0);

    // the response's tokens: as many as stored, their texts the response, coloured by the advantage
    const step = steps[0]!;
    const advantage = step.advantages[0]!.value;
    const tokens = page.locator('.response .token');
    expect(await tokens.count()).toBe(step.responseTokens.length);
    const last = store.checkpoints(RUNS.gigpo).at(-1)!;
    const tokenizer = Tokenizer.fromJSON(readFileSync(join(last.path, 'tokenizer.json'), 'utf8'));
    expect((await tokens.evaluateAll((ts) => ts.map((x) => x.textContent))).join('')).toBe(
      tokenizer.decode(step.responseTokens),
    );
    // blue for a positive advantage, red for a negative one (the page's advantageColour)
    const rgb = advantage >= 0 ? '37, 99, 235' : '220, 38, 38';
    for (const style of await tokens.evaluateAll((ts) => ts.map((x) => x.getAttribute('style'))))
      expect(style).toMatch(new RegExp(`background:\\s*rgba\\(${rgb}, `));
    expect(await tokens.first().getAttribute('title')).toContain(
      `log-prob ${fmt(step.responseLogprobs[0]!)} · advantage ${fmt(advantage)}`,
    );

    const gigpo = page.locator('section.panel[data-estimator="gigpo"]');
    expect(await gigpo.count()).toBe(1);
    const d = details(step);
    const text = await gigpo.innerText();
    expect(text).toMatch(/episode part[\s\S]*step part/);
    expect(text).toContain(`A = ${fmt(advantage)}`);
    expect(text).toContain(fmt(d.episode as number));
    expect(text).toContain(fmt(d.step as number));
    // the step group's members: the same anchor in the other rollouts, each a link
    const members = g.trajectories.flatMap((o) =>
      store
        .trajectory({ runId: RUNS.gigpo, iteration: 0, groupId: g.groupId, trajectoryId: o.trajectoryId })
        .filter((s) => s.anchor === step.anchor)
        .filter((s) => !(o.trajectoryId === t.trajectoryId && s.stepIndex === step.stepIndex))
        .map((s) => `${o.trajectoryId} step ${s.stepIndex}`),
    );
    const links = gigpo.locator('.members a');
    expect(await links.allInnerTexts()).toEqual(members);
    expect(members.length).toBeGreaterThanOrEqual(g.trajectories.length - 1);
    await shot('trajectory-gigpo');
    const [memberTrajectory, memberStep] = members[0]!.split(' step ');
    await links.first().click();
    await expect
      .poll(() => page.url())
      .toMatch(new RegExp(`/t/${memberTrajectory}\\?step=${memberStep}(&|$)`));
    await expect.poll(() => anchorAt()).toBe((step.anchor as string).trim());
  });

  it("shows HGPO's levels with group sizes, weights and per-level advantages", async () => {
    const at = findStep(RUNS.hgpo, (s) => s.stepIndex >= 2);
    await open(
      `${trajectoryHash(RUNS.hgpo, at.iteration, at.groupId, at.trajectoryId)}?step=${at.step.stepIndex}`,
    );
    const panel = page.locator('section.panel[data-estimator="hgpo"]');
    await expect.poll(() => panel.count()).toBe(1);
    const d = details(at.step) as {
      level: Array<number | null>;
      levelGroupSize: number[];
      levelWeight: number[];
    };
    const alpha = (config(RUNS.hgpo).estimatorOptions as { alpha: number }).alpha;
    const rows = panel.locator('table.levels tbody tr');
    const H = (config(RUNS.hgpo).estimatorOptions as { history: number }).history;
    expect(await rows.count()).toBe(H + 1);
    // the estimator stores each level's weight itself
    expect(d.levelWeight.slice(1)).toEqual(Array.from({ length: H + 1 }, (_, j) => (j + 2) ** alpha));
    for (let k = 1; k <= H + 1; k++) {
      const cells = await rows
        .nth(k - 1)
        .locator('td')
        .allInnerTexts();
      expect(cells.slice(0, 4)).toEqual([
        String(k),
        String(d.levelGroupSize[k]),
        fmt((k + 1) ** alpha),
        fmt(d.level[k]),
      ]);
    }
    await shot('trajectory-hgpo');
  });

  it("shows IGPO's values and information gain, with the search tool's calls", async () => {
    const at = findStep(RUNS.igpo, (s) => typeof details(s).gain === 'number');
    const i = at.step.stepIndex;
    await open(`${trajectoryHash(RUNS.igpo, at.iteration, at.groupId, at.trajectoryId)}?step=${i}`);
    const igpo = page.locator('section.panel[data-estimator="igpo"]');
    await expect.poll(() => igpo.count()).toBe(1);
    const text = await igpo.innerText();
    expect(text).toMatch(/value before[\s\S]*value after[\s\S]*information gain/);
    expect(text).toContain(fmt(at.steps[i]!.extras.valueBefore as number));
    expect(text).toContain(fmt(at.steps[i + 1]!.extras.valueBefore as number));
    expect(text).toContain(fmt(details(at.step).gain as number, 6));
    await shot('trajectory-igpo');

    const call = findStep(RUNS.igpo, (s) => s.toolCalls.length > 0);
    await open(
      `${trajectoryHash(RUNS.igpo, call.iteration, call.groupId, call.trajectoryId)}?step=${call.step.stepIndex}`,
    );
    const tools = page.locator('table.tools tbody tr');
    await expect.poll(() => tools.count()).toBe(call.step.toolCalls.length);
    const c = call.step.toolCalls[0]!;
    expect(await tools.first().innerText()).toMatch(
      new RegExp(
        `^web_search\\s+${c.arguments.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+${c.ok ? 'ok' : ''}`,
      ),
    );
    await shot('trajectory-igpo-tools');
  });

  it("shows Flow-GRPO's turn samples and the shared outcome on a planner step", async () => {
    const at = findStep(RUNS.flowGrpo, (s) => s.role === 'planner');
    await open(
      `${trajectoryHash(RUNS.flowGrpo, at.iteration, at.groupId, at.trajectoryId)}?step=${at.step.stepIndex}`,
    );
    const flow = page.locator('section.panel[data-estimator="flow-grpo"]');
    await expect.poll(() => flow.count()).toBe(1);
    expect(await flow.innerText()).toMatch(new RegExp(`shared outcome R\\s+${at.won ? 1 : 0}\\b`));
    const samples = store
      .trainingRows(RUNS.flowGrpo, at.iteration, 'flow-grpo')
      .filter((r) => r.groupId === at.groupId && r.advantage !== undefined);
    expect(await flow.locator('li a').allInnerTexts()).toEqual(
      samples.map((r) => `${r.trajectoryId} turn ${r.stepIndex}`),
    );
    await shot('trajectory-flow-grpo');
    // a module that is not trained has no credit
    const other = at.steps.find((s) => s.role !== 'planner')!;
    await open(
      `${trajectoryHash(RUNS.flowGrpo, at.iteration, at.groupId, at.trajectoryId)}?step=${other.stepIndex}`,
    );
    await expect.poll(() => page.locator('.facts').innerText()).toContain(`role ${other.role}`);
    expect(await page.locator('.step p.empty').innerText()).toContain('No advantages stored');
  });

  it('shows a not-found page for unknown ids', async () => {
    await open('#/run/no-such-run');
    await expect.poll(() => page.locator('.not-found').innerText()).toContain("no run 'no-such-run'");
    const g = store.groups(RUNS.gigpo, 0)[0]!;
    await open(trajectoryHash(RUNS.gigpo, 0, g.groupId, 'nope'));
    await expect.poll(() => page.locator('.not-found').innerText()).toContain("no trajectory 'nope'");
    await open(`#/run/${RUNS.gigpo}/it/99`);
    await expect.poll(() => page.locator('.not-found').innerText()).toContain('has no iteration 99');
    await open('#/nowhere');
    await expect.poll(() => page.locator('.not-found').innerText()).toContain('no page');
    await shot('not-found');
  });
});
