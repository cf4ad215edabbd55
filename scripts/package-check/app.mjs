/**
 * The installed package from plain node (no TypeScript loader): credit, the store, a sandboxed
 * tool (its worker file must ship) and the viewer (its page is bundled from the package at start).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gigpo, javascriptTool, openStore, startViewer } from 'stepwise';

const rows = ['win', 'lose'].flatMap((t) => [
  { groupId: 'g', trajectoryId: t, stepIndex: 0, anchor: 'hall', envReward: 0, valid: true },
  { groupId: 'g', trajectoryId: t, stepIndex: 1, anchor: t, envReward: t === 'win' ? 10 : 0, valid: true },
]);
const { advantages } = gigpo(rows);
assert.ok(advantages[1] > 0 && advantages[3] < 0, `gigpo: ${advantages}`);

const tool = javascriptTool();
const result = await tool.execute({ code: 'console.log(6 * 7)' });
await tool.close?.();
assert.equal(result.output.trim(), '42', JSON.stringify(result));

const dir = mkdtempSync(join(tmpdir(), 'stepwise-package-'));
try {
  const db = join(dir, 'runs.db');
  const store = openStore(db);
  store.createRun('check', { estimator: 'gigpo' });
  store.close();
  const viewer = await startViewer({ db, port: 0 });
  try {
    const runs = await (await fetch(new URL('/api/runs', viewer.url))).json();
    assert.equal(JSON.stringify(runs).includes('"check"'), true, JSON.stringify(runs));
    const page = await fetch(new URL('/app.js', viewer.url));
    assert.equal(page.status, 200);
    assert.ok((await page.text()).length > 10_000, 'the viewer page bundle is too small');
  } finally {
    await viewer.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  'package-check: plain node imports stepwise and runs credit, a sandbox, the store and the viewer',
);
