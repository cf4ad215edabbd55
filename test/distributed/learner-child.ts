/**
 * A learner process of the distributed test: trains the door family with the config in the JSON
 * file argv[2], rollouts as jobs. Once iteration argv[3]'s rollout has returned (its trajectories
 * staged, nothing of the iteration stored), it says "mid" on stdout and blocks until the parent
 * kills it with SIGKILL.
 */
import { readFileSync, writeSync } from 'node:fs';
import { queueRollout } from '../../src/distributed/learner.ts';
import { train } from '../../src/training/trainer.ts';
import { doorHooks } from '../training/helpers.ts';

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const killAt = Number(process.argv[3]);
const jobs = queueRollout({ leaseSeconds: 3, maintenanceSeconds: 1, pollMs: 100 });
await train(config, {
  ...doorHooks,
  log: (line) => writeSync(1, `${line}\n`),
  rollout: async (ctx, it, dir) => {
    const result = await jobs(ctx, it, dir);
    if (it === killAt) {
      writeSync(1, 'mid\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
    }
    return result;
  },
});
writeSync(1, 'finished\n');
