import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';
import { sampleGroups } from './sample.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-crash-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the writer child until it reports being mid-transaction, then SIGKILLs it. */
function killMidIteration(file: string, groups: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(here, 'kill-writer.ts'), file, String(groups)],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('mid')) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' && !out.includes('finished')) resolve();
      else
        reject(new Error(`writer exited with code ${code}, signal ${signal}; stdout ${out}; stderr ${err}`));
    });
  });
}

it('a writer killed mid-iteration leaves the earlier iterations intact and no partial one', async () => {
  const file = path.join(dir, 'crash.db');
  const groups = 8;
  await killMidIteration(file, groups);
  // The open transaction had spilled pages into the WAL before the kill.
  expect(statSync(`${file}-wal`).size).toBeGreaterThan(0);

  // `store check` through the real command: clean, exit code 0.
  const report = execFileSync(
    process.execPath,
    ['bin/stepwise.js', 'store', 'check', '--db', file, '--json'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  const parsed = JSON.parse(report) as { ok: boolean; findings: unknown[]; counts: Record<string, number> };
  expect(parsed.findings).toEqual([]);
  expect(parsed.ok).toBe(true);
  // sampleGroups(8, 4): trajectory lengths 1 + ((g + t) % 3) -> per group 1+2+3+1 (g%3=0), 2+3+1+2, 3+1+2+3;
  // groups 0..7 have g%3 = 0,1,2,0,1,2,0,1 -> 7*3 + 8*3 + 9*2 = 63 steps an iteration, two iterations.
  expect(parsed.counts.steps).toBe(126);
  expect(parsed.counts.iterations).toBe(2);

  const store = openStore(file, { readonly: true });
  expect(store.iterations('r').map((i) => i.iteration)).toEqual([0, 1]);
  expect(store.lastCompleteIteration('r')).toBe(1);
  // The killed iteration's metric went with it.
  expect(store.metricSeries('r', 'loss')).toEqual([
    { iteration: 0, value: 1 },
    { iteration: 1, value: 0.5 },
  ]);
  // Earlier data is intact, field by field, against the inputs the child wrote.
  const expected = sampleGroups(groups, 4).flatMap((g) =>
    g.trajectories.flatMap((t) => t.steps.map((s) => ({ g: g.groupId, t: t.trajectoryId, s }))),
  );
  for (const iteration of [0, 1]) {
    const rows = store.trainingRows('r', iteration);
    expect(rows).toHaveLength(expected.length);
    rows.forEach((r, i) => {
      const want = expected[i]!;
      expect([r.groupId, r.trajectoryId, r.stepIndex]).toEqual([want.g, want.t, want.s.stepIndex]);
      expect(r.promptText).toBe(want.s.promptText);
      expect(Array.from(r.promptTokens)).toEqual(Array.from(want.s.promptTokens));
      expect(Array.from(r.responseLogprobs)).toEqual(Array.from(Float32Array.from(want.s.responseLogprobs)));
      expect(r.envReward).toBe(want.s.envReward);
    });
  }
  store.close();

  // The next run resumes at iteration 2 and writes it normally.
  const resumed = openStore(file);
  const next = resumed.lastCompleteIteration('r')! + 1;
  resumed.writeIteration('r', { iteration: next, groups: sampleGroups(2, 2) });
  expect(resumed.iterations('r').map((i) => i.iteration)).toEqual([0, 1, 2]);
  expect(resumed.check()).toMatchObject({ ok: true, findings: [] });
  resumed.close();
});
