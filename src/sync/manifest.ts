/**
 * What a version on the volume records about the secrets it holds: the key names and, for each, a
 * keyed digest (HMAC-SHA-256 under the writer's `..digest-key`) of its value. The first pass after a
 * restart compares against it to name only the keys that really changed while the sidecar was
 * down, whatever outputs are configured; nothing is parsed back out of a rendered file.
 *
 * Why the digests leak nothing: the manifest (0400) and the key (0400) are readable only by the
 * sidecar's user, who can read the values themselves in the files beside them; a consumer sees
 * neither. A copy of the manifest without the key is a list of names and random-looking strings.
 */
import { createHmac } from 'node:crypto';
import * as z from 'zod';
import type { Snapshot } from '../render/index.js';

const MANIFEST_FORMAT = 1;

/** Pairs, not an object: a key named `__proto__` must survive the round trip. */
const ManifestSchema = z.object({ format: z.literal(MANIFEST_FORMAT), digests: z.array(z.tuple([z.string(), z.string()])) });

/** Key name → keyed digest of its value. */
export type KeyDigests = ReadonlyMap<string, string>;

export function digestSnapshot(snapshot: Snapshot, key: Buffer): KeyDigests {
  const digests = new Map<string, string>();
  for (const [name, value] of snapshot) digests.set(name, createHmac('sha256', key).update(name).update('\0').update(value).digest('base64url'));
  return digests;
}

export function encodeManifest(digests: KeyDigests): Buffer {
  return Buffer.from(JSON.stringify({ format: MANIFEST_FORMAT, digests: [...digests] }));
}

/**
 * Undefined when there is no manifest or it is not one this version reads (an older sidecar left
 * none, or the file is damaged): the caller then treats every key as changed, as on a first start.
 * The input holds only names and digests, so a parse error cannot quote a secret.
 */
export function decodeManifest(bytes: Buffer | undefined): KeyDigests | undefined {
  if (bytes === undefined) return undefined;
  try {
    const parsed = ManifestSchema.safeParse(JSON.parse(bytes.toString('utf8')));
    return parsed.success ? new Map(parsed.data.digests) : undefined;
  } catch {
    return undefined;
  }
}

/** Names added, changed or removed, sorted. */
export function changedKeys(previous: KeyDigests | undefined, next: KeyDigests): string[] {
  const changed: string[] = [];
  for (const [name, digest] of next) if (previous?.get(name) !== digest) changed.push(name);
  for (const name of previous?.keys() ?? []) if (!next.has(name)) changed.push(name);
  return changed.sort();
}
