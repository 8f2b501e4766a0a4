import { describe, expect, it } from 'vitest';
import { FetchError } from '../src/errors.js';
import { backoffDelay, delayAfterFailure, nextRefreshDelay } from '../src/sync/retry.js';

const policy = { refreshIntervalMs: 300_000, refreshJitter: 0.1, backoffMaxMs: 60_000, retryAfterMaxMs: 3_600_000 };
const middle = () => 0.5;

describe('retry policy', () => {
  it('spreads refreshes by ± the jitter fraction', () => {
    expect(nextRefreshDelay(policy, () => 0)).toBe(270_000);
    expect(nextRefreshDelay(policy, middle)).toBe(300_000);
    expect(nextRefreshDelay(policy, () => 1)).toBe(330_000);
  });

  it('doubles from 1 s and caps at the smaller of backoffMax and the interval', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, policy, middle))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
    expect(backoffDelay(10, { ...policy, refreshIntervalMs: 5_000 }, middle)).toBe(5_000);
    expect(backoffDelay(1, policy, () => 0)).toBe(800);
    expect(backoffDelay(20, policy, () => 1)).toBe(60_000);
  });

  it("honours a 429's retry-after in full, even past the backoff cap", () => {
    const limited = new FetchError('SIDECAR_FETCH_RATE_LIMITED', '429', { retryable: true, retryAfterMs: 120_000 });
    expect(delayAfterFailure(limited, 1, policy, middle)).toBe(120_000);
    const unavailable = new FetchError('SIDECAR_FETCH_UNAVAILABLE', '503', { retryable: true });
    expect(delayAfterFailure(unavailable, 3, policy, middle)).toBe(4_000);
  });

  it("cuts a 429's retry-after to SIDECAR_RETRY_AFTER_MAX, however long the server asks for", () => {
    // retry-after: 3000000 (34 days) is past what a Node timer holds; it used to fire after 1 ms.
    const hostile = new FetchError('SIDECAR_FETCH_RATE_LIMITED', '429', { retryable: true, retryAfterMs: 3_000_000_000 });
    expect(delayAfterFailure(hostile, 1, policy, middle)).toBe(3_600_000);
    expect(delayAfterFailure(hostile, 1, { ...policy, retryAfterMaxMs: 1_000 }, middle)).toBe(1_000);
  });
});
