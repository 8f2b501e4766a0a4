/**
 * The last-known-good cache on disk (issue 15): one file in SIDECAR_CACHE_DIR, written atomically
 * (temp file, fsync, rename, directory fsync) with mode 0600, read back only when it authenticates,
 * belongs to the configured scope and is younger than SIDECAR_CACHE_MAX_AGE.
 *
 * Disk writes are bounded: a save rewrites the file only when the content or the key changed, or
 * when the confirmed-at time on disk is older than `confirmGranularityMs` (at most 1 h, and at most
 * a tenth of the maximum age). The age read back after a reboot may therefore overstate the real
 * one by that much, never understate it: the cache expires early, not late.
 *
 * Refusals are typed errors whose messages name the file and what the clear header says (scope,
 * key source, age); never a value, never key material.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, lstat, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { ConfigError, SidecarError, WriteError, type ErrorCode } from '../errors.js';
import { formatDuration } from '../text.js';
import { CacheKey, MIN_KEY_FILE_BYTES, openCache, sealCache, type CachedFolder, type CacheKeySource, type CacheScope, type OpenFailure } from './format.js';

/** The one file in SIDECAR_CACHE_DIR; temp files next to it start with `TEMP_PREFIX`. */
export const CACHE_FILE_NAME = 'last-known-good.cache';
const TEMP_PREFIX = `.${CACHE_FILE_NAME}.`;
const MAX_CONFIRM_GRANULARITY_MS = 60 * 60 * 1000;
/** A confirmed-at time this far in the future is the host clock's slew; beyond it the age cannot be known. */
const CLOCK_SLEW_MS = 5 * 60 * 1000;
/** Far above any secret set; a bigger file is damage, not something to read into memory. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** A usable snapshot: the folders as Infisical last returned them, and how old that confirmation is. */
export interface LoadedCache {
  readonly folders: readonly CachedFolder[];
  /** When Infisical last returned this content (ms since the epoch), as written in the file. */
  readonly confirmedAt: number;
  readonly ageMs: number;
}

export type CacheRead =
  | ({ readonly status: 'loaded' } & LoadedCache)
  /** No cache file yet: not an error. */
  | { readonly status: 'absent' }
  | { readonly status: 'refused'; readonly error: SidecarError };

export interface LastKnownGoodOptions {
  readonly dir: string;
  readonly scope: CacheScope;
  readonly maxAgeMs: number;
  /** SIDECAR_CACHE_KEY_FILE's key; without it each call's client secret is the key. */
  readonly keyFileKey?: CacheKey | undefined;
  readonly now?: () => number;
}

export interface LastKnownGood {
  readonly file: string;
  /** How stale the confirmed-at time on disk may get before a save rewrites an unchanged snapshot. */
  readonly confirmGranularityMs: number;
  /** The cache if it is usable now: authenticates, same scope, younger than the maximum age. */
  load(clientSecret: string): Promise<CacheRead>;
  /**
   * The latest authentic snapshot whatever its age, with its age: for a reader that needs the last
   * value Infisical gave (issue 16: the database password in force after a reboot), not a fallback.
   */
  readLatest(clientSecret: string): Promise<CacheRead>;
  /**
   * Stores what a successful sync fetched, confirmed at `confirmedAt`, under the key of the client
   * secret that logged in for it. Throws `SIDECAR_CACHE_UNWRITABLE`; the caller logs it and goes on.
   */
  save(folders: readonly CachedFolder[], clientSecret: string, confirmedAt: number): Promise<'written' | 'unchanged'>;
  /** Deletes the cache (Infisical refused the identity); returns a write error instead of throwing. */
  forget(): Promise<SidecarError | undefined>;
}

