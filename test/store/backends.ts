/**
 * The store backends the store tests run against: SQLite always, PostgreSQL when a server is
 * given by STEPWISE_TEST_PG (a URL whose user may create databases; `.ci/run` starts one with
 * scripts/pg-test-cluster.sh). Without it the PostgreSQL variants skip with a message, except
 * under CI=true, where a missing server fails them. Each `fresh()` location is a new empty store:
 * a file in a temp folder, or a new database on the server (dropped by `cleanup`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PgConnection } from '../../src/store/postgres/store.ts';
import { inCI } from '../ci.ts';

export const PG_URL = process.env.STEPWISE_TEST_PG;

/** Why the PostgreSQL variants skip, or undefined when they run. */
export const pgSkipReason =
  PG_URL === undefined && !inCI
    ? 'PostgreSQL store tests skipped: set STEPWISE_TEST_PG=postgres://user@127.0.0.1:port/postgres (bash scripts/pg-test-cluster.sh start DIR PORT prints one)'
    : undefined;
if (pgSkipReason) console.warn(pgSkipReason);

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** A new, empty store location. */
  fresh(): string;
  /** Removes every location made by `fresh`. */
  cleanup(): void;
}

function requirePgUrl(): string {
  if (PG_URL === undefined) {
    throw new Error(
      'CI=true but STEPWISE_TEST_PG is not set: .ci/run must start a PostgreSQL cluster for the tests',
    );
  }
  return PG_URL;
}

let serial = 0;

export function sqliteBackend(): Backend {
  const dirs: string[] = [];
  return {
    name: 'sqlite',
    fresh() {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-store-'));
      dirs.push(dir);
      return path.join(dir, 's.db');
    },
    cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** A database URL on the test server, `name` replacing the URL's database. */
export function pgDatabaseUrl(name: string): string {
  const u = new URL(requirePgUrl());
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates an empty database on the test server; returns its URL. */
export function createPgDatabase(prefix = 'stepwise_test'): string {
  const admin = PgConnection.open(requirePgUrl());
  try {
    const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${serial++}`;
    admin.query(`CREATE DATABASE ${name}`);
    return pgDatabaseUrl(name);
  } finally {
    admin.close();
  }
}

export function dropPgDatabase(url: string): void {
  const admin = PgConnection.open(requirePgUrl());
  try {
    admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
  } finally {
    admin.close();
  }
}

export function pgBackend(): Backend {
  const urls: string[] = [];
  return {
    name: 'postgres',
    fresh() {
      const url = createPgDatabase();
      urls.push(url);
      return url;
    },
    cleanup() {
      for (const u of urls.splice(0)) dropPgDatabase(u);
    },
  };
}

/** Both backends, for `describe.each`; the PostgreSQL one is marked to skip without a server. */
export const backends: Array<{ backend: Backend; skip: boolean }> = [
  { backend: sqliteBackend(), skip: false },
  { backend: pgBackend(), skip: pgSkipReason !== undefined },
];
