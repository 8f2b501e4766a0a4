/**
 * Time, in one place: the clock every stage reads and waits on, and the one rule for timer delays.
 *
 * Every stage that reads the time or waits takes a `Clock` (default `systemClock`), so a test can
 * drive the whole sidecar on a clock it moves itself (test/helpers/clock.ts) and assert a backoff, a
 * deadline or a staleness bound exactly, whatever else the machine is doing. I/O stays real.
 *
 * Node's timers (`setTimeout`, `node:timers/promises`, `AbortSignal.timeout`) hold at most 2^31−1 ms,
 * about 24.8 days; a longer delay fires after 1 ms with a TimeoutOverflowWarning, which turns a long
 * wait into a tight loop. Configured durations are bounded far below this (src/config/schema.ts) and a
 * server's retry-after is cut (src/sync/retry.ts); every timer still takes its delay through
 * `timerDelay`, so no value can overflow one. A leaf: imports nothing.
 */

/** The longest delay a Node timer holds: 2^31−1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * `ms` as a delay every Node timer keeps: whole, from 0 to MAX_TIMER_MS (NaN counts as 0). A wait
 * that may be longer must loop and wait again for the rest, as `sync/loop.ts` does.
 */
export function timerDelay(ms: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(ms) || 0));
}

export interface ScheduleOptions {
  /** The timer alone does not keep the process alive (Node's `unref`). */
  readonly unref?: boolean;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now (through `timerDelay`); the function returned cancels it. */
  schedule(ms: number, fn: () => void, options?: ScheduleOptions): () => void;
}

/** The wall clock and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(ms, fn, options = {}) {
    const timer = setTimeout(fn, timerDelay(ms));
    if (options.unref) timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * Resolves `ms` from now on `clock`; rejects with the signal's reason if it aborts first (as
 * `node:timers/promises` does). Keeps the process alive while it waits.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      cancel();
      reject(signal!.reason);
    };
    const cancel = clock.schedule(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A signal that aborts `ms` from now on `clock` with a TimeoutError, like `AbortSignal.timeout` (which never keeps the process alive either). */
export function timeoutSignal(clock: Clock, ms: number): AbortSignal {
  if (clock === systemClock) return AbortSignal.timeout(timerDelay(ms));
  const controller = new AbortController();
  clock.schedule(ms, () => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), { unref: true });
  return controller.signal;
}
