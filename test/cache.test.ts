/**
 * The last-known-good cache file: what it keeps, what it refuses, and that nothing it
 * says (messages, the file's clear header) carries a value or key material.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCacheKeyFile, cacheScopeOf, createLastKnownGood, prepareCacheDir, CACHE_FILE_NAME, type CacheRead } from '../src/cache/store.js';
import type { CachedFolder, CacheScope } from '../src/cache/format.js';
import { ConfigError, isSidecarError, type SidecarError } from '../src/errors.js';
import { leakGuard } from './helpers/canaries.js';
import { makeTempDir } from './helpers/temp-dir.js';

const guard = leakGuard(1_500);
const clientSecret = `client-secret-${guard.tag}-${randomBytes(16).toString('hex')}`;
guard.protect('client secret', clientSecret);

const scope: CacheScope = cacheScopeOf({
  siteUrl: 'https://infisical.example.test',
  projectId: 'project-a',
  environment: 'prod',
  secretPaths: ['/glitchtip/database', '/glitchtip/application'],
});
const DAY = 24 * 60 * 60 * 1000;
const T0 = Date.UTC(2025, 0, 10, 12, 0, 0);

function folders(): CachedFolder[] {
  return [
    { path: '/glitchtip/database', secrets: [{ key: 'POSTGRES_PASSWORD', value: guard.canary('pg') }] },
    { path: '/glitchtip/application', secrets: [{ key: 'SECRET_KEY', value: guard.canary('sk', 'plain') }, { key: 'EMPTY', value: '' }] },
  ];
}

function cacheIn(dir: string, overrides: { scope?: CacheScope; maxAgeMs?: number; now?: () => number; keyFile?: string } = {}) {
  return createLastKnownGood({
    dir,
    scope: overrides.scope ?? scope,
    maxAgeMs: overrides.maxAgeMs ?? 3 * DAY,
    keyFileKey: overrides.keyFile === undefined ? undefined : readCacheKeyFile(overrides.keyFile),
    now: overrides.now ?? (() => T0 + 60_000),
  });
}

/** The refusal's error, checked for its code, and recorded for the leak guard. */
function refusal(read: CacheRead, code: string): SidecarError {
  expect(read.status).toBe('refused');
  if (read.status !== 'refused') throw new Error('unreachable');
  expect(read.error.code).toBe(code);
  guard.observe(read.error.message, read.error.hint, JSON.stringify(read.error));
  return read.error;
}

async function writtenCache(dir: string, content = folders()): Promise<{ file: string; bytes: Buffer }> {
  const cache = cacheIn(dir);
  expect(await cache.save(content, clientSecret, T0)).toBe('written');
  const bytes = readFileSync(cache.file);
  // The file in clear (its header is readable): no value, no client secret.
  guard.observe(bytes.toString('latin1'), bytes.toString('utf8'));
  return { file: cache.file, bytes };
}

