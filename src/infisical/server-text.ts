/**
 * Text a server sent, made fit to show: the one gate between a response and a `SidecarError`
 * message. Every server-supplied string the client puts into an error (a server's `message`, a
 * key name) passes `shown()` first, so logs, `/healthz`, `check` and `status` all get it clean.
 *
 * - The credentials the request could carry are cut out: the client secrets of the latest logins
 *   and the access tokens in use, plain, URL-encoded or JSON-escaped, as a server echoing them
 *   would write them, and any run of 12 or more characters of one (an echo cut short or split). The client id stays: it names the identity (Infisical shows it in its UI
 *   and audit log) and is useless without the secret.
 * - Then it is bounded, and its control characters are escaped (`printable`), so it cannot move a
 *   terminal's cursor, start an escape sequence or forge a log line. Cutting after the scrub means
 *   no part of a credential survives a cut through it.
 */
import { printable } from '../text.js';

/** Server text is a short diagnostic; a longer one is cut, with a mark. */
const MAX_SHOWN_CHARS = 300;
const REDACTED = '[redacted]';

/** `text` with every form of every credential replaced, bounded, and escaped for display. */
export function shown(text: string, credentials: Iterable<string | undefined>): string {
  let scrubbed = text;
  for (const credential of credentials) {
    if (credential === undefined || credential === '') continue;
    for (const form of echoedForms(credential)) scrubbed = scrubbed.replaceAll(form, REDACTED);
    scrubbed = withoutFragments(scrubbed, credential);
  }
  const bounded = scrubbed.length > MAX_SHOWN_CHARS ? `${scrubbed.slice(0, MAX_SHOWN_CHARS)}…` : scrubbed;
  return printable(bounded);
}

/** The forms in which a server could echo what it was sent: as is, URL-encoded, inside a JSON string. */
function echoedForms(credential: string): string[] {
  return [...new Set([credential, encodeURIComponent(credential), JSON.stringify(credential).slice(1, -1)])];
}

/** Shorter than this, a run of characters shared with a credential is too likely to be chance. */
const MIN_FRAGMENT_CHARS = 12;

/**
 * `text` with every run of at least MIN_FRAGMENT_CHARS characters that also occurs in `credential`
 * replaced: a server or proxy that cut its echo of the request short, or broke it across lines,
 * still leaves no usable part of the secret.
 */
function withoutFragments(text: string, credential: string): string {
  if (credential.length < MIN_FRAGMENT_CHARS) return text;
  let result = '';
  let index = 0;
  while (index < text.length) {
    const window = text.slice(index, index + MIN_FRAGMENT_CHARS);
    if (window.length === MIN_FRAGMENT_CHARS && credential.includes(window)) {
      // Extend the match as far as it goes, then redact it as one.
      let end = index + MIN_FRAGMENT_CHARS;
      while (end < text.length && credential.includes(text.slice(index, end + 1))) end++;
      result += REDACTED;
      index = end;
    } else {
      result += text[index];
      index++;
    }
  }
  return result;
}
