/**
 * `env` format: a POSIX sh file meant for `set -a; . ./secrets.env; set +a` in dash, bash or
 * busybox ash (GlitchTip's wrapper, docs/glitchtip.md §3).
 */

import { DEFAULT_OUTPUT_PATHS } from '../config/outputs.js';
import { isEnvName, sortedEntries } from './keys.js';
import type { RenderedContent, SkippedKey, Snapshot } from './types.js';

/** Names a sourcing shell owns; see `shell-special` in types.ts. */
const SHELL_SPECIAL_NAMES: ReadonlySet<string> = new Set(['UID', 'EUID', 'PPID', 'SHELLOPTS', 'BASHOPTS', 'BASH_VERSINFO', 'OPTIND']);

/** Fixed first line: nothing in it changes between runs, so unchanged secrets give unchanged bytes. */
const SHELL_ENV_HEADER = '# Written by infisical-sidecar. Load in sh/dash/bash/busybox with: set -a; . <this file>; set +a\n';

/**
 * Quotes `value` as one sh word that expands to exactly `value`.
 *
 * Inside single quotes sh interprets nothing (no `$`, backtick, backslash or newline handling), so
 * the only character to deal with is `'` itself: close the quote, add an escaped quote, reopen
 * (`'` → `'\''`). Works for any value without NUL.
 */
export function shellSingleQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * Renders the env format: a fixed comment line, then one `KEY='value'` line per key in code-unit
 * order. Keys that are not env names and values containing NUL are left out and listed in `skipped`.
 *
 * @param output the output path reported in `skipped` (default "secrets.env")
 */
export function renderShellEnv(snapshot: Snapshot, output: string = DEFAULT_OUTPUT_PATHS.env): RenderedContent {
  const skipped: SkippedKey[] = [];
  let text = SHELL_ENV_HEADER;
  for (const [key, value] of sortedEntries(snapshot)) {
    if (!isEnvName(key)) {
      skipped.push({ key, output, reason: 'not-an-env-name' });
    } else if (value.includes('\0')) {
      skipped.push({ key, output, reason: 'contains-nul' });
    } else if (SHELL_SPECIAL_NAMES.has(key)) {
      skipped.push({ key, output, reason: 'shell-special' });
    } else {
      text += `${key}=${shellSingleQuote(value)}\n`;
    }
  }
  return { content: Buffer.from(text, 'utf8'), skipped };
}
