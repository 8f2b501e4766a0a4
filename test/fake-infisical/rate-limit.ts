/**
 * A fixed-window request counter per key (client IP), as @fastify/rate-limit keeps it with
 * Infisical's settings: the window starts at a key's first request and lasts the whole period, so
 * the time left (what `retry-after` and `x-ratelimit-reset` carry) counts down from the first hit.
 */

export interface WindowState {
  allowed: boolean;
  /** Requests left in this window after this one. */
  remaining: number;
  /** Whole seconds until the window ends, rounded up. */
  resetSeconds: number;
}

export class FixedWindowLimiter {
  private readonly windows = new Map<string, { startedAt: number; count: number }>();

  constructor(
    readonly limit: number,
    private readonly windowMs: number,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`rate limit must be a positive integer, got ${limit}`);
  }

  /** Counts one request from `key` at `now` (epoch ms). */
  take(key: string, now: number): WindowState {
    let window = this.windows.get(key);
    if (window === undefined || now >= window.startedAt + this.windowMs) {
      window = { startedAt: now, count: 0 };
      this.windows.set(key, window);
    }
    window.count++;
    const resetSeconds = Math.ceil((window.startedAt + this.windowMs - now) / 1000);
    return { allowed: window.count <= this.limit, remaining: Math.max(0, this.limit - window.count), resetSeconds };
  }

  clear(): void {
    this.windows.clear();
  }
}
