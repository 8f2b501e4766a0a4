/**
 * The cache stage as the composition root sees it: built from the config when SIDECAR_CACHE_DIR is
 * set, nothing otherwise.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock } from '../timers.js';
import { createCacheFallback, type CacheFallback } from './fallback.js';
import { cacheScopeOf, createLastKnownGood, prepareCacheDir, readCacheKeyFile } from './store.js';

export type { CacheFallback } from './fallback.js';

export interface CacheSecrets {
  /** The client secret configured now (read from its file at every call). */
  readonly configuredClientSecret: () => string;
  /** The client secret of the latest login Infisical accepted. */
  readonly loggedInClientSecret: () => string | undefined;
}

/** The last-known-good cache, or undefined when SIDECAR_CACHE_DIR is unset. Reads the key file once, here. */
export function createCacheFor(config: Config, secrets: CacheSecrets, clock?: Clock): CacheFallback | undefined {
  const now = clock && (() => clock.now());
  if (config.cacheDir === undefined) return undefined;
  return createCacheFallback({
    store: createLastKnownGood({
      dir: config.cacheDir,
      scope: cacheScopeOf(config),
      maxAgeMs: config.cacheMaxAgeMs,
      keyFileKey: config.cacheKeyFile === undefined ? undefined : readCacheKeyFile(config.cacheKeyFile),
      ...(now ? { now } : {}),
    }),
    fallbackAfterMs: config.cacheFallbackAfterMs,
    ...secrets,
    ...(clock ? { clock } : {}),
  });
}

/** Start-up check of SIDECAR_CACHE_DIR (owner, mode, debris); a no-op without a cache. */
export async function prepareCacheDirFor(config: Config, log: Logger): Promise<void> {
  if (config.cacheDir === undefined) return;
  const { tightenedFrom } = await prepareCacheDir(config.cacheDir);
  if (tightenedFrom !== undefined) log.warn({ dir: config.cacheDir, mode: tightenedFrom.toString(8) }, 'cache directory mode tightened to 0700');
}
