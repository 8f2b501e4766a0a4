/**
 * When the next Universal Auth login may go out after Infisical refused the credentials.
 *
 * Infisical locks an identity's Universal Auth for 5 minutes after 3 refused logins within 30 s (on
 * by default, docs/infisical-api.md §1.1), and while it is locked even the right secret is refused.
 * So a refused login is repeated only after 1 min, doubling up to 5 min; a changed credential file
 * may be tried sooner, but only while the lockout window (with a margin for clocks and latency)
 * holds at most one refusal: 3 refusals never fall within one window.
 *
 * Pure bookkeeping with an injectable clock; the client asks `heldUntil()` before each login.
 */

/** Infisical's default lockout: `failures` refused logins within `windowMs` lock the identity for `durationMs`. */
export const LOCKOUT = Object.freeze({ failures: 3, windowMs: 30_000, durationMs: 300_000 });
/** Added to the window, for the gap between our clock and the moment the server counts a request. */
const WINDOW_MARGIN_MS = 10_000;
/** Longer than the window and its margin, so scheduled retries never share a window. */
const FIRST_WAIT_MS = 60_000;
/** The lockout's own length: a lock someone else caused is over by the next try. */
const MAX_WAIT_MS = LOCKOUT.durationMs;

export class LoginBackoff {
  /** Times of the latest refusals, newest last; only as many as the window rule needs. */
  private refusedAt: number[] = [];
  /** Refusals since the last successful login. */
  private consecutive = 0;
  /** A credential file changed since the last login attempt. */
  private changed = false;

  constructor(private readonly now: () => number) {}

  /** When the next login may go out; `undefined` when it may go out now. */
  heldUntil(): number | undefined {
    const last = this.refusedAt.at(-1);
    if (this.consecutive === 0 || last === undefined) return undefined;
    let next = last + Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** (this.consecutive - 1));
    if (this.changed) {
      // One more refusal may be risked once the oldest of the last `failures - 1` has left the window.
      const oldestThatCounts = this.refusedAt.at(-(LOCKOUT.failures - 1));
      next = Math.min(next, oldestThatCounts === undefined ? 0 : oldestThatCounts + LOCKOUT.windowMs + WINDOW_MARGIN_MS);
    }
    return next > this.now() ? next : undefined;
  }

  /** A login is about to go out: it reads the credential files as they are now. */
  attempted(): void {
    this.changed = false;
  }

  refused(): void {
    this.refusedAt = [...this.refusedAt, this.now()].slice(-(LOCKOUT.failures - 1));
    this.consecutive++;
  }

  /** The refusal times stay: they still count in Infisical's window. */
  succeeded(): void {
    this.consecutive = 0;
  }

  credentialsChanged(): void {
    this.changed = true;
  }
}
