/**
 * What only the PostgreSQL store has to prove (the shared behaviour runs in store.test.ts on both
 * backends): its refusals (another program's database, a newer schema, an empty one read-only),
 * texts SQLite keeps and PostgreSQL's TEXT cannot (NUL), nested transactions and one snapshot
 * per read transaction, `store export/import/check/migrate` through the CLI between the two
 * backends, and a writer SIGKILLed in the middle of an iteration.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  exportJsonl,
  importRows,
  openStore,
  PgStore,
  parseJsonl,
  SCHEMA_VERSION,
} from '../../src/store/index.ts';
import { PgConnection } from '../../src/store/postgres/store.ts';
import { decodeText, encodeText } from '../../src/store/postgres/text.ts';
import { startViewer } from '../../src/viewer/server.ts';
import { pgBackend, pgSkipReason } from './backends.ts';
import { sampleGroups } from './sample.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const pg = pgBackend();
const dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-pg-'));
afterEach(() => pg.cleanup());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stepwise = (...args: string[]) =>
  execFileSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, encoding: 'utf8' });

it('escapes NUL and its own escape character reversibly', () => {
  for (const s of ['plain', '', 'a\u0000b', '\uE000', '\uE000\uE001\u0000\uE002', '\u0000\u0000']) {
    expect(decodeText(encodeText(s))).toBe(s);
    expect(encodeText(s).includes('\u0000')).toBe(false);
  }
  expect(encodeText('plain ✓')).toBe('plain ✓');
});

describe.skipIf(pgSkipReason !== undefined)('the PostgreSQL store', () => {
  it('refuses another program’s database, a newer schema, and an empty one read-only', () => {
    const foreign = pg.fresh();
    const raw = PgConnection.open(foreign);
    raw.query('CREATE TABLE invoices (id int)');
    expect(() => openStore(foreign)).toThrow(
      /is a PostgreSQL database but not a stepwise store: its schema holds tables \(invoices\)/,
    );
    raw.close();

    const empty = pg.fresh();
    expect(() => openStore(empty, { readonly: true })).toThrow(
      /is an empty database \(no stepwise schema yet\)/,
    );
    const s = openStore(empty);
    expect(s).toBeInstanceOf(PgStore);
    s.close();
    const ro = openStore(empty, { readonly: true });
    expect(() => ro.createRun('r')).toThrow(/read-only/);
    ro.close();

    const bump = PgConnection.open(empty);
    bump.query('INSERT INTO stepwise_schema (version, applied_at) VALUES ($1, 0)', [SCHEMA_VERSION + 7]);
    bump.close();
    const msg = `store schema version ${SCHEMA_VERSION + 7} is newer than this stepwise supports`;
    expect(() => openStore(empty)).toThrow(msg);
    expect(() => openStore(empty, { readonly: true })).toThrow(msg);

    expect(() => openStore('postgres://nobody@127.0.0.1:1/nothing')).toThrow(
      /cannot open store postgres:\/\/nobody@127\.0\.0\.1:1\/nothing: .*ECONNREFUSED/,
    );
  });

  it('keeps texts with NUL, nests transactions, and gives a read transaction one snapshot', () => {
    const url = pg.fresh();
    const store = openStore(url);
    store.createRun('r');
    const groups = sampleGroups(1, 2);
    const step = groups[0]!.trajectories[0]!.steps[0]!;
    Object.assign(step, {
      responseText: 'nul \u0000 here \uE000',
      promptText: '\u0000',
      anchor: 'a\u0000',
      extras: { raw: 'x\u0000y' },
    });
    step.toolCalls = [{ ...step.toolCalls![0]!, arguments: '{"q":"\\u0000"}\u0000' }];
    store.writeIteration('r', { iteration: 0, groups });
    const [back] = store.trajectory({ runId: 'r', iteration: 0, groupId: 'g0', trajectoryId: 'it-g0-t0' });
    expect([back!.responseText, back!.promptText, back!.anchor, back!.extras]).toEqual([
      step.responseText,
      step.promptText,
      step.anchor,
      step.extras,
    ]);
    expect(back!.toolCalls[0]!.arguments).toBe(step.toolCalls[0]!.arguments);

    // An inner failure rolls back to its savepoint; the outer transaction commits the rest.
    store.transaction(() => {
      store.writeMetrics('r', 0, { a: 1 });
      expect(() =>
        store.transaction(() => {
          store.writeMetrics('r', 0, { b: 2 });
          throw new Error('inner');
        }),
      ).toThrow('inner');
    });
    expect(store.metrics('r').map((m) => m.name)).toEqual(['a']);
    expect(() =>
      store.transaction(() => {
        store.writeIteration('r', { iteration: 1, groups: sampleGroups(1, 1) });
        throw new Error('outer');
      }),
    ).toThrow('outer');
    expect(store.lastCompleteIteration('r')).toBe(0);

    // A reader's transaction sees the store as it was when it began (the viewer's requests).
    const reader = openStore(url, { readonly: true });
    const seen = reader.transaction(() => {
      const before = reader.iterations('r').length;
      store.writeIteration('r', { iteration: 1, groups: sampleGroups(1, 1) });
      return [before, reader.iterations('r').length];
    });
    expect(seen).toEqual([1, 1]);
    expect(reader.iterations('r')).toHaveLength(2);
    reader.close();
    store.close();
  });

  it('exports, imports, checks and migrates through the CLI, between SQLite and PostgreSQL', () => {
    const file = path.join(dir, 'a.db');
    const s = openStore(file);
    s.createRun('r1', { estimator: 'gigpo' });
    s.writeIteration('r1', { iteration: 0, groups: sampleGroups(3, 3), metrics: { loss: 1 } });
    s.writeIteration('r1', { iteration: 1, groups: sampleGroups(2, 2) });
    s.close();
    const url = pg.fresh();
    expect(stepwise('store', 'migrate', '--db', url)).toContain('schema up to date');
    const fromSqlite = path.join(dir, 'a.jsonl');
    stepwise('store', 'export', '--db', file, '--out', fromSqlite);
    expect(stepwise('store', 'import', '--db', url, '--in', fromSqlite)).toContain('2 iterations');
    const fromPg = path.join(dir, 'b.jsonl');
    stepwise('store', 'export', '--db', url, '--out', fromPg);
    expect(readFileSync(fromPg, 'utf8')).toBe(readFileSync(fromSqlite, 'utf8'));
    const report = JSON.parse(stepwise('store', 'check', '--db', url, '--json')) as {
      ok: boolean;
      findings: unknown[];
      counts: Record<string, number>;
    };
    expect(report).toMatchObject({ ok: true, findings: [] });
    expect(report.counts.iterations).toBe(2);
    expect(stepwise('store', 'runs', '--db', url)).toMatch(/^r1\tfinished\titerations 2\tlast 1/);

    // A broken invariant is found and named, as in SQLite.
    const raw = PgConnection.open(url);
    raw.query('UPDATE trajectories SET length = length + 1 WHERE id = (SELECT min(id) FROM trajectories)');
    raw.close();
    const broken = openStore(url, { readonly: true });
    const r = broken.check();
    broken.close();
    expect(r.ok).toBe(false);
    expect(r.findings.map((f) => f.check)).toContain('step count');
  }, 120_000);

  it('a writer SIGKILLed mid-iteration leaves no partial iteration, and the next run resumes', async () => {
    const url = pg.fresh();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(here, 'kill-writer.ts'), url, '8'],
        {
          cwd: root,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('mid')) child.kill('SIGKILL');
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.on('exit', (_code, signal) =>
        signal === 'SIGKILL' && !out.includes('finished') ? resolve() : reject(new Error(out)),
      );
    });
    // The server notices the dead connection and rolls its transaction back.
    const store = openStore(url);
    expect(store.iterations('r').map((i) => i.iteration)).toEqual([0, 1]);
    expect(store.metricSeries('r', 'loss').map((p) => p.iteration)).toEqual([0, 1]);
    expect(store.check()).toMatchObject({ ok: true, findings: [] });
    store.writeIteration('r', { iteration: 2, groups: sampleGroups(2, 2) });
    expect(store.resumePoint('r').nextIteration).toBe(3);
    store.close();
  }, 60_000);

  it('the viewer reads a PostgreSQL store as it reads a file', async () => {
    const file = path.join(dir, 'viewer.db');
    const s = openStore(file);
    s.createRun('r1', { estimator: 'gigpo' });
    s.writeIteration('r1', { iteration: 0, groups: sampleGroups(2, 3), metrics: { loss: 0.5 } });
    let jsonl = '';
    await exportJsonl(s, (chunk) => {
      jsonl += chunk;
    });
    s.close();
    const url = pg.fresh();
    const p = openStore(url);
    importRows(p, parseJsonl(jsonl));
    p.close();
    const viewers = [await startViewer({ db: file, port: 0 }), await startViewer({ db: url, port: 0 })];
    try {
      const get = async (path: string) =>
        Promise.all(
          viewers.map(async (v) => {
            const res = await fetch(new URL(path, v.url));
            expect(res.status, path).toBe(200);
            return res.json();
          }),
        );
      const [fromFile, fromPg] = await get('/api/runs/r1/iterations/0/groups/g1/trajectories/it-g1-t2');
      expect(fromPg).toEqual(fromFile);
      const [runsFile, runsPg] = (await get('/api/runs')) as Array<{ runs: Array<{ runId: string }> }>;
      expect(runsPg!.runs.map((r) => r.runId)).toEqual(runsFile!.runs.map((r) => r.runId));
    } finally {
      for (const v of viewers) await v.close();
    }
  }, 120_000);
});
