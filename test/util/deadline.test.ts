/** `withDeadline` and its parts: the answer comes on time even when the work ignores its signal. */
import { describe, expect, it } from 'vitest';
import { DeadlineError, deadlineSignal, untilAborted, withDeadline } from '../../src/util/deadline.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('withDeadline', () => {
  it('returns what the work returns when it finishes in time', async () => {
    await expect(withDeadline(1000, async () => 'done')).resolves.toBe('done');
  });

  it('rejects with a DeadlineError at the limit although the work ignores its signal', async () => {
    let signal: AbortSignal | undefined;
    const started = Date.now();
    const run = withDeadline(30, async (s) => {
      signal = s;
      await sleep(2000);
      return 'late';
    });
    await expect(run).rejects.toBeInstanceOf(DeadlineError);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(signal?.aborted).toBe(true);
  });

  it("uses the caller's reason, and the parent's reason when the parent aborts first", async () => {
    await expect(
      withDeadline(
        10,
        () => sleep(1000),
        undefined,
        () => new Error('too slow'),
      ),
    ).rejects.toThrow('too slow');
    const parent = new AbortController();
    const run = withDeadline(5000, () => sleep(1000), parent.signal);
    parent.abort(new Error('stopped by the caller'));
    await expect(run).rejects.toThrow('stopped by the caller');
  });

  it("passes the work's own error through", async () => {
    await expect(
      withDeadline(1000, async () => {
        throw new Error('broken');
      }),
    ).rejects.toThrow('broken');
  });
});

describe('deadlineSignal and untilAborted', () => {
  it('one limit over several calls', async () => {
    const limit = deadlineSignal(40);
    await expect(
      untilAborted(
        sleep(5).then(() => 1),
        limit.signal,
      ),
    ).resolves.toBe(1);
    await expect(untilAborted(sleep(2000), limit.signal)).rejects.toThrow(/time limit of 40 ms passed/);
    await expect(untilAborted(Promise.resolve(2), limit.signal)).rejects.toBeInstanceOf(DeadlineError);
    limit.clear();
  });

  it('clear stops the timer', async () => {
    const limit = deadlineSignal(10);
    limit.clear();
    await sleep(30);
    expect(limit.signal.aborted).toBe(false);
  });
});
