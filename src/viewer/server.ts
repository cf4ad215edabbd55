/**
 * The viewer's HTTP server (node:http): the page, its bundled script and styles, and the JSON API
 * over a store opened read-only.
 *
 *   const viewer = await startViewer({ db: 'runs.db', port: 7007 });
 *   console.log(viewer.url);
 *   await viewer.close();
 *
 * Each API request runs in one read transaction: in WAL mode it sees one snapshot of the file, so
 * a trainer committing an iteration meanwhile never shows up half-written on a page.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { openStore, type TrajectoryStore } from '../store/index.ts';
import {
  BadRequest,
  iterationDetail,
  listRuns,
  NotFound,
  runDetail,
  searchTrajectories,
  type TokenDecoder,
  trajectoryDetail,
} from './api.ts';
import { type Bundle, bundlePage } from './bundle.ts';

export interface ViewerOptions {
  /** The store file; opened read-only. */
  db: string;
  /** 0 picks a free port. Default 7007. */
  port?: number;
  /** Default 127.0.0.1: the viewer is for this machine unless you say otherwise. */
  host?: string;
  /** Token texts for the replay's token view; without it the page shows token ids. */
  decodeToken?: TokenDecoder;
}

export interface Viewer {
  url: string;
  port: number;
  store: TrajectoryStore;
  close(): Promise<void>;
}

type Handler = (store: TrajectoryStore, params: string[], q: URLSearchParams) => unknown;

const seg = '([^/]+)';
const int = '(\\d+)';

/** Starts the server; rejects with a readable message when the store cannot be opened. */
export async function startViewer(options: ViewerOptions): Promise<Viewer> {
  const store = openStore(options.db, { readonly: true });
  const decode: TokenDecoder = options.decodeToken ?? (() => undefined);
  const routes: Array<[RegExp, Handler]> = [
    [/^\/api\/runs$/, (s, _p, q) => listRuns(s, q)],
    [new RegExp(`^/api/runs/${seg}$`), (s, [run]) => runDetail(s, run!)],
    [new RegExp(`^/api/runs/${seg}/trajectories$`), (s, [run], q) => searchTrajectories(s, run!, q)],
    [
      new RegExp(`^/api/runs/${seg}/iterations/${int}$`),
      (s, [run, it], q) => iterationDetail(s, run!, Number(it), q),
    ],
    [
      new RegExp(`^/api/runs/${seg}/iterations/${int}/groups/${seg}/trajectories/${seg}$`),
      (s, [runId, it, groupId, trajectoryId]) =>
        trajectoryDetail(
          s,
          { runId: runId!, iteration: Number(it), groupId: groupId!, trajectoryId: trajectoryId! },
          decode,
        ),
    ],
  ];
  let bundle: Bundle;
  try {
    bundle = await bundlePage();
  } catch (err) {
    store.close();
    throw err;
  }

  const server: Server = createServer((req, res) => {
    let reply: Reply;
    try {
      reply = respond(req);
    } catch (err) {
      reply = errorReply(err);
    }
    res.writeHead(reply.status, { 'content-type': reply.type, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : reply.body);
  });

  function respond(req: IncomingMessage): Reply {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return jsonReply(405, { error: `${req.method} is not supported; use GET` });
    }
    const url = new URL(req.url ?? '/', 'http://viewer');
    const path = url.pathname;
    if (path === '/' || path === '/index.html') return { status: 200, type: HTML, body: bundle.html };
    if (path === '/app.js') return { status: 200, type: 'text/javascript; charset=utf-8', body: bundle.js };
    if (path === '/app.css') return { status: 200, type: 'text/css; charset=utf-8', body: bundle.css };
    if (path === '/favicon.ico') return { status: 204, type: 'image/x-icon', body: '' };
    if (path.startsWith('/api/')) {
      for (const [re, handler] of routes) {
        const m = re.exec(path);
        if (!m) continue;
        const params = m.slice(1).map(decodeURIComponent);
        // One read transaction per request: one consistent snapshot of a store being written.
        return jsonReply(
          200,
          store.transaction(() => handler(store, params, url.searchParams)),
        );
      }
      throw new NotFound(`no API route ${path}`);
    }
    // Any other path: the page, whose router shows its own "not found" view.
    return { status: 404, type: HTML, body: bundle.html };
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7007, options.host ?? '127.0.0.1', () => resolve());
  }).catch((err: NodeJS.ErrnoException) => {
    store.close();
    if (err.code === 'EADDRINUSE')
      throw new Error(`port ${options.port} is in use; pick another with --port (0 for any free port)`);
    throw err;
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    store,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          store.close();
          resolve();
        });
      }),
  };
}

interface Reply {
  status: number;
  type: string;
  body: string;
}

const HTML = 'text/html; charset=utf-8';

function jsonReply(status: number, body: unknown): Reply {
  return { status, type: 'application/json', body: JSON.stringify(body) };
}

function errorReply(err: unknown): Reply {
  const status = err instanceof NotFound || err instanceof BadRequest ? err.status : 500;
  const message = err instanceof Error ? err.message : String(err);
  // A corrupt page of the file shows up here (SQLITE_CORRUPT): say so instead of a stack trace.
  const error = /malformed|not a database|corrupt/i.test(message)
    ? `the store file is corrupt or not a stepwise store: ${message}`
    : message;
  return jsonReply(status, { error });
}
