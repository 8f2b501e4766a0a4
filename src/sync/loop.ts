/**
 * The refresh loop for `run`, and the bounded retry for `once`.
 *
 * Every wait is cancellable (shutdown) and can be cut short by `trigger()` (webhook push, a file
 * someone deleted). Triggers coalesce: any number arriving during a pass cause one more pass, and
 * never earlier than `minTriggerGapMs` after the previous one, nor during a 429's retry-after, so a
 * burst cannot make the sidecar hammer Infisical. The wait loops on the clock, so a timer clamped by
 * `timerDelay` (or woken early) only costs one more turn.
 */
import { SidecarError } from '../errors.js';
import { sleep, systemClock, timeoutSignal, type Clock } from '../timers.js';
import { delayAfterFailure, nextRefreshDelay, retryAfterWait, type RetryPolicy } from './retry.js';
import type { SyncOutcome } from './sync-once.js';

export interface LoopOptions {
  readonly policy: RetryPolicy;
  readonly syncOnce: (signal: AbortSignal) => Promise<SyncOutcome>;
  /** Called after every pass, with when the next one is due. */
  readonly onOutcome: (outcome: SyncOutcome, nextAttemptAt: number | undefined) => void;
  readonly signal: AbortSignal;
  readonly minTriggerGapMs?: number;
  readonly clock?: Clock;
}

export interface RefreshLoop {
  /** Resolves when the signal aborts and the pass in flight (if any) has finished. */
  readonly done: Promise<void>;
  /** Asks for a pass as soon as allowed (coalesced); the reason is for the caller's logs. */
  trigger(reason: string): void;
}

export function startRefreshLoop(options: LoopOptions): RefreshLoop {
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const minGap = options.minTriggerGapMs ?? 1_000;
  let pending = false;
  let wake: (() => void) | undefined;
  let honourUntil = 0; // no triggered pass before this time (429 retry-after, minimum gap)

  const trigger = (): void => {
    pending = true;
    wake?.();
  };

  /** Sleeps until `ms` passes, the loop is stopped, or a trigger is allowed to fire. */
  async function wait(ms: number): Promise<void> {
    const deadline = now() + ms;
    while (!options.signal.aborted) {
      const earliestTriggered = Math.max(honourUntil, now());
      if (pending && earliestTriggered < deadline) {
        await sleep(clock, earliestTriggered - now(), options.signal).catch(() => undefined);
        return;
      }
      const remaining = deadline - now();
      if (remaining <= 0) return;
      // Ends at the deadline, at a trigger or at the stop, whichever comes first; the timer goes with it.
      await new Promise<void>((resolve) => {
        const end = () => {
          cancel();
          options.signal.removeEventListener('abort', end);
          wake = undefined;
          resolve();
        };
        const cancel = clock.schedule(remaining, end);
        wake = end;
        options.signal.addEventListener('abort', end, { once: true });
      });
    }
  }

  const done = (async () => {
    let failures = 0;
    while (!options.signal.aborted) {
      pending = false;
      const outcome = await options.syncOnce(options.signal);
      if (options.signal.aborted) {
        // Still reported: a pass that wrote a new set before the stop must reach the reload actions
        // (they run before exit), and one cut short is logged as such.
        options.onOutcome(outcome, undefined);
        break;
      }
      let delay: number;
      // Files written from the cache are no success with Infisical, and a password PostgreSQL has not
      // taken yet is a change still owed: keep retrying either with the backoff.
      const failure = outcome.ok ? (outcome.fromCache?.fetchError ?? outcome.roleSync?.pending) : (outcome.error ?? new SidecarError('SIDECAR_UNEXPECTED', 'sync failed'));
      if (failure === undefined) {
        failures = 0;
        delay = nextRefreshDelay(options.policy);
        honourUntil = now() + minGap;
      } else {
        failures++;
        delay = delayAfterFailure(failure, failures, options.policy);
        honourUntil = now() + Math.max(minGap, retryAfterWait(failure, options.policy) ?? 0);
      }
      options.onOutcome(outcome, now() + delay);
      await wait(delay);
    }
  })();

  return { done, trigger };
}

/**
 * `once`: retry retryable failures with backoff until one pass succeeds, a failure needs an
 * operator (auth, 404, missing key), or the deadline passes.
 */
export async function syncUntilDone(options: {
  readonly policy: RetryPolicy;
  readonly deadlineMs: number;
  readonly syncOnce: (signal: AbortSignal) => Promise<SyncOutcome>;
  readonly onOutcome: (outcome: SyncOutcome) => void;
  readonly signal?: AbortSignal;
  /** What the deadline message names, when `deadlineMs` is what is left of a longer one (default `deadlineMs`). */
  readonly configuredDeadlineMs?: number;
  readonly clock?: Clock;
}): Promise<SyncOutcome> {
  const clock = options.clock ?? systemClock;
  const named = options.configuredDeadlineMs ?? options.deadlineMs;
  const deadline = timeoutSignal(clock, options.deadlineMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let failures = 0;
  let previous: SyncOutcome | undefined;
  for (;;) {
    const outcome = await options.syncOnce(signal);
    options.onOutcome(outcome);
    if (outcome.ok) return outcome;
    // A pass cut short by the deadline says only "cancelled": report the one before it, if any.
    if (deadline.aborted) return deadlineOutcome(previous ?? outcome, named);
    previous = outcome;
    if (!outcome.error?.retryable || signal.aborted) return outcome;
    failures++;
    const delay = delayAfterFailure(outcome.error, failures, options.policy);
    const slept = await sleep(clock, delay, signal).then(() => true, () => false);
    if (!slept) return deadline.aborted ? deadlineOutcome(outcome, named) : outcome;
  }
}

function deadlineOutcome(last: SyncOutcome, deadlineMs: number): SyncOutcome {
  const cause = last.error;
  const error = new SidecarError(
    'SIDECAR_ONCE_DEADLINE',
    `no complete sync within ${formatDeadline(deadlineMs)}; last error: ${cause ? `${cause.code}: ${cause.message}` : 'none'}`,
    { cause },
  );
  return { ...last, ok: false, error };
}

/** "1s", "1.5s", "250ms": the deadline as configured, never rounded to "0s". */
function formatDeadline(ms: number): string {
  return ms < 1_000 ? `${ms}ms` : `${Number((ms / 1_000).toFixed(3))}s`;
}
