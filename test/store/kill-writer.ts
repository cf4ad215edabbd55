/**
 * Child process for the crash test: writes iterations 0 and 1, then starts iteration 2, says
 * "mid" on stdout halfway through its transaction and waits to be killed.
 */
import { writeSync } from 'node:fs';
import { isPostgresUrl, openSqliteStore, openStore, SqliteStore } from '../../src/store/index.ts';
import { sampleGroups } from './sample.ts';

const [file, groups] = [process.argv[2]!, Number(process.argv[3] ?? 8)];
// A PostgreSQL store (a URL) is killed the same way: its open transaction dies with the connection.
const store = isPostgresUrl(file) ? openStore(file) : openSqliteStore(file);
// A tiny page cache makes SQLite spill the open transaction's pages into the WAL file, so the
// kill happens with uncommitted frames on disk, the case recovery has to get right.
if (store instanceof SqliteStore) store.db.pragma('cache_size = 16');
store.createRun('r');
store.writeIteration('r', { iteration: 0, groups: sampleGroups(groups, 4), metrics: { loss: 1 } });
store.writeIteration('r', { iteration: 1, groups: sampleGroups(groups, 4), metrics: { loss: 0.5 } });
store.writeIteration(
  'r',
  { iteration: 2, groups: sampleGroups(groups, 4), metrics: { loss: 0.25 } },
  {
    onGroupWritten: (i) => {
      if (i !== Math.floor(groups / 2)) return;
      writeSync(1, 'mid\n');
      // Block this thread (inside the transaction) until the parent kills the process.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
    },
  },
);
writeSync(1, 'finished\n');
