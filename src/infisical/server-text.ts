/**
 * Text a server sent, made fit to show: the one gate between a response and a `SidecarError`
 * message. Every server-supplied string the client puts into an error (a server's `message`, a
 * key name) passes `shown()` first, so logs, `/healthz`, `check` and `status` all get it clean.
 *
 * - The credentials the request could carry are cut out: the client secrets of the latest logins
 *   and the access tokens in use, plain, URL-encoded or JSON-escaped, as a server echoing them
 *   would write them. The client id stays: it names the identity (Infisical shows it in its UI
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
  }
  const bounded = scrubbed.length > MAX_SHOWN_CHARS ? `${scrubbed.slice(0, MAX_SHOWN_CHARS)}…` : scrubbed;
  return printable(bounded);
}

/** The forms in which a server could echo what it was sent: as is, URL-encoded, inside a JSON string. */
function echoedForms(credential: string): string[] {
  return [...new Set([credential, encodeURIComponent(credential), JSON.stringify(credential).slice(1, -1)])];
}
