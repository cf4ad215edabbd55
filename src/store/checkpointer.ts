/**
 * Moves WAL checkpoints off the writer's thread. In WAL mode a commit only appends pages to the
 * -wal file; a checkpoint later copies them into the database file and fsyncs it. SQLite runs
 * that checkpoint inside the commit that crosses `wal_autocheckpoint`, which for an iteration of
 * tens of megabytes roughly doubles the time `writeIteration` blocks the trainer (measured: the
 * copy and fsync, mostly I/O wait). Here a worker thread with its own connection runs a PASSIVE
 * checkpoint after each commit, while the trainer goes on; SQLite allows a checkpointer and a
 * writer to work at the same time. The writer keeps a large automatic checkpoint as a safety net
 * in case the worker falls behind or dies.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain JavaScript evaluated in the worker (no TypeScript loader there).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 1000');
parentPort.on('message', (message) => {
  if (message === 'checkpoint') {
    // A busy database (another checkpoint running) is fine: the next commit's nudge retries.
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
  } else if (message === 'close') {
    db.close();
    // Tell the waiting writer (blocked in Atomics.wait) that this connection is gone.
    const done = new Int32Array(workerData.done);
    Atomics.store(done, 0, 1);
    Atomics.notify(done, 0);
    parentPort.close();
  }
});
`;

/** WAL size at which the writer checkpoints by itself: the safety net if the worker falls behind. */
export const SAFETY_NET_BYTES = 256 * 2 ** 20;

export class Checkpointer {
  private readonly worker: Worker;
  private readonly done = new Int32Array(new SharedArrayBuffer(4));

  constructor(path: string) {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { path, sqlite, done: this.done.buffer },
    });
    // Never keep the process alive for it; an interrupted checkpoint is safe in SQLite.
    this.worker.unref();
    // A worker that failed or exited will not answer `close`: mark it done so nobody waits for it.
    // Its checkpoints stop; the writer's safety-net checkpoint takes over and nothing is lost.
    const gone = () => Atomics.store(this.done, 0, 1);
    this.worker.on('error', gone);
    this.worker.on('exit', gone);
  }

  /** Asks for a checkpoint of what has been committed so far. */
  nudge(): void {
    this.worker.postMessage('checkpoint');
  }

  /**
   * Closes the worker's connection and waits for it (at most `timeoutMs`), so that the writer's
   * own close is the last one and removes the WAL file: a closed store is one plain file.
   */
  close(timeoutMs = 30_000): void {
    this.worker.postMessage('close');
    Atomics.wait(this.done, 0, 0, timeoutMs);
  }
}
