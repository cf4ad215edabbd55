/**
 * The distributed commands refuse what cannot work, before any work: a worker or a queue learner
 * on a SQLite file (workers elsewhere cannot reach it), queue options without --queue.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '../..');
const stepwise = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, encoding: 'utf8' });

it('stepwise worker needs a postgres:// store and a positive concurrency', () => {
  const file = stepwise('worker', '--db', 'runs/some.db');
  expect(file.status).toBe(1);
  expect(file.stderr).toContain('--db runs/some.db: expected a postgres:// URL');
  const zero = stepwise('worker', '--db', 'postgres://nobody@127.0.0.1:1/x', '--concurrency', '0');
  expect(zero.status).toBe(1);
  expect(zero.stderr).toContain('--concurrency 0: expected a positive integer');
}, 60_000);

it('stepwise train refuses queue options without --queue', () => {
  const r = stepwise('train', '--db', 'runs/none.db', '--max-staleness', '1', '--iterations', '0');
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('--max-staleness and --lease apply to --queue rollouts only');
}, 60_000);

it('stepwise train --queue refuses a SQLite store', () => {
  const r = stepwise('train', '--db', 'runs/none.db', '--queue', '--iterations', '0');
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('--queue needs a PostgreSQL store every worker reaches');
}, 60_000);
