/**
 * The cache file's format: one encrypted, authenticated snapshot of the secrets last confirmed
 * against Infisical (issue 15). Pure: bytes in, bytes out; `store.ts` does the file system.
 *
 * Layout: `MAGIC` · header length (uint32, big-endian) · header (JSON, UTF-8) · ciphertext · GCM tag.
 * The header stays in clear so a reader can tell "another project's cache" from "altered", but all
 * of it up to the ciphertext is AES-256-GCM associated data: editing the format version, the scope,
 * the confirmed-at time, the salt or the nonce makes the file fail authentication.
 *
 * The AES key comes from HKDF-SHA-256 over a high-entropy secret (the client secret, or a key file
 * of at least 32 random bytes: HKDF is no password hash), a random salt per file, and an `info`
 * that binds site URL, project and environment, so another identity or project cannot read it.
 * A second HKDF output, a key check, lets the reader say "written with another key" (client secret
 * rotated since) instead of "altered"; it proves nothing the GCM tag does not already prove.
 *
 * Limit: authentication covers one file, not history. An older valid file of the same scope put
 * back in place still decrypts; its confirmed-at time (authenticated) bounds how old it can be.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import * as z from 'zod';
import type { FolderSecret } from '../infisical/client.js';

/** Version 1 of the layout above; a reader refuses any other. */
export const CACHE_FORMAT_VERSION = 1;
const MAGIC = Buffer.from('infisical-sidecar-cache\n', 'utf8');
const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_CHECK_BYTES = 16;
/** A header is a few hundred bytes; a bigger length field means a damaged file, not one to allocate for. */
const MAX_HEADER_BYTES = 64 * 1024;
/** SIDECAR_CACHE_KEY_FILE: HKDF keeps the entropy it is given and adds none. */
export const MIN_KEY_FILE_BYTES = 32;

/** What a cache belongs to: a file written for another scope is never used. */
export interface CacheScope {
  readonly siteUrl: string;
  readonly projectId: string;
  readonly environment: string;
  /** INFISICAL_SECRET_PATHS in their configured order (the order decides which duplicate wins). */
  readonly folders: readonly string[];
}

/** One folder as Infisical returned it (imports merged), in the configured order. */
export interface CachedFolder {
  readonly path: string;
  readonly secrets: readonly FolderSecret[];
}

export type CacheKeySource = 'client-secret' | 'key-file';

/**
 * The secret the cache key is derived from. Its bytes are in a private field, and it prints as
 * `[CacheKey client-secret]` in logs, `JSON.stringify` and `util.inspect`, so it cannot leak by accident.
 */
export class CacheKey {
  readonly #material: Buffer;
  constructor(
    readonly source: CacheKeySource,
    material: Buffer,
  ) {
    this.#material = Buffer.from(material);
  }

