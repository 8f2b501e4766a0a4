/** `files` format: one file per key holding the raw value, for `*_FILE` consumers. */

import { DEFAULT_OUTPUT_PATHS } from '../config/outputs.js';
import { trimEndOf } from '../text.js';
import { isSafeFileName, sortedEntries } from './keys.js';
import type { RenderedFile, SkippedKey, Snapshot } from './types.js';

/** What `renderKeyFiles` returns: one file per kept key, and the keys left out. */
export interface RenderedKeyFiles {
  files: RenderedFile[];
  skipped: SkippedKey[];
}

/**
 * Renders one file per key at `<dir>/<key>`, holding the value's UTF-8 bytes and **no trailing
 * newline**: django-environ's `*_FILE` support reads the file verbatim, so a newline would become part
 * of the secret (docs/glitchtip.md §2a). Keys that fail `isSafeFileName` are left out with reason
 * `unsafe-file-name`. NUL in a value is kept: a file can hold it.
 *
 * @param dir the sub-directory, relative, posix separators (default "keys")
 */
export function renderKeyFiles(snapshot: Snapshot, dir: string = DEFAULT_OUTPUT_PATHS.files): RenderedKeyFiles {
  const prefix = trimEndOf(dir, '/');
  const files: RenderedFile[] = [];
  const skipped: SkippedKey[] = [];
  for (const [key, value] of sortedEntries(snapshot)) {
    if (isSafeFileName(key)) {
      files.push({ path: `${prefix}/${key}`, content: Buffer.from(value, 'utf8') });
    } else {
      skipped.push({ key, output: dir, reason: 'unsafe-file-name' });
    }
  }
  return { files, skipped };
}
