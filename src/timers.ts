/**
 * The one rule for timer delays. Node's timers (`setTimeout`, `node:timers/promises`,
 * `AbortSignal.timeout`) hold at most 2^31−1 ms, about 24.8 days; a longer delay fires after 1 ms
 * with a TimeoutOverflowWarning, which turns a long wait into a tight loop. Configured durations are
 * bounded far below this (src/config/schema.ts) and a server's retry-after is cut
 * (src/sync/retry.ts); every timer still takes its delay through `timerDelay`, so no value can
 * overflow one. A leaf: imports nothing.
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
