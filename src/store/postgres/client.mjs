/**
 * The PostgreSQL store's connections, in a worker thread. `pg` is asynchronous and the store's API
 * is synchronous (better-sqlite3's, used synchronously across stepwise), so PgStore calls this
 * worker through synckit, which blocks the caller on Atomics.wait until the answer is posted.
 * Plain JavaScript: the worker starts without any TypeScript loader (see scripts/build.mjs).
 * One worker serves every PgStore of the process; each store has a connection of its own here.
 */
import pg from 'pg';
import { runAsWorker } from 'synckit';

// Counts (bigint) and averages (numeric) as JavaScript numbers, as better-sqlite3 returns them.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));
pg.types.setTypeParser(1700, (v) => Number.parseFloat(v));

/** Open connections by id. */
const clients = new Map();
let nextId = 1;

function client(id) {
  const c = clients.get(id);
  if (!c) throw new Error(`PostgreSQL connection ${id} is closed`);
  return c;
}

/** A pg error as an Error whose message keeps PostgreSQL's code and detail (they do not survive postMessage otherwise). */
function described(err) {
  const parts = [err.message];
  if (err.detail) parts.push(`(${err.detail})`);
  const out = new Error(parts.join(' '));
  if (err.code) out.message += ` [${err.code}]`;
  return out;
}

runAsWorker(async (request) => {
  try {
    switch (request.op) {
      case 'connect': {
        const c = new pg.Client({ connectionString: request.url, application_name: 'stepwise' });
        // A connection lost later (server restart) fails the next call with its reason.
        c.on('error', () => {});
        await c.connect();
        const id = nextId++;
        clients.set(id, c);
        return { id };
      }
      case 'query': {
        const r = await client(request.id).query({ text: request.sql, values: request.params });
        return { rows: r.rows, rowCount: r.rowCount ?? 0 };
      }
      case 'batch': {
        // Statements run in order; the first failure stops the batch (inside a transaction, the caller rolls back).
        const c = client(request.id);
        const out = [];
        for (const s of request.statements) {
          const r = await c.query({ text: s.sql, values: s.params });
          out.push({ rows: r.rows, rowCount: r.rowCount ?? 0 });
        }
        return out;
      }
      case 'close': {
        const c = clients.get(request.id);
        clients.delete(request.id);
        if (c) await c.end();
        return {};
      }
      default:
        throw new Error(`unknown request ${request.op}`);
    }
  } catch (err) {
    throw described(err);
  }
});
