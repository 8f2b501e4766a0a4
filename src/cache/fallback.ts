/**
 * The last-known-good cache as the sync pass sees it (issue 15): store what a pass from Infisical
 * fetched, and answer a failed pass at cold start from the cache when `policy.ts` allows it. Holds
 * the one piece of state the policy needs: whether this process has already written a set.
 */
import { toSidecarError, type SidecarError } from '../errors.js';
import { sleep, systemClock, type Clock } from '../timers.js';
import type { CachedFolder } from './format.js';
import { decideFallback } from './policy.js';
import type { LastKnownGood, LoadedCache } from './store.js';

export interface CacheFallbackOptions {
  readonly store: LastKnownGood;
  /** SIDECAR_CACHE_FALLBACK_AFTER. */
  readonly fallbackAfterMs: number;
  /** The client secret configured now (re-read each time, so a rotated file counts): the key to read with. */
  readonly configuredClientSecret: () => string;
  /**
   * The client secret of the latest successful login, the key to write with: a secret Infisical
   * accepted, not one just put in the file. Undefined when a test client has no login.
   */
  readonly loggedInClientSecret: () => string | undefined;
  readonly clock?: Clock;
}

/** What `instead` found: the cache to write, or nothing (with the refusal to log, if the cache was refused). */
export type CacheAnswer = { readonly cache: LoadedCache } | { readonly cache: undefined; readonly refusal: SidecarError | undefined };

export interface CacheFallback {
  /**
   * A pass from Infisical wrote `folders`: store them (bounded, see store.ts) and stop offering the
   * cache to this process. Never throws: a write failure is returned for the caller to log.
   */
  confirmed(folders: readonly CachedFolder[], confirmedAt: number): Promise<SidecarError | undefined>;
  /**
   * A pass failed with `error`: the cache to write instead, when the policy allows it. An outage
   * younger than SIDECAR_CACHE_FALLBACK_AFTER is waited out here (cancellable by `signal`).
   */
  instead(error: SidecarError, signal?: AbortSignal): Promise<CacheAnswer>;
  /** The set read from the cache is on the volume: later failures keep it rather than rewrite it. */
  served(): void;
  /**
   * The latest authentic cache whatever its age, or undefined (none, or refused): PostgreSQL role
   * sync reads the password the role had before a reboot from it (src/postgres/), and serves it
   * while a change made during the reboot waits. Infisical answered on that path, so the age limit,
   * which bounds how long a cut-off identity keeps serving, does not apply.
   */
  latest(): Promise<LoadedCache | undefined>;
}

export function createCacheFallback(options: CacheFallbackOptions): CacheFallback {
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const startedAt = now();
  let servedThisProcess = false;
  const ask = (error: SidecarError) =>
    decideFallback({ error, servedThisProcess, sinceStartMs: now() - startedAt, fallbackAfterMs: options.fallbackAfterMs });

  return {
    async confirmed(folders, confirmedAt) {
      servedThisProcess = true;
      const clientSecret = options.loggedInClientSecret();
      if (clientSecret === undefined) return undefined;
      try {
        await options.store.save(folders, clientSecret, confirmedAt);
        return undefined;
      } catch (error) {
        return toSidecarError(error);
      }
    },
    async instead(error, signal) {
      let decision = ask(error);
      if (decision.action === 'never' && decision.reason === 'refused-by-infisical') {
        // Infisical said no to this identity: the copy must not outlive that answer (a later outage
        // would otherwise serve a revoked identity's secrets).
        return { cache: undefined, refusal: await options.store.forget() };
      }
      if (decision.action === 'wait') {
        const waited = await sleep(clock, decision.waitMs, signal).then(() => true, () => false);
        if (!waited) return { cache: undefined, refusal: undefined };
        decision = ask(error);
      }
      if (decision.action !== 'use-cache') return { cache: undefined, refusal: undefined };
      const read = await options.store.load(options.configuredClientSecret());
      if (read.status === 'loaded') return { cache: read };
      return { cache: undefined, refusal: read.status === 'refused' ? read.error : undefined };
    },
    served() {
      servedThisProcess = true;
    },
    async latest() {
      const read = await options.store.readLatest(options.configuredClientSecret()).catch(() => undefined);
      return read?.status === 'loaded' ? read : undefined;
    },
  };
}
