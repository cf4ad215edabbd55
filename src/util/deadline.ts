/**
 * Deadlines that hold even when the work ignores its abort signal: `withDeadline` for one call,
 * `deadlineSignal` + `untilAborted` for a limit that spans several calls.
 */

/** The reason a deadline's signal aborts with. */
export class DeadlineError extends Error {
  constructor(
    readonly ms: number,
    message = `time limit of ${ms} ms passed`,
  ) {
    super(message);
    this.name = 'DeadlineError';
  }
}

/**
 * A signal that aborts after `ms` (with `reason`, by default a `DeadlineError`) or when `parent`
 * aborts (with the parent's reason); `clear` stops its timer and lets go of the parent.
 */
export function deadlineSignal(
  ms: number,
  parent?: AbortSignal,
  reason: () => unknown = () => new DeadlineError(ms),
): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(reason()), ms);
  const onParent = () => controller.abort(parent?.reason);
  if (parent?.aborted) onParent();
  else parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}

/** `work`, or a rejection with the signal's reason if it aborts first (the work is left to settle alone). */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {}); // settles unobserved
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Runs `work(signal)` for at most `ms`, or until `parent` aborts. The signal aborts at the deadline
 * (with `reason`, by default a `DeadlineError`) or with the parent, and the promise rejects with
 * that reason at once: the caller gets its answer in time even if `work` ignores the signal.
 */
export async function withDeadline<T>(
  ms: number,
  work: (signal: AbortSignal) => Promise<T>,
  parent?: AbortSignal,
  reason?: () => unknown,
): Promise<T> {
  const limit = deadlineSignal(ms, parent, reason);
  try {
    return await untilAborted(work(limit.signal), limit.signal);
  } finally {
    limit.clear();
  }
}
