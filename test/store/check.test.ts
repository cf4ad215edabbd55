import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore, SCHEMA_VERSION, type TrajectoryStore } from '../../src/store/index.ts';
import { sampleGroups } from './sample.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-check-'));
  file = path.join(dir, 's.db');
  const s = openSqliteStore(file);
  s.createRun('r');
  s.writeIteration('r', { iteration: 0, groups: sampleGroups(2, 3) });
  s.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Damages the store with raw SQL (foreign keys off, as a buggy writer or a hand edit might). */
function damage(sql: string): TrajectoryStore {
  const s = openSqliteStore(file);
  s.db.pragma('foreign_keys = OFF');
  s.db.exec(sql);
  return s;
}

const checksOf = (s: TrajectoryStore) => s.check().findings.map((f) => [f.severity, f.check]);

describe('store check', () => {
  it('passes a store written by the writer', () => {
    const s = openSqliteStore(file, { readonly: true });
    const r = s.check();
    expect(r).toMatchObject({ ok: true, findings: [], schemaVersion: SCHEMA_VERSION });
    // sampleGroups(2, 3): lengths 1,2,3 and 2,3,1 -> 12 steps; tool calls on step 0: 2 x 6 trajectories.
    expect(r.counts).toMatchObject({
      runs: 1,
      iterations: 1,
      groups: 2,
      trajectories: 6,
      steps: 12,
      tool_calls: 12,
    });
    s.close();
  });

  it('reports a trajectory whose length differs from its steps, naming it', () => {
    const s = damage(
      "DELETE FROM steps WHERE step_index = 2 AND trajectory_id = (SELECT id FROM trajectories WHERE trajectory_key = 'it-g0-t2')",
    );
    const r = s.check();
    expect(r.ok).toBe(false);
    const f = r.findings.find((x) => x.check === 'step count')!;
    expect(f.message).toContain(
      'run r, iteration 0, group g0, trajectory it-g0-t2: length 3, steps stored 2',
    );
    s.close();
  });

  it('reports bad blobs, early done flags, orphans, bad advantages and returns', () => {
    const s = damage(`
      UPDATE steps SET response_logprobs = x'0000803f' WHERE id = 1;
      UPDATE steps SET prompt_tokens = x'010203' WHERE id = 2;
      UPDATE steps SET done = 1 WHERE step_index = 0 AND trajectory_id IN (SELECT trajectory_id FROM steps WHERE step_index = 1);
      INSERT INTO advantages (step_id, estimator, value) VALUES (9999, 'gigpo', 1.0);
      INSERT INTO tool_calls (step_id, call_index, tool, arguments, started_at, duration_ms, ok, truncated, output_chars)
        VALUES (8888, 0, 'python', '{}', 0, 0, 1, 0, 0);
      UPDATE trajectories SET episode_return = episode_return + 1 WHERE id = 1;
    `);
    expect(checksOf(s)).toEqual([
      ['error', 'foreign keys'],
      ['error', 'blob sizes'],
      ['error', 'done flag'],
      ['error', 'orphan advantages'],
      ['error', 'orphan tool calls'],
      ['warning', 'returns'],
    ]);
    const blob = s.check().findings.find((f) => f.check === 'blob sizes')!;
    expect(blob.message).toMatch(/^2 steps/);
    s.close();
  });

  it('counts warnings apart from errors', () => {
    const s = damage("INSERT INTO iterations (run_id, iteration, created_at) VALUES ('r', 5, 0)");
    const r = s.check();
    expect(r.ok).toBe(true);
    expect(checksOf(s)).toEqual([['warning', 'empty iterations']]);
    s.close();
  });

  it('finds a damaged page with SQLite integrity_check, and the CLI exits 1', () => {
    // Overwrite the middle of the file (table and index pages, headers included: 64 kB pages, and
    // an empty table's page is mostly unused space) with a pattern.
    const size = statSync(file).size;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(200_000, 0x5a), 0, 200_000, Math.floor(size / 2) - 100_000);
    closeSync(fd);
    let out = '';
    let status = 0;
    try {
      execFileSync(process.execPath, ['bin/stepwise.js', 'store', 'check', '--db', file], {
        cwd: root,
        encoding: 'utf8',
      });
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      status = e.status;
      out = e.stdout + e.stderr;
    }
    expect(status).toBe(1);
    expect(out).toContain('error: integrity');
    expect(out).toContain('FAILED');
  });
});
