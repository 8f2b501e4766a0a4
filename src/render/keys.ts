/** Key rules shared by the renderers: which keys fit which output, and the one sort order. */

import type { Snapshot } from './types.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Linux NAME_MAX: the longest single path component, in bytes. */
const MAX_FILE_NAME_BYTES = 255;

/** A UTF-16 surrogate that is not part of a pair (the `u` flag makes paired surrogates one code point). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * Whether `key` can be an environment variable name in POSIX sh and in every dotenv reader:
 * `^[A-Za-z_][A-Za-z0-9_]*$`.
 */
export function isEnvName(key: string): boolean {
  return ENV_NAME.test(key);
}

/**
 * Whether `key` can be used as one file name inside the per-key directory.
 *
 * Rejected: empty, `.`, `..`, anything starting with `..` (the writer keeps its versioned
 * directories under such names, kubelet-style), anything containing `/` or NUL, names longer than
 * 255 bytes in UTF-8, and names holding a lone UTF-16 surrogate (UTF-8 would turn it into U+FFFD,
 * so two different keys could land on the same file).
 */
export function isSafeFileName(key: string): boolean {
  if (key === '' || key === '.' || key.startsWith('..')) return false;
  if (key.includes('/') || key.includes('\0')) return false;
  if (LONE_SURROGATE.test(key)) return false;
  return Buffer.byteLength(key, 'utf8') <= MAX_FILE_NAME_BYTES;
}

/** Orders strings by UTF-16 code units, the one order every output uses (not locale-dependent). */
export function compareCodeUnits(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/** The snapshot's entries sorted by key, so identical input always gives identical bytes. */
export function sortedEntries(snapshot: Snapshot): Array<[key: string, value: string]> {
  return [...snapshot.entries()].sort(([a], [b]) => compareCodeUnits(a, b));
}
