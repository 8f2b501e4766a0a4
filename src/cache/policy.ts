/**
 * When a failed pass may be answered from the last-known-good cache (issue 15). Pure: the failure,
 * the clock and the settings in; a decision out.
 *
 * The cache stands in only for an outage, never for a refusal: a revoked identity must stop
 * serving secrets as soon as Infisical says so. Infisical's answers are classified once, by
 * `src/infisical/client.ts` (`codeForStatus`); this reads those codes:
 *
 * - outage → the cache may be used: nothing answered or the request timed out
 *   (SIDECAR_FETCH_TIMEOUT, SIDECAR_FETCH_UNAVAILABLE without a status), a server error or a body
 *   that is not Infisical's (SIDECAR_FETCH_UNAVAILABLE with a 5xx, or a 200 that is not the secrets
 *   list), 429 (SIDECAR_FETCH_RATE_LIMITED), a 404 that is not Infisical's JSON error envelope
 *   (SIDECAR_SITE_URL_WRONG: a reverse proxy's page while a self-hosted Infisical starts — the
 *   cache's scope holds the site URL, so a cache exists only for a URL that once led to Infisical).
 * - refusal → never: a refused login (SIDECAR_AUTH_INVALID_CREDENTIALS: 401, unknown client id),
 *   access denied after a fresh login (SIDECAR_AUTH_FORBIDDEN: 401/403). The client does not tell an
 *   Infisical 401/403 from a proxy's, so a proxy's 401/403 page blocks the cache too: fail closed.
 * - Infisical's own answer → never: 404 with its envelope (SIDECAR_FETCH_NOT_FOUND) and 400/422
 *   (SIDECAR_FETCH_REJECTED) say the configuration is wrong, which a cache would hide.
 * - anything else (a missing required key, a template, the volume, the lease, a stop) is not about
 *   reaching Infisical: the cache would not help, or would hide the problem.
 */
import type { ErrorCode, SidecarError } from '../errors.js';

const OUTAGE_CODES: ReadonlySet<ErrorCode> = new Set(['SIDECAR_FETCH_UNAVAILABLE', 'SIDECAR_FETCH_TIMEOUT', 'SIDECAR_FETCH_RATE_LIMITED', 'SIDECAR_SITE_URL_WRONG']);
/** Infisical said no to this identity: the cache is never used, and is deleted. */
export const REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set(['SIDECAR_AUTH_INVALID_CREDENTIALS', 'SIDECAR_AUTH_FORBIDDEN']);
const INFISICAL_ANSWER_CODES: ReadonlySet<ErrorCode> = new Set(['SIDECAR_FETCH_NOT_FOUND', 'SIDECAR_FETCH_REJECTED']);

export interface FallbackQuestion {
  /** Why the pass failed (the most severe folder error when several failed). */
  readonly error: Pick<SidecarError, 'code'>;
  /** Whether this process already wrote a set, from Infisical or from the cache: then the volume holds newer or equal content. */
  readonly servedThisProcess: boolean;
  /** Time since the process started. */
  readonly sinceStartMs: number;
  /** SIDECAR_CACHE_FALLBACK_AFTER: how long an outage lasts before the cache is used. */
  readonly fallbackAfterMs: number;
}

export type NoFallbackReason = 'already-served' | 'refused-by-infisical' | 'answered-by-infisical' | 'not-an-outage';

export type FallbackDecision =
  | { readonly action: 'use-cache' }
  /** An outage, but younger than SIDECAR_CACHE_FALLBACK_AFTER: ask again after `waitMs`. */
  | { readonly action: 'wait'; readonly waitMs: number }
  | { readonly action: 'never'; readonly reason: NoFallbackReason };

export function decideFallback(question: FallbackQuestion): FallbackDecision {
  // A refusal comes first whatever was served: it is what makes the caller delete the copy.
  const { code } = question.error;
  if (REFUSAL_CODES.has(code)) return { action: 'never', reason: 'refused-by-infisical' };
  if (question.servedThisProcess) return { action: 'never', reason: 'already-served' };
  if (INFISICAL_ANSWER_CODES.has(code)) return { action: 'never', reason: 'answered-by-infisical' };
  if (!OUTAGE_CODES.has(code)) return { action: 'never', reason: 'not-an-outage' };
  const waitMs = question.fallbackAfterMs - question.sinceStartMs;
  return waitMs > 0 ? { action: 'wait', waitMs } : { action: 'use-cache' };
}
