/** `mapConcurrent`: order, the bound on calls in flight, and stop-on-first-error. */
import { describe, expect, it } from 'vitest';
import { checkConcurrency, mapConcurrent } from '../../src/util/concurrent.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('mapConcurrent', () => {
  it('keeps input order and never has more than `concurrency` calls in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapConcurrent(
      [5, 1, 4, 2, 3, 0],
      async (x, i) => {
        inFlight++;
        most = Math.max(most, inFlight);
        for (let k = 0; k < x; k++) await tick();
        inFlight--;
        return x * 10 + i;
      },
      2,
    );
    expect(out).toEqual([50, 11, 42, 23, 34, 5]);
    expect(most).toBe(2);
  });

  it('runs everything at once by default', async () => {
    let most = 0;
    let inFlight = 0;
    await mapConcurrent(Array.from({ length: 7 }), async () => {
      most = Math.max(most, ++inFlight);
      await tick();
      inFlight--;
    });
    expect(most).toBe(7);
  });

  it('starts nothing after the first failure and throws it once the calls in flight have settled', async () => {
    const started: number[] = [];
    let settled = 0;
    const run = mapConcurrent(
      [0, 1, 2, 3, 4, 5],
      async (i) => {
        started.push(i);
        await tick();
        if (i === 1) throw new Error('item 1 failed');
        await tick();
        settled++;
        return i;
      },
      2,
    );
    await expect(run).rejects.toThrow('item 1 failed');
    expect(started).toEqual([0, 1]);
    expect(settled).toBe(1); // item 0 finished before the rejection reached the caller
  });

  it('refuses a concurrency that is not a positive integer', async () => {
    await expect(mapConcurrent([1], async (x) => x, 0)).rejects.toThrow(
      /mapConcurrent: concurrency must be a positive integer, got 0/,
    );
    expect(() => checkConcurrency(1.5, 'rollout')).toThrow(
      /^rollout: concurrency must be a positive integer/,
    );
    expect(() => checkConcurrency(undefined, 'rollout')).not.toThrow();
  });
});
