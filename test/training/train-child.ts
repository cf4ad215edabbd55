/**
 * Child process of the resume test: trains the door family with the config in the JSON file
 * argv[2]. Once the rollout of iteration argv[3] has returned (the iteration is under way, nothing
 * of it stored), it says "mid" on stdout and blocks until the parent kills it with SIGKILL.
 */
import { readFileSync, writeSync } from 'node:fs';
import { train } from '../../src/training/trainer.ts';
import { watchedDoorFamily } from './resume-helpers.ts';

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const killAt = Number(process.argv[3]);
const family = await watchedDoorFamily(config, {
  after(_, n) {
    if (n !== killAt) return;
    writeSync(1, 'mid\n');
    // Block the whole process (no timer, no I/O runs) until the kill; a parent that never kills
    // lets the run go on after a minute, which its test then reports.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  },
});
await train(config, { family, log: (line) => writeSync(1, `${line}\n`) });
writeSync(1, 'finished\n');