describe('last-known-good cache file', () => {
  it('round trip: what was saved comes back with its confirmed-at time and age; one file, mode 0600', async () => {
    const dir = makeTempDir('cache-');
    const content = folders();
    await writtenCache(dir, content);
    const read = await cacheIn(dir).load(clientSecret);
    expect(read).toEqual({ status: 'loaded', folders: content, confirmedAt: T0, ageMs: 60_000 });
    expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
    expect(statSync(path.join(dir, CACHE_FILE_NAME)).mode & 0o777).toBe(0o600);
  });

  it('no cache file yet is not an error', async () => {
    expect(await cacheIn(makeTempDir('cache-')).load(clientSecret)).toEqual({ status: 'absent' });
  });

  it('a copy of the cache without the client secret cannot be decrypted', async () => {
    const dir = makeTempDir('cache-');
    const { bytes } = await writtenCache(dir);
    const elsewhere = makeTempDir('cache-copy-');
    writeFileSync(path.join(elsewhere, CACHE_FILE_NAME), bytes);
    const error = refusal(await cacheIn(elsewhere).load(`guessed-${randomBytes(16).toString('hex')}`), 'SIDECAR_CACHE_KEY_MISMATCH');
    expect(error.message).toContain('written with another client secret');
  });

  it('SIDECAR_CACHE_KEY_FILE: a key file replaces the client secret; fewer than 32 bytes is a configuration error naming the variable', async () => {
    const dir = makeTempDir('cache-');
    const keyFile = path.join(makeTempDir('key-'), 'cache.key');
    const keyBytes = randomBytes(32);
    guard.protect('key file (hex)', keyBytes.toString('hex'));
    guard.protect('key file (latin1)', keyBytes.toString('latin1'));
    writeFileSync(keyFile, keyBytes);
    const withKeyFile = cacheIn(dir, { keyFile });
    await withKeyFile.save(folders(), clientSecret, T0);
    expect((await withKeyFile.load(`any-${guard.tag}`)).status).toBe('loaded');
    const error = refusal(await cacheIn(dir).load(clientSecret), 'SIDECAR_CACHE_KEY_MISMATCH');
    expect(error.message).toContain('written with the SIDECAR_CACHE_KEY_FILE key, and the sidecar now uses the client secret');

    writeFileSync(keyFile, keyBytes.subarray(0, 31));
    let thrown: unknown;
    try {
      readCacheKeyFile(keyFile);
    } catch (caught) {
      thrown = caught;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).problems).toEqual([expect.stringMatching(/^SIDECAR_CACHE_KEY_FILE: .* holds 31 bytes; it needs at least 32 random bytes/)]);
    guard.observe((thrown as Error).message);
    expect(() => readCacheKeyFile(path.join(dir, 'missing.key'))).toThrow(/SIDECAR_CACHE_KEY_FILE: cannot read .*missing\.key \(ENOENT\)/);
  });

  it('a flipped byte anywhere — ciphertext, tag, or the clear header (associated data) — is refused as unreadable', async () => {
    const dir = makeTempDir('cache-');
    const { file, bytes } = await writtenCache(dir);
    const headerText = bytes.toString('latin1');
    const positions = {
      'last byte (GCM tag)': bytes.length - 1,
      'ciphertext': bytes.length - 40,
      'confirmedAt in the header': headerText.indexOf(`"confirmedAt":${T0}`) + '"confirmedAt":'.length + 3,
      'nonce in the header': headerText.indexOf('"nonce":"') + '"nonce":"'.length + 2,
      'magic bytes': 0,
    };
    for (const [where, index] of Object.entries(positions)) {
      const altered = Buffer.from(bytes);
      altered[index] = altered[index]! ^ (where.includes('header') ? 0x01 : 0xff);
      writeFileSync(file, altered);
      const read = await cacheIn(dir).load(clientSecret);
      expect(read.status, where).toBe('refused');
      refusal(read, 'SIDECAR_CACHE_UNREADABLE');
    }
    // The header's confirmed-at time cannot be moved forward to make an old cache look young.
    writeFileSync(file, Buffer.from(headerText.replace(`"confirmedAt":${T0}`, `"confirmedAt":${T0 + 9}`), 'latin1'));
    expect(refusal(await cacheIn(dir).load(clientSecret), 'SIDECAR_CACHE_UNREADABLE').message).toContain('fails authentication');
  });

  it('a truncated file is refused as unreadable, at every length', async () => {
    const dir = makeTempDir('cache-');
    const { file, bytes } = await writtenCache(dir);
    for (const length of [0, 10, 30, bytes.length / 2, bytes.length - 17, bytes.length - 1]) {
      writeFileSync(file, bytes.subarray(0, Math.floor(length)));
      refusal(await cacheIn(dir).load(clientSecret), 'SIDECAR_CACHE_UNREADABLE');
    }
  });

  it("another project's, environment's, site's or folder list's cache is refused as foreign, naming what differs", async () => {
    const dir = makeTempDir('cache-');
    await writtenCache(dir);
    const others: [Partial<CacheScope>, string][] = [
      [{ projectId: 'project-b' }, 'projectId'],
      [{ environment: 'staging' }, 'environment'],
      [{ siteUrl: 'https://other.example.test' }, 'siteUrl'],
      [{ folders: ['/glitchtip/application', '/glitchtip/database'] }, 'folders'],
    ];
    for (const [other, differs] of others) {
      const error = refusal(await cacheIn(dir, { scope: { ...scope, ...other } }).load(clientSecret), 'SIDECAR_CACHE_FOREIGN');
      expect(error.message).toContain(`belongs to another ${differs} than configured`);
    }
  });

  it('an expired cache is not used (nor one dated in the future); readLatest ignores the age', async () => {
    const dir = makeTempDir('cache-');
    await writtenCache(dir);
    const late = cacheIn(dir, { now: () => T0 + 3 * DAY + 1 });
    expect(refusal(await late.load(clientSecret), 'SIDECAR_CACHE_EXPIRED').message).toMatch(/last confirmed against Infisical .* ago, longer than SIDECAR_CACHE_MAX_AGE/);
    expect(await late.readLatest(clientSecret)).toMatchObject({ status: 'loaded', confirmedAt: T0, ageMs: 3 * DAY + 1 });
    const clockBehind = cacheIn(dir, { now: () => T0 - DAY });
    expect(refusal(await clockBehind.load(clientSecret), 'SIDECAR_CACHE_EXPIRED').message).toContain('the host clock is behind');
  });

  it('bounded writes: an unchanged snapshot is rewritten only to refresh its age (at most hourly); a new value or key rewrites at once', async () => {
    const dir = makeTempDir('cache-');
    const cache = cacheIn(dir);
    const content = folders();
    expect(cache.confirmGranularityMs).toBe(60 * 60 * 1000);
    expect(await cache.save(content, clientSecret, T0)).toBe('written');
    expect(await cache.save(content, clientSecret, T0 + 5 * 60_000)).toBe('unchanged');
    expect(await cache.save(content, clientSecret, T0 + 60 * 60_000)).toBe('written');
    const rotated = content.map((folder) => ({ ...folder, secrets: folder.secrets.map((secret) => ({ ...secret, value: `${secret.value}-rotated` })) }));
    expect(await cache.save(rotated, clientSecret, T0 + 61 * 60_000)).toBe('written');
    const newSecret = `${clientSecret}-new`;
    guard.protect('new client secret', newSecret);
    expect(await cache.save(rotated, newSecret, T0 + 62 * 60_000)).toBe('written');
    expect(await cacheIn(dir, { now: () => T0 + 63 * 60_000 }).load(newSecret)).toMatchObject({ status: 'loaded', folders: rotated, confirmedAt: T0 + 62 * 60_000 });
    // A short maximum age refreshes the age more often: at most a tenth of it late.
    expect(cacheIn(dir, { maxAgeMs: 10 * 60_000 }).confirmGranularityMs).toBe(60_000);
  });

  it('a failed write is SIDECAR_CACHE_UNWRITABLE and leaves no temp file', async () => {
    const dir = makeTempDir('cache-');
    const cache = cacheIn(path.join(dir, 'gone'));
    const error = await cache.save(folders(), clientSecret, T0).catch((caught: unknown) => caught);
    expect(isSidecarError(error) && error.code).toBe('SIDECAR_CACHE_UNWRITABLE');
    guard.observe((error as Error).message);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('SIDECAR_CACHE_DIR check at start', () => {
  it('tightens a directory the sidecar owns to 0700 and removes temp files a crash left', async () => {
    const dir = path.join(makeTempDir('cache-parent-'), 'cache');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    writeFileSync(path.join(dir, `.${CACHE_FILE_NAME}.123.abcd.tmp`), 'partial');
    writeFileSync(path.join(dir, CACHE_FILE_NAME), 'kept');
    expect(await prepareCacheDir(dir)).toEqual({ tightenedFrom: 0o755 });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
    expect(await prepareCacheDir(dir)).toEqual({ tightenedFrom: undefined });
  });

  it('refuses a missing directory, a symbolic link, a file', async () => {
    const parent = makeTempDir('cache-parent-');
    const real = path.join(parent, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, path.join(parent, 'link'));
    writeFileSync(path.join(parent, 'file'), '');
    for (const [name, says] of [['missing', 'cannot be opened (ENOENT)'], ['link', 'is a symbolic link'], ['file', 'is not a directory']]) {
      const error = await prepareCacheDir(path.join(parent, name!)).catch((caught: unknown) => caught);
      expect(isSidecarError(error) && error.code, name).toBe('SIDECAR_CACHE_DIR_UNSAFE');
      expect((error as Error).message).toContain(says);
      guard.observe((error as Error).message);
    }
  });

  it.skipIf(process.getuid?.() !== 0)('refuses a directory owned by another uid, naming both uids (a new named volume is root-owned unless the image ships the mount point)', async () => {
    const dir = path.join(makeTempDir('cache-parent-'), 'cache');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65532, 65532);
    const error = await prepareCacheDir(dir).catch((caught: unknown) => caught);
    expect(isSidecarError(error) && error.code).toBe('SIDECAR_CACHE_DIR_UNSAFE');
    expect((error as Error).message).toContain('is owned by uid 65532, but the sidecar runs as uid 0');
    expect((error as SidecarError).hint).toContain('chown 65532:65532');
  });
});
