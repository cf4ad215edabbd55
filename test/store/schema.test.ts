import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, migrations, openSqliteStore, SCHEMA_VERSION } from '../../src/store/index.ts';
import { sampleGroups } from './sample.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-schema-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('schema versions', () => {
  it('numbers migrations 1..n in order', () => {
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
    expect(SCHEMA_VERSION).toBe(migrations.length);
  });

  it('refuses a database from a newer schema, naming both versions', () => {
    const file = path.join(dir, 'new.db');
    openSqliteStore(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 7}`);
    raw.close();
    const msg = `store schema version ${SCHEMA_VERSION + 7} is newer than this stepwise supports (version ${SCHEMA_VERSION})`;
    expect(() => openSqliteStore(file)).toThrow(msg);
    expect(() => openSqliteStore(file, { readonly: true })).toThrow(msg);
    // Refusing did not touch the file.
    const again = new Database(file, { readonly: true });
    expect(again.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 7);
    again.close();
  });

  it('upgrades an older store in order and keeps its data', () => {
    const file = path.join(dir, 'old.db');
    const raw = new Database(file);
    migrate(raw, 1);
    expect(raw.pragma('user_version', { simple: true })).toBe(1);
    raw.close();
    // Readers do not migrate: they ask for a writer to do it.
    expect(() => openSqliteStore(file, { readonly: true })).toThrow(
      `schema version 1; this stepwise reads version ${SCHEMA_VERSION}`,
    );

    const store = openSqliteStore(file);
    expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const indexes = store.db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .pluck()
      .all();
    expect(indexes).toEqual([
      'advantages_by_estimator',
      'groups_by_iteration',
      'metrics_by_name',
      'served_rollouts_by_group',
      'tool_calls_by_step',
      'trajectories_by_group',
    ]);
    store.createRun('r');
    store.writeIteration('r', { iteration: 0, groups: sampleGroups(1, 2) });
    store.close();
    const ro = openSqliteStore(file, { readonly: true });
    expect(ro.iterations('r')).toHaveLength(1);
    ro.close();
  });

  it('explains a missing, a non-database and a directory path', () => {
    expect(() => openSqliteStore(path.join(dir, 'missing.db'), { readonly: true })).toThrow(
      /no store at .*missing\.db: the file does not exist/,
    );
    const junk = path.join(dir, 'junk.db');
    writeFileSync(junk, 'this is not a database, just text long enough to fill a header '.repeat(20));
    expect(() => openSqliteStore(junk, { readonly: true })).toThrow(
      /junk\.db is not a stepwise store \(not a SQLite database/,
    );
    expect(() => openSqliteStore(junk)).toThrow(/not a stepwise store/);
    expect(() => openSqliteStore(dir)).toThrow(/is a directory; expected a store file/);
  });

  it('opens read-only without writing and refuses writes', () => {
    const file = path.join(dir, 's.db');
    const w = openSqliteStore(file);
    w.createRun('r');
    w.writeIteration('r', { iteration: 0, groups: sampleGroups(1, 1) });
    // A reader may open the file while the writer holds it (WAL).
    const ro = openSqliteStore(file, { readonly: true });
    expect(ro.lastCompleteIteration('r')).toBe(0);
    w.writeIteration('r', { iteration: 1, groups: sampleGroups(1, 1) });
    expect(ro.lastCompleteIteration('r')).toBe(1);
    expect(() => ro.writeMetrics('r', 0, { x: 1 })).toThrow(/open read-only/);
    expect(() => ro.db.prepare('DELETE FROM runs').run()).toThrow(/readonly/);
    ro.close();
    w.close();
  });

  it('checkpoints the WAL into the database file from a background thread', async () => {
    const file = path.join(dir, 'bg.db');
    const store = openSqliteStore(file);
    store.createRun('r');
    const before = statSync(file).size;
    // ~40 steps with 20k-token prompts: about 3 MB, far below the writer's own checkpoint
    // threshold (256 MB), so only the background checkpoint can move it into the file.
    const groups = sampleGroups(4, 4).map((g) => ({
      ...g,
      trajectories: g.trajectories.map((t) => ({
        ...t,
        steps: t.steps.map((st) => ({ ...st, promptTokens: new Int32Array(20_000).fill(st.stepIndex) })),
      })),
    }));
    store.writeIteration('r', { iteration: 0, groups });
    const deadline = Date.now() + 20_000;
    while (statSync(file).size < before + 2_000_000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(statSync(file).size).toBeGreaterThan(before + 2_000_000);
    store.close();
    // Closing leaves everything in the database file.
    expect(statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0).toBe(0);
    const ro = openSqliteStore(file, { readonly: true });
    expect(ro.trainingRows('r', 0)[5]!.promptTokens).toHaveLength(20_000);
    ro.close();
  });
});
