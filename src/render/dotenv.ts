/**
 * `dotenv` format: a dialect that docker compose `env_file` (compose-go), python-dotenv and node
 * `dotenv` read identically for the common cases. docs/output-formats.md has the full grammar and a
 * table of where each reader differs; `parseDotenv` below is the executable form of the grammar.
 */

import { DEFAULT_OUTPUT_PATHS } from '../config/outputs.js';
import { replaceChars } from '../text.js';
import { isEnvName, sortedEntries } from './keys.js';
import type { RenderedContent, SkipReason, SkippedKey, Snapshot } from './types.js';

/** Fixed first line; readers skip it as a comment. */
const DOTENV_HEADER = '# Written by infisical-sidecar. Dotenv dialect: see docs/output-formats.md\n';

/** The four escapes the double-quoted form uses; compose-go and python-dotenv decode all four. */
const DOUBLE_QUOTE_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r' };

/**
 * Whether `value` must be written in double quotes. Single quotes are literal in all three readers,
 * except that they cannot hold `'`, and one line cannot hold LF or CR, and python-dotenv decodes `\\`
 * inside them. Everything else stays in single quotes, which node `dotenv` reads exactly too.
 */
export function needsDoubleQuotes(value: string): boolean {
  return /['\n\r]/.test(value) || value.includes('\\\\');
}

/**
 * Whether some reader would substitute variables into the written value: python-dotenv expands
 * `${NAME}` in every value by default (even single-quoted ones), and compose expands `$NAME` in
 * double-quoted ones. There is no escape all three readers agree on, so such values are skipped.
 */
export function wouldBeInterpolated(value: string): boolean {
  return value.includes('${') || (value.includes('$') && needsDoubleQuotes(value));
}

/** Writes `value` as a dotenv value: `'value'` when possible, otherwise `"…"` with 4 escapes. */
export function quoteDotenvValue(value: string): string {
  if (!needsDoubleQuotes(value)) return `'${value}'`;
  return `"${replaceChars(value, DOUBLE_QUOTE_ESCAPES)}"`;
}

/** Why a key cannot go into the dotenv file, or undefined when it can. */
export function dotenvSkipReason(key: string, value: string): SkipReason | undefined {
  if (!isEnvName(key)) return 'not-an-env-name';
  if (value.includes('\0')) return 'contains-nul';
  if (wouldBeInterpolated(value)) return 'dotenv-interpolation';
  // python-dotenv's quoted-value regex takes `\'` / `\"` before the closing quote as an escaped quote
  // and runs on to the next quote in the file, losing the keys in between. No quoting avoids it.
  if (value.endsWith('\\')) return 'dotenv-trailing-backslash';
  return undefined;
}

/**
 * Renders the dotenv format: a fixed comment line, then one `KEY='value'` or `KEY="value"` line per
 * key in code-unit order. Left out (listed in `skipped`): keys that are not env names, values with
 * NUL, values a reader would interpolate, and values ending with a backslash (see `SkipReason`).
 *
 * @param output the output path reported in `skipped` (default "secrets.dotenv")
 */
export function renderDotenv(snapshot: Snapshot, output: string = DEFAULT_OUTPUT_PATHS.dotenv): RenderedContent {
  const skipped: SkippedKey[] = [];
  let text = DOTENV_HEADER;
  for (const [key, value] of sortedEntries(snapshot)) {
    const reason = dotenvSkipReason(key, value);
    if (reason === undefined) {
      text += `${key}=${quoteDotenvValue(value)}\n`;
    } else {
      skipped.push({ key, output, reason });
    }
  }
  return { content: Buffer.from(text, 'utf8'), skipped };
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;

/** Decoded form of each escape allowed in double quotes (`\$` as compose reads it, for tolerance). */
const DOUBLE_QUOTE_UNESCAPES: Readonly<Record<string, string>> = { '\\': '\\', '"': '"', n: '\n', r: '\r', $: '$' };

/**
 * Reference parser for the dialect `renderDotenv` writes, and nothing more: tests use it to prove
 * the writer round-trips. Strict on purpose: every line is blank, a `#` comment, or `KEY='…'` /
 * `KEY="…"`; anything else throws a `SyntaxError` naming the line (never the value).
 *
 * Single-quoted values are literal (no `'` inside). Double-quoted values decode `\\`, `\"`, `\n`,
 * `\r` (and `\$`); any other backslash sequence, a bare `"` or a bare `$` is an error.
 */
export function parseDotenv(text: string): Map<string, string> {
  if (text !== '' && !text.endsWith('\n')) throw new SyntaxError('dotenv: the file must end with a newline');
  const result = new Map<string, string>();
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, index) => {
    const lineNumber = index + 1;
    if (line === '' || line.startsWith('#')) return;
    const match = ASSIGNMENT.exec(line);
    if (match === null) throw new SyntaxError(`dotenv line ${lineNumber}: expected KEY='value' or KEY="value"`);
    const [, key = '', rawValue = ''] = match;
    if (result.has(key)) throw new SyntaxError(`dotenv line ${lineNumber}: key ${key} is assigned twice`);
    result.set(key, parseQuotedValue(rawValue, `dotenv line ${lineNumber} (${key})`));
  });
  return result;
}

function parseQuotedValue(raw: string, where: string): string {
  if (raw.includes('\r')) throw new SyntaxError(`${where}: raw carriage return; the dialect writes \\r`);
  if (raw.length >= 2 && raw.startsWith("'") && raw.endsWith("'")) {
    const inner = raw.slice(1, -1);
    if (inner.includes("'")) throw new SyntaxError(`${where}: single quote inside a single-quoted value`);
    return inner;
  }
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
    return decodeDoubleQuoted(raw.slice(1, -1), where);
  }
  throw new SyntaxError(`${where}: the value must be in single or double quotes`);
}

function decodeDoubleQuoted(inner: string, where: string): string {
  let decoded = '';
  for (let i = 0; i < inner.length; i++) {
    const char = inner.charAt(i);
    if (char === '"') throw new SyntaxError(`${where}: unescaped double quote at value offset ${i}`);
    if (char === '$') throw new SyntaxError(`${where}: unescaped $ at value offset ${i} (compose would interpolate it)`);
    if (char !== '\\') {
      decoded += char;
      continue;
    }
    const escaped = DOUBLE_QUOTE_UNESCAPES[inner.charAt(i + 1)];
    if (escaped === undefined) throw new SyntaxError(`${where}: unknown escape at value offset ${i}`);
    decoded += escaped;
    i++;
  }
  return decoded;
}
