/** `json` format: one flat object `{ "KEY": "value" }` holding every key, even non-env names. */

import { sortedEntries } from './keys.js';
import type { RenderedContent, Snapshot } from './types.js';

/**
 * Renders the json format: keys in code-unit order, 2-space indent, one entry per line, trailing
 * newline; `{}\n` when empty. Never skips a key.
 *
 * Built line by line rather than with `JSON.stringify(object)`, because a JS object would reorder
 * integer-like keys ("2" before "10" before "A") and treat `__proto__` specially. Each key and value
 * goes through `JSON.stringify(string)`, which escapes `"`, `\`, control characters, and (ES2019
 * well-formed stringify) lone surrogates as `\udXXX`, so `JSON.parse` returns the identical string.
 */
export function renderJson(snapshot: Snapshot): RenderedContent {
  const entries = sortedEntries(snapshot).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`);
  const text = entries.length === 0 ? '{}\n' : `{\n${entries.join(',\n')}\n}\n`;
  return { content: Buffer.from(text, 'utf8'), skipped: [] };
}
