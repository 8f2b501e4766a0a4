/** The filters a template placeholder can apply: `{{ KEY | url }}`. Each maps a string to a string. */

import { shellSingleQuote } from './shell.js';

/** A filter: value in, transformed value out. Pure; never throws. */
export type Filter = (value: string) => string;

/** RFC 3986 "unreserved" bytes: the only ones `url` leaves as they are. */
function isUnreservedByte(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x2e || // .
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

const HEX_BYTES = Array.from({ length: 256 }, (_, byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`);

/**
 * Percent-encodes every UTF-8 byte except `A-Za-z0-9-._~`, with upper-case hex: the same output as
 * Python's `urllib.parse.quote(v, safe="")`. Safe for URL userinfo (user, password), path segments
 * and query values alike, unlike `encodeURIComponent` (leaves `!'()*`) or form encoding (space → `+`).
 * A lone surrogate encodes as U+FFFD (`%EF%BF%BD`) instead of throwing.
 */
export function percentEncode(value: string): string {
  let encoded = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    encoded += isUnreservedByte(byte) ? String.fromCharCode(byte) : HEX_BYTES[byte];
  }
  return encoded;
}

/** The value as a JSON string literal, quotes included. */
function jsonString(value: string): string {
  return JSON.stringify(value);
}

/** Standard base64 (with `=` padding) of the value's UTF-8 bytes. */
function base64(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64');
}

/** Removes leading and trailing whitespace as `String.prototype.trim` defines it (Unicode spaces, line ends, BOM). */
function trim(value: string): string {
  return value.trim();
}

/**
 * Every filter by name. A Map, not an object literal, so names such as `constructor` or
 * `__proto__` are unknown filters instead of inherited properties.
 */
export const FILTERS: ReadonlyMap<string, Filter> = new Map<string, Filter>([
  ['url', percentEncode],
  ['urlencode', percentEncode],
  ['urluserinfo', percentEncode],
  ['json', jsonString],
  ['base64', base64],
  ['shell', shellSingleQuote],
  ['trim', trim],
]);

/** Filter names, for error messages. */
export const FILTER_NAMES: readonly string[] = [...FILTERS.keys()];
