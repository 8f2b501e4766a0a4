/**
 * When to try again: pure functions, so the schedule is tested without clocks.
 *
 * Success waits one refresh interval ± jitter (so many sidecars don't poll in step). Failure backs
 * off exponentially from 1 s, doubling, with ±20 % jitter, capped at `min(backoffMax, interval)`,
 * so an outage is retried at least once per interval. A 429's retry-after is honoured in full,
 * even past that cap (asking earlier only earns another 429), up to `retryAfterMaxMs`
 * (SIDECAR_RETRY_AFTER_MAX, 1 h by default): a wrong or hostile header asking for weeks must not
 * park the sidecar, nor overflow a timer (src/timers.ts).
 */
import type { SidecarError } from '../errors.js';

export interface RetryPolicy {
  readonly refreshIntervalMs: number;
  readonly refreshJitter: number;
  readonly backoffMaxMs: number;
  /** The longest retry-after honoured; a longer one is cut to this. */
  readonly retryAfterMaxMs: number;
  readonly backoffBaseMs?: number;
}

const BACKOFF_JITTER = 0.2;

/** Delay before the next refresh after a success. `random` is injectable for tests. */
export function nextRefreshDelay(policy: RetryPolicy, random: () => number = Math.random): number {
  return Math.round(policy.refreshIntervalMs * (1 + policy.refreshJitter * (random() * 2 - 1)));
}

/** Delay before attempt `failures + 1` after `failures` consecutive failures (failures ≥ 1). */
export function backoffDelay(failures: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = policy.backoffBaseMs ?? 1_000;
  const cap = Math.min(policy.backoffMaxMs, policy.refreshIntervalMs);
  const exponential = Math.min(cap, base * 2 ** Math.max(0, failures - 1));
  return Math.round(Math.min(cap, exponential * (1 + BACKOFF_JITTER * (random() * 2 - 1))));
}

/** The server's retry-after, cut to `retryAfterMaxMs`; undefined when it gave none. */
export function retryAfterWait(error: SidecarError | undefined, policy: RetryPolicy): number | undefined {
  return error?.retryAfterMs === undefined ? undefined : Math.min(error.retryAfterMs, policy.retryAfterMaxMs);
}

/** The wait after a failed sync: retry-after (cut) when the server gave one, else the backoff. */
export function delayAfterFailure(error: SidecarError, failures: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const backoff = backoffDelay(failures, policy, random);
  return Math.max(retryAfterWait(error, policy) ?? 0, backoff);
}