  /** The AES key and the key check for one file (its salt) and one scope. */
  derive(salt: Buffer, scope: CacheScope): { readonly aesKey: Buffer; readonly keyCheck: Buffer } {
    const info = (label: string) => Buffer.from(`infisical-sidecar cache v${CACHE_FORMAT_VERSION} ${label}\0${JSON.stringify([scope.siteUrl, scope.projectId, scope.environment])}`);
    return {
      aesKey: Buffer.from(hkdfSync('sha256', this.#material, salt, info('aes-256-gcm key'), 32)),
      keyCheck: Buffer.from(hkdfSync('sha256', this.#material, salt, info('key check'), KEY_CHECK_BYTES)),
    };
  }

  toJSON(): string {
    return `[CacheKey ${this.source}]`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/** The clear, authenticated part of a file. */
export interface CacheHeader {
  readonly version: number;
  readonly scope: CacheScope;
  /** When Infisical last returned exactly this content (ms since the epoch). */
  readonly confirmedAt: number;
  readonly keySource: CacheKeySource;
  readonly salt: string;
  readonly nonce: string;
  readonly keyCheck: string;
}

const HeaderSchema = z
  .object({
    version: z.number().int(),
    scope: z.object({ siteUrl: z.string(), projectId: z.string(), environment: z.string(), folders: z.array(z.string()) }).strict(),
    confirmedAt: z.number().int().nonnegative(),
    keySource: z.enum(['client-secret', 'key-file']),
    salt: z.string(),
    nonce: z.string(),
    keyCheck: z.string(),
  })
  .strict();

const PayloadSchema = z.object({
  folders: z.array(z.object({ path: z.string(), secrets: z.array(z.object({ key: z.string(), value: z.string() }).strict()) }).strict()),
});

/** Encrypts `folders` for `scope` under `key`; every call draws a fresh salt and nonce. */
export function sealCache(folders: readonly CachedFolder[], scope: CacheScope, key: CacheKey, confirmedAt: number): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const { aesKey, keyCheck } = key.derive(salt, scope);
  const header: CacheHeader = {
    version: CACHE_FORMAT_VERSION,
    scope: { siteUrl: scope.siteUrl, projectId: scope.projectId, environment: scope.environment, folders: [...scope.folders] },
    confirmedAt,
    keySource: key.source,
    salt: salt.toString('base64'),
    nonce: nonce.toString('base64'),
    keyCheck: keyCheck.toString('base64'),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(headerBytes.length);
  const associated = Buffer.concat([MAGIC, length, headerBytes]);
  const cipher = createCipheriv('aes-256-gcm', aesKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associated);
  const plaintext = Buffer.from(JSON.stringify({ folders: folders.map(({ path, secrets }) => ({ path, secrets: secrets.map(({ key: name, value }) => ({ key: name, value })) })) }), 'utf8');
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  plaintext.fill(0);
  return Buffer.concat([associated, ciphertext, cipher.getAuthTag()]);
}

/**
 * Why a file cannot be used. Each maps to one error code (store.ts); none carries a value or key
 * material, only what the header says in clear.
 */
export type OpenFailure =
  | { readonly reason: 'malformed'; readonly detail: string }
  | { readonly reason: 'version'; readonly version: number }
  | { readonly reason: 'foreign'; readonly differs: readonly (keyof CacheScope)[] }
  | { readonly reason: 'key'; readonly writtenWith: CacheKeySource }
  | { readonly reason: 'authentication' };

export type OpenResult = { readonly ok: true; readonly header: CacheHeader; readonly folders: CachedFolder[] } | ({ readonly ok: false } & OpenFailure);

/** Reads the header, checks version and scope, then decrypts and authenticates everything. */
export function openCache(bytes: Buffer, scope: CacheScope, key: CacheKey): OpenResult {
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return { ok: false, reason: 'malformed', detail: 'not a sidecar cache file (wrong magic bytes)' };
  const headerLength = bytes.readUInt32BE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + headerLength;
  if (headerLength > MAX_HEADER_BYTES || bytes.length < headerEnd + TAG_BYTES) return { ok: false, reason: 'malformed', detail: `truncated (${bytes.length} bytes)` };
  let json: unknown;
  try {
    json = JSON.parse(bytes.subarray(MAGIC.length + 4, headerEnd).toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed', detail: 'header is not JSON' };
  }
  const parsed = HeaderSchema.safeParse(json);
  if (!parsed.success) return { ok: false, reason: 'malformed', detail: 'header does not match the format' };
  const header = parsed.data;
  if (header.version !== CACHE_FORMAT_VERSION) return { ok: false, reason: 'version', version: header.version };
  const differs = scopeDifferences(header.scope, scope);
  if (differs.length > 0) return { ok: false, reason: 'foreign', differs };

  const salt = Buffer.from(header.salt, 'base64');
  const nonce = Buffer.from(header.nonce, 'base64');
  const storedCheck = Buffer.from(header.keyCheck, 'base64');
  if (salt.length !== SALT_BYTES || nonce.length !== NONCE_BYTES || storedCheck.length !== KEY_CHECK_BYTES) return { ok: false, reason: 'malformed', detail: 'header has a salt, nonce or key check of the wrong size' };
  const { aesKey, keyCheck } = key.derive(salt, scope);
  if (!timingSafeEqual(keyCheck, storedCheck)) return { ok: false, reason: 'key', writtenWith: header.keySource };

  const decipher = createDecipheriv('aes-256-gcm', aesKey, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(bytes.subarray(0, headerEnd));
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([decipher.update(bytes.subarray(headerEnd, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return { ok: false, reason: 'authentication' };
  }
  try {
    const payload = PayloadSchema.safeParse(JSON.parse(plaintext.toString('utf8')));
    // Authenticated but not our payload: only a bug of a writer with the same key gets here.
    if (!payload.success) return { ok: false, reason: 'malformed', detail: 'authenticated content does not match the format' };
    return { ok: true, header, folders: payload.data.folders };
  } catch {
    return { ok: false, reason: 'malformed', detail: 'authenticated content is not JSON' };
  } finally {
    plaintext.fill(0);
  }
}

function scopeDifferences(stored: CacheScope, wanted: CacheScope): (keyof CacheScope)[] {
  const differs: (keyof CacheScope)[] = [];
  if (stored.siteUrl !== wanted.siteUrl) differs.push('siteUrl');
  if (stored.projectId !== wanted.projectId) differs.push('projectId');
  if (stored.environment !== wanted.environment) differs.push('environment');
  if (JSON.stringify(stored.folders) !== JSON.stringify(wanted.folders)) differs.push('folders');
  return differs;
}
