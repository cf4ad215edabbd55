/**
 * `mapConcurrent`: a function over a list with a bound on the calls in flight, the one worker pool
 * every rollout, replay and env pool uses.
 */

/**
 * `f` over `items` with at most `concurrency` calls in flight (default: all at once); results in
 * input order. The first failure stops new calls from starting and is thrown once the calls in
 * flight have settled, so nothing is left running behind the caller's back.
 */
export async function mapConcurrent<I, O>(
  items: readonly I[],
  f: (item: I, index: number) => Promise<O>,
  concurrency: number = Math.max(1, items.length),
): Promise<O[]> {
  checkConcurrency(concurrency, 'mapConcurrent');
  const out = new Array<O>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await f(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(concurrency, items.length) }, worker),
  );
  const failure = settled.find((r) => r.status === 'rejected');
  if (failure) throw failure.reason;
  return out;
}

/** Throws `<owner>: concurrency must be a positive integer` unless it is one (an API's early check). */
export function checkConcurrency(concurrency: number | undefined, owner: string): void {
  if (concurrency === undefined) return;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`${owner}: concurrency must be a positive integer, got ${concurrency}`);
  }
}