export function createLastKnownGood(options: LastKnownGoodOptions): LastKnownGood {
  const now = options.now ?? Date.now;
  const file = path.join(options.dir, CACHE_FILE_NAME);
  const confirmGranularityMs = Math.min(MAX_CONFIRM_GRANULARITY_MS, Math.floor(options.maxAgeMs / 10));
  const keyFor = (clientSecret: string) => options.keyFileKey ?? cacheKeyFromClientSecret(clientSecret);
  // What this process last wrote: a digest of content and key (never kept on disk), and its confirmed-at time.
  const fingerprintSalt = randomBytes(16);
  let lastWritten: { fingerprint: string; confirmedAt: number } | undefined;

  async function read(clientSecret: string, maxAgeMs: number): Promise<CacheRead> {
    let bytes: Buffer;
    try {
      const stats = await lstat(file);
      if (!stats.isFile()) return refused('SIDECAR_CACHE_UNREADABLE', `${file} is not a regular file`);
      if (stats.size > MAX_FILE_BYTES) return refused('SIDECAR_CACHE_UNREADABLE', `${file} is ${stats.size} bytes, more than any cache the sidecar writes`);
      bytes = await readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { status: 'absent' };
      return refused('SIDECAR_CACHE_UNREADABLE', `cannot read ${file} (${code ?? 'error'})`);
    }
    const opened = openCache(bytes, options.scope, keyFor(clientSecret));
    if (!opened.ok) return refusal(file, opened, keyFor(clientSecret).source);
    const ageMs = now() - opened.header.confirmedAt;
    if (ageMs < -CLOCK_SLEW_MS) {
      return refused('SIDECAR_CACHE_EXPIRED', `${file} says it was confirmed ${formatDuration(-ageMs)} in the future: the host clock is behind, so its age is unknown`);
    }
    if (ageMs > maxAgeMs) {
      return refused('SIDECAR_CACHE_EXPIRED', `${file} was last confirmed against Infisical ${formatDuration(ageMs)} ago, longer than SIDECAR_CACHE_MAX_AGE (${formatDuration(maxAgeMs)})`);
    }
    return { status: 'loaded', folders: opened.folders, confirmedAt: opened.header.confirmedAt, ageMs: Math.max(0, ageMs) };
  }

  return {
    file,
    confirmGranularityMs,
    load: (clientSecret) => read(clientSecret, options.maxAgeMs),
    readLatest: (clientSecret) => read(clientSecret, Number.POSITIVE_INFINITY),
    async save(folders, clientSecret, confirmedAt) {
      const key = keyFor(clientSecret);
      const fingerprint = createHash('sha256')
        .update(key.derive(fingerprintSalt, options.scope).keyCheck)
        .update(JSON.stringify(folders.map(({ path: folder, secrets }) => [folder, secrets.map(({ key: name, value }) => [name, value])])))
        .digest('base64');
      if (lastWritten?.fingerprint === fingerprint && confirmedAt - lastWritten.confirmedAt < confirmGranularityMs) return 'unchanged';
      await writeAtomically(options.dir, file, sealCache(folders, options.scope, key, confirmedAt));
      lastWritten = { fingerprint, confirmedAt };
      return 'written';
    },
    async forget() {
      lastWritten = undefined;
      try {
        await rm(file, { force: true });
        return undefined;
      } catch (error) {
        return new WriteError('SIDECAR_CACHE_UNWRITABLE', `cannot delete ${file} after Infisical refused the identity (${(error as NodeJS.ErrnoException).code ?? 'unknown'})`, { cause: error });
      }
    },
  };
}

/** The scope a configuration's cache belongs to. */
export function cacheScopeOf(config: Pick<Config, 'siteUrl' | 'projectId' | 'environment' | 'secretPaths'>): CacheScope {
  return { siteUrl: config.siteUrl, projectId: config.projectId, environment: config.environment, folders: [...config.secretPaths] };
}

export function cacheKeyFromClientSecret(clientSecret: string): CacheKey {
  return new CacheKey('client-secret', Buffer.from(clientSecret, 'utf8'));
}

/**
 * SIDECAR_CACHE_KEY_FILE's bytes as the key, read once at start. Refuses fewer than 32 bytes with a
 * configuration error naming the variable: HKDF stretches nothing, so a short key is a weak key.
 */
