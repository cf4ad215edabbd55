/**
 * A worker process of the distributed test: `runWorker` on the store argv[2] with the door family
 * (the learner's hooks). With argv[3] = 'hold', it says "holding" on stdout as its first job
 * starts and blocks there until the parent kills it with SIGKILL (the job's lease then expires
 * and another worker runs it). On SIGTERM it stops and prints its summary as JSON.
 */
import { writeSync } from 'node:fs';
import { runWorker } from '../../src/distributed/worker.ts';
import { doorHooks } from '../training/helpers.ts';

const [db, mode] = [process.argv[2]!, process.argv[3]];
const stop = new AbortController();
process.once('SIGTERM', () => stop.abort());
const summary = await runWorker({
  db,
  concurrency: 1,
  hooks: doorHooks,
  signal: stop.signal,
  log: (line) => writeSync(1, `${line}\n`),
  onJob: () => {
    if (mode !== 'hold') return;
    writeSync(1, 'holding\n');
    // Block the whole process inside the job (no heartbeat, no I/O) until the kill.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
  },
});
writeSync(1, `summary ${JSON.stringify(summary)}\n`);
process.exit(0);
