/**
 * How the sidecar shows things to a person: durations, text that came from elsewhere, colours.
 * One rule for each, shared by log lines, `status` and `check`. A leaf: imports nothing.
 */

/** Short escapes for the control characters that have one, as JSON writes them; the backslash itself so an escape stays unambiguous. */
const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r' };

/**
 * Characters that could break a line or drive a terminal: C0 and C1 controls (ANSI sequences start
 * with ESC or CSI), DEL, the Unicode line and paragraph separators, lone surrogates (which no
 * encoder can write as UTF-8), and the bidirectional controls (marks U+200E, U+200F, U+061C;
 * embeddings and overrides U+202A–U+202E; isolates U+2066–U+2069), with which a name can make the
 * rest of its line display in another order ("Trojan Source").
 */
const UNPRINTABLE = /[\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * `text` with every unprintable character escaped (`\n`, `\t`, `\u001b`, `\ud800`, `\u202e`, and
 * `\\` for a backslash), so a key name or a server's message stays on one log or terminal line and
 * cannot move the cursor or reorder the line. For names without `"`, DEL, C1 or bidi characters this
 * is exactly the inside of `JSON.stringify(text)`; a `"` is left as it is (harmless on a line).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (char) => SHORT_ESCAPES[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `text` without the run of `chars` at its end. A loop, not `replace(/[…]+$/)`: V8 tries such a
 * regex at every position of a run that does not reach the end, which is quadratic in the run's
 * length (a 1 MiB value of newlines then `x` took minutes).
 */
export function trimEndOf(text: string, chars: string): string {
  let end = text.length;
  while (end > 0 && chars.includes(text[end - 1]!)) end--;
  return end === text.length ? text : text.slice(0, end);
}

/**
 * `text` with each character that `replacements` names replaced, copying the runs between them: a
 * global `replace(/[…]/g, …)` builds a match (and calls its function) for every such character,
 * which on a 1 MiB value of line breaks held the event loop for a tenth of a second and more.
 */
export function replaceChars(text: string, replacements: Readonly<Record<string, string>>): string {
  const parts: string[] = [];
  let runStart = 0;
  for (let i = 0; i < text.length; i++) {
    const replacement = replacements[text[i]!];
    if (replacement === undefined) continue;
    if (i > runStart) parts.push(text.slice(runStart, i));
    if (replacement !== '') parts.push(replacement);
    runStart = i + 1;
  }
  if (runStart === 0) return text;
  if (runStart < text.length) parts.push(text.slice(runStart));
  return parts.join('');
}

/** `text` without any of `chars` (see replaceChars). */
export function withoutChars(text: string, chars: string): string {
  return replaceChars(text, Object.fromEntries([...chars].map((char) => [char, ''])));
}

/**
 * A URL that is a secret (a heartbeat's or a hook's token sits in its path or query, a password in
 * its userinfo) as it may be shown: scheme, host and port.
 */
export function urlOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '<invalid url>';
  }
}

/** Why a request got no answer, from error names and codes only: undici's messages may quote the URL. */
export function requestFailureReason(error: unknown, timeoutMs: number): string {
  const name = (error as Error | undefined)?.name;
  if (name === 'TimeoutError') return `no answer within ${formatDuration(timeoutMs)}`;
  if (name === 'AbortError') return 'stopped';
  const code = ((error as { cause?: { code?: unknown } } | undefined)?.cause?.code ?? (error as { code?: unknown } | undefined)?.code) as unknown;
  return `network error${typeof code === 'string' && /^[A-Z_]+$/.test(code) ? ` (${code})` : ''}`;
}

/** The two largest units, rounded to the second: `0s`, `59s`, `1m 1s`, `1h`, `1h 1m`, `1d 1h`. Negative counts as 0. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1_000));
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) => `${big}${bigUnit}${small ? ` ${small}${smallUnit}` : ''}`;
  if (s < 60) return `${s}s`;
  if (s < 3_600) return two(Math.floor(s / 60), 'm', s % 60, 's');
  if (s < 86_400) return two(Math.floor(s / 3_600), 'h', Math.floor((s % 3_600) / 60), 'm');
  return two(Math.floor(s / 86_400), 'd', Math.floor((s % 86_400) / 3_600), 'h');
}

/** The variables that decide colours (https://no-color.org: any non-empty NO_COLOR turns them off). */
export interface ColorEnv {
  readonly NO_COLOR?: string | undefined;
  readonly TERM?: string | undefined;
}

/** Colours only for a person at a terminal that can show them, and never when NO_COLOR is set. */
export function colorEnabled(isTTY: boolean, env: ColorEnv): boolean {
  return isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}
