// biome-ignore-all lint/performance/useDomNodeTextContent: Playwright's Locator.innerText() reads the visible text, which is what these tests check
// The viewer's pages in headless Chromium (Debian's, driven by playwright-core) over the fixture
// store: what a person would see. Screenshots go to test-artifacts/ (gitignored).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';
import { startViewer, type Viewer } from '../../src/viewer/server.ts';
import { CHROMIUM, hasChromium, launchChromium } from './chromium.ts';
import {
  buildFixtureStore,
  disposeFixtureModels,
  fixtureModels,
  HOUSEHOLD_RUN,
  SEARCH_RUN,
  writeHouseholdIteration,
} from './fixture-store.ts';

const chromiumFound = hasChromium();
if (!chromiumFound) {
  console.warn(
    `viewer browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium; CI does)`,
  );
}

const ARTIFACTS = 'test-artifacts';

describe.skipIf(!chromiumFound)('viewer pages in Chromium', () => {
  let dir: string;
  let db: string;
  let viewer: Viewer;
  let browser: BrowserContext;
  let page: Page;
  const errors: string[] = [];

  const open = async (hash: string) => {
    await page.goto(`${viewer.url}${hash}`);
  };
  const shot = (name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `viewer-${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), 'viewer-browser-'));
    db = join(dir, 'runs.db');
    await buildFixtureStore(db, { iterations: 3, keepRunning: true });
    const { tokenizer } = fixtureModels();
    viewer = await startViewer({ db, port: 0, decodeToken: () => (id) => tokenizer.decode([id]) });
    browser = await launchChromium(join(dir, 'chromium-profile'));
    page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await viewer?.close();
    await disposeFixtureModels();
    rmSync(dir, { recursive: true, force: true });
    expect(errors, 'errors thrown in the page').toEqual([]);
  });

  it('lists the runs with estimator, status and best success', async () => {
    await open('#/');
    const rows = page.locator('table.runs tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    await expect
      .poll(() => rows.first().innerText())
      .toMatch(/household-gigpo\s+gigpo\s+household\s+running/);
    await shot('runs');
  });

  it('draws the learning curves and adds iterations while the run writes them', async () => {
    await open(`#/run/${HOUSEHOLD_RUN}`);
    const charts = page.locator('figure.chart');
    await expect.poll(() => charts.count()).toBeGreaterThanOrEqual(6);
    for (const title of ['success', 'return', 'invalid rate', 'KL', 'entropy', 'tokens/s']) {
      const chart = page.locator(`figure.chart[data-chart="${title}"]`);
      expect(Number(await chart.getAttribute('data-points')), title).toBeGreaterThanOrEqual(3);
      // the canvas has drawn pixels (uPlot draws the series on it)
      const inked = await chart.locator('canvas').evaluate((c: HTMLCanvasElement) => {
        const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
        return n;
      });
      expect(inked, title).toBeGreaterThan(200);
    }
    const iterations = page.locator('table.iterations tbody tr');
    expect(await iterations.count()).toBe(3);
    await shot('run');
    // a trainer writes iteration 3: the open page shows it without a reload
    const writer = openStore(db, { backgroundCheckpoint: false });
    try {
      await writeHouseholdIteration(writer, 3, { iterations: 4 });
    } finally {
      writer.close();
    }
    await expect.poll(() => iterations.count(), { timeout: 10_000 }).toBe(4);
    expect(Number(await page.locator('figure.chart[data-chart="KL"]').getAttribute('data-points'))).toBe(4);
  });

  it("searches a run's trajectories by iteration, task type and outcome, from the URL", async () => {
    await open(`#/run/${HOUSEHOLD_RUN}?iteration=0&success=won`);
    const rows = page.locator('table.search tbody tr');
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    expect(await page.locator('table.search tbody tr.lost').count()).toBe(0);
    const kind = (await rows.first().locator('td').nth(2).innerText()).trim();
    await page.selectOption('select[name="taskType"]', kind);
    await expect.poll(() => page.url()).toContain(`taskType=${kind}`);
    await expect
      .poll(
        async () => new Set(await page.locator('table.search tbody tr td:nth-child(3)').allInnerTexts()).size,
      )
      .toBe(1);
    expect(await page.locator('table.search tbody tr td:nth-child(1)').allInnerTexts()).toEqual(
      Array(await rows.count()).fill('0'),
    );
  });

  it('shows evaluation tables', async () => {
    await open(`#/run/${SEARCH_RUN}`);
    await expect.poll(() => page.locator('table.evaluations tbody tr').count()).toBe(3);
    expect(await page.locator('table.evaluations thead').innerText()).toContain('valid-seen success_rate');
  });

  it("shows an iteration's groups with their rollouts side by side, and filters them", async () => {
    await open(`#/run/${HOUSEHOLD_RUN}/it/0`);
    await expect.poll(() => page.locator('article.group').count()).toBe(2);
    expect(await page.locator('article.group').first().locator('a.rollout').count()).toBe(4);
    expect(await page.locator('a.rollout.won').count()).toBeGreaterThan(0);
    expect(await page.locator('a.rollout.lost').count()).toBeGreaterThan(0);
    await shot('iteration');
    await page.selectOption('select[name="success"]', 'won');
    await expect.poll(() => page.url()).toContain('success=won');
    // Wait for the filtered list itself: while it reloads it is empty, which has no lost rollout either.
    const shown = async () => ({
      lost: await page.locator('a.rollout.lost').count(),
      won: (await page.locator('a.rollout.won').count()) > 0,
    });
    await expect.poll(shown).toEqual({ lost: 0, won: true });
  });

  it('replays a trajectory step by step with the keyboard, tokens coloured by advantage', async () => {
    await open(`#/run/${HOUSEHOLD_RUN}/it/0/g/g0/t/t1`);
    const position = page.locator('.position');
    await expect.poll(() => position.innerText()).toMatch(/^step 1 of (\d+)$/);
    const count = Number(/of (\d+)/.exec(await position.innerText())![1]);
    const anchorAt = () => page.locator('pre.anchor').innerText();
    const first = await anchorAt();
    await page.keyboard.press('j');
    await expect.poll(() => position.innerText()).toBe(`step 2 of ${count}`);
    expect(page.url()).toContain('step=1');
    expect(await anchorAt()).not.toBe(first);
    await page.keyboard.press('k');
    await expect.poll(() => position.innerText()).toBe(`step 1 of ${count}`);
    await page.keyboard.press('Shift+G');
    await expect.poll(() => position.innerText()).toBe(`step ${count} of ${count}`);
    await page.keyboard.press('g');
    await expect.poll(() => position.innerText()).toBe(`step 1 of ${count}`);

    const tokens = page.locator('.response .token');
    expect(await tokens.count()).toBeGreaterThan(5);
    const style = await tokens.first().getAttribute('style');
    expect(style).toMatch(/background:\s*rgba\((37, 99, 235|220, 38, 38)/);
    const title = await tokens.first().getAttribute('title');
    expect(title).toMatch(/log-prob -\d+\.\d+ · advantage -?\d/);
    for (const estimator of ['gigpo', 'hgpo', 'grpo']) {
      expect(await page.locator(`section.panel[data-estimator="${estimator}"]`).count(), estimator).toBe(1);
    }
    const gigpo = page.locator('section.panel[data-estimator="gigpo"]');
    expect(await gigpo.innerText()).toMatch(/episode part[\s\S]*step part/);
    expect(await page.locator('section.panel[data-estimator="hgpo"] table.levels tbody tr').count()).toBe(3);
    await shot('trajectory');
    // a member of the step group links to the same anchor in another rollout
    await gigpo.locator('.members a').first().click();
    await expect.poll(() => page.url()).toMatch(/\/t\/t[023]\?step=0/);
    await expect.poll(() => anchorAt()).toBe(first);
  });

  it("shows IGPO's values and gain and Flow-GRPO's samples on a search trajectory, with tool calls", async () => {
    await open(`#/run/${SEARCH_RUN}/it/0/g/q0/t/t0?step=0`);
    const igpo = page.locator('section.panel[data-estimator="igpo"]');
    await expect.poll(() => igpo.count()).toBe(1);
    expect(await igpo.innerText()).toMatch(/value before[\s\S]*value after[\s\S]*information gain/);
    const flow = page.locator('section.panel[data-estimator="flow-grpo"]');
    expect(await flow.innerText()).toContain('shared outcome R = 1');
    expect(await flow.locator('li').count()).toBeGreaterThanOrEqual(4);
    expect(await page.locator('table.tools tbody tr').first().innerText()).toMatch(/web_search\s+\{"query":/);
    await shot('search-trajectory');
  });

  it('shows a not-found page for unknown ids', async () => {
    await open('#/run/no-such-run');
    await expect.poll(() => page.locator('.not-found').innerText()).toContain("no run 'no-such-run'");
    await open(`#/run/${HOUSEHOLD_RUN}/it/0/g/g0/t/nope`);
    await expect.poll(() => page.locator('.not-found').innerText()).toContain("no trajectory 'nope'");
    await open('#/nowhere');
    await expect.poll(() => page.locator('.not-found').innerText()).toContain('no page');
    await shot('not-found');
  });
});
