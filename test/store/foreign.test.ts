/** Another program's SQLite file is refused by every way of opening it, and left as it was. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.ts';

const root = path.resolve(import.meta.dirname, '../..');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-foreign-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A SQLite file of some other program: a table of notes, optionally a user_version of its own. */
function foreignFile(userVersion = 0): string {
  const file = path.join(dir, 'notes.sqlite');
  const db = new Database(file);
  db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hi')");
  db.pragma(`user_version = ${userVersion}`);
  db.close();
  return file;
}

/** Tables and user_version: what opening must not change. */
function shape(file: string): { tables: string[]; version: number } {
  const db = new Database(file, { readonly: true });
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  const version = db.pragma('user_version', { simple: true }) as number;
  db.close();
  return { tables, version };
}

function cli(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('a SQLite file that is not a stepwise store', () => {
  it('is refused for writing and reading, naming its tables, and stays unchanged', () => {
    for (const userVersion of [0, 7]) {
      const file = foreignFile(userVersion);
      const before = shape(file);
      for (const readonly of [false, true]) {
        expect(() => openStore(file, { readonly })).toThrow(
          /is a SQLite database but not a stepwise store.*notes/,
        );
      }
      expect(shape(file)).toEqual(before);
      rmSync(file);
    }
  });

  it('`store migrate` refuses it and `store check` does not advise migrating it', () => {
    const file = foreignFile();
    const before = shape(file);
    const migrate = cli('store', 'migrate', '--db', file);
    expect(migrate.status).toBe(1);
    expect(migrate.out).toMatch(/not a stepwise store: it holds tables \(notes\)/);
    expect(migrate.out).not.toContain('schema up to date');
    const check = cli('store', 'check', '--db', file);
    expect(check.status).toBe(1);
    expect(check.out).toMatch(/not a stepwise store/);
    expect(check.out).not.toContain('migrate');
    expect(shape(file)).toEqual(before);
  });

  it('a new or empty file still becomes a store', () => {
    const empty = path.join(dir, 'empty.db');
    writeFileSync(empty, '');
    expect(() => openStore(empty, { readonly: true })).toThrow(/empty SQLite file/);
    expect(cli('store', 'migrate', '--db', empty).status).toBe(0);
    const s = openStore(empty, { readonly: true });
    expect(s.runs()).toEqual([]);
    s.close();
    expect(shape(empty).tables).toContain('runs');
  });
});