export function readCacheKeyFile(file: string): CacheKey {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([`SIDECAR_CACHE_KEY_FILE: cannot read ${file} (${code}) — mount it readable by the sidecar user (uid 65532 in the image)`], 'SIDECAR_CONFIG_FILE_UNREADABLE');
  }
  try {
    if (bytes.length < MIN_KEY_FILE_BYTES) {
      throw new ConfigError([
        `SIDECAR_CACHE_KEY_FILE: ${file} holds ${bytes.length} bytes; it needs at least ${MIN_KEY_FILE_BYTES} random bytes (the key is not stretched like a password) — create it with \`head -c 32 /dev/urandom > ${path.basename(file)}\``,
      ]);
    }
    return new CacheKey('key-file', bytes);
  } finally {
    bytes.fill(0);
  }
}

/**
 * Checks SIDECAR_CACHE_DIR at start: a real directory (not a link), owned by this process's uid, mode
 * 0700 (a looser mode on a directory we own is tightened here). Removes temp files a crash left.
 * Returns the mode it replaced, for the caller to log.
 */
export async function prepareCacheDir(dir: string): Promise<{ readonly tightenedFrom: number | undefined }> {
  let stats;
  try {
    stats = await lstat(dir);
  } catch (error) {
    throw unsafe(`SIDECAR_CACHE_DIR ${dir} cannot be opened (${(error as NodeJS.ErrnoException).code ?? 'error'}): mount a volume there`);
  }
  if (stats.isSymbolicLink()) throw unsafe(`SIDECAR_CACHE_DIR ${dir} is a symbolic link: name the directory itself`);
  if (!stats.isDirectory()) throw unsafe(`SIDECAR_CACHE_DIR ${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw unsafe(`SIDECAR_CACHE_DIR ${dir} is owned by uid ${stats.uid}, but the sidecar runs as uid ${uid} and keeps the cache private to itself`);
  }
  const mode = stats.mode & 0o777;
  if (mode !== 0o700) await chmod(dir, 0o700);
  for (const entry of await readdir(dir)) {
    if (entry.startsWith(TEMP_PREFIX)) await rm(path.join(dir, entry), { force: true });
  }
  return { tightenedFrom: mode === 0o700 ? undefined : mode };
}

async function writeAtomically(dir: string, file: string, bytes: Buffer): Promise<void> {
  const temp = path.join(dir, `${TEMP_PREFIX}${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (error) {
    await rm(temp, { force: true });
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new WriteError('SIDECAR_CACHE_UNWRITABLE', `cannot write ${file} (${code})`, { cause: error });
  }
}

function refusal(file: string, failure: OpenFailure, keySource: CacheKeySource): CacheRead {
  switch (failure.reason) {
    case 'malformed':
      return refused('SIDECAR_CACHE_UNREADABLE', `${file}: ${failure.detail}`);
    case 'version':
      return refused('SIDECAR_CACHE_UNREADABLE', `${file} has format version ${failure.version}, this sidecar reads version 1`);
    case 'foreign':
      return refused('SIDECAR_CACHE_FOREIGN', `${file} belongs to another ${failure.differs.join(', ')} than configured`);
    case 'key':
      return refused(
        'SIDECAR_CACHE_KEY_MISMATCH',
        failure.writtenWith === keySource
          ? `${file} was written with another ${KEY_SOURCE_NAMES[keySource]} than the one configured now`
          : `${file} was written with the ${KEY_SOURCE_NAMES[failure.writtenWith]}, and the sidecar now uses the ${KEY_SOURCE_NAMES[keySource]}`,
      );
    case 'authentication':
      return refused('SIDECAR_CACHE_UNREADABLE', `${file} fails authentication: it was altered or damaged`);
  }
}

const KEY_SOURCE_NAMES: Readonly<Record<CacheKeySource, string>> = { 'client-secret': 'client secret', 'key-file': 'SIDECAR_CACHE_KEY_FILE key' };

function refused(code: ErrorCode, message: string): CacheRead {
  return { status: 'refused', error: new SidecarError(code, `last-known-good cache ignored: ${message}`) };
}

function unsafe(message: string): WriteError {
  return new WriteError('SIDECAR_CACHE_DIR_UNSAFE', message);
}
