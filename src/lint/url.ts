/**
 * Where a URL-shaped secret goes wrong for django-environ, whose URL readers are Python's `urlparse`
 * plus `unquote` (user, password) and `unquote_plus` (database name, EMAIL_URL path).
 *
 * The value is split the way the operator meant it, `scheme://user:password@host:port/name`, taking
 * the last `@` that is followed by something shaped like `host[:port]` as the end of the user and
 * password, so that each problem can be placed in its part ("password part of the URL"). A query
 * that itself holds an `@` can make that guess wrong; the checks still name a real problem, only its
 * part may be misnamed. test/system/lint-oracle.test.ts holds these checks to the real django-environ.
 */
import { trimEndOf, withoutChars } from '../text.js';
import type { RuleId } from './rules.js';

/** Which django-environ reader a key goes through (see GLITCHTIP_URL_KEYS in glitchtip.ts). */
export type UrlKind = 'email' | 'database' | 'redis';

/** The part of the URL a problem sits in; used as the position class of a finding. */
export type UrlPart = 'scheme' | 'user' | 'password' | 'host' | 'port' | 'name' | 'whole';

export interface UrlProblem {
  readonly ruleId: RuleId;
  readonly part: UrlPart;
}

/** django-environ's `Env.EMAIL_SCHEMES`: any other scheme raises ImproperlyConfigured. */
export const EMAIL_SCHEMES: readonly string[] = ['smtp', 'smtps', 'smtp+tls', 'smtp+ssl', 'consolemail', 'filemail', 'memorymail', 'dummymail'];

/** What Python's `urlsplit` deletes anywhere in a URL before splitting it (bpo-43882). */
const DROPPED = /[\t\r\n]/;
/** What `urlsplit` strips from the start of a URL (WHATWG C0 control or space). */
const LEADING_C0_OR_SPACE = /^[\x00-\x20]+/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
/** Not allowed unescaped in a URL by RFC 3986 (brackets are checked on their own: Python reacts to them). */
const INVALID = /[\x00-\x20"<>\\^`{|}\x7f]|[^\x00-\x7f]/;
const DELIMITER = /[/?#]/;
const BRACKET = /[[\]]/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** The problems of one URL-shaped value, in the order of its parts; empty when django-environ reads it as written. */
export function checkUrl(value: string, kind: UrlKind): UrlProblem[] {
  const problems: UrlProblem[] = [];
  const add = (ruleId: RuleId, part: UrlPart) => {
    if (!problems.some((p) => p.ruleId === ruleId && p.part === part)) problems.push({ ruleId, part });
  };
  // A trailing newline is the generic rule's; Python drops it like any other line break.
  if (DROPPED.test(trimEndOf(value, '\n'))) add('url-dropped-control', 'whole');
  const url = withoutChars(value, '\t\r\n').replace(LEADING_C0_OR_SPACE, '');

  const scheme = SCHEME.exec(url);
  if (!scheme) return [...problems, { ruleId: 'url-scheme', part: 'scheme' }];
  if (kind === 'email' && !EMAIL_SCHEMES.includes(scheme[1]!.toLowerCase())) add('url-scheme', 'scheme');

  const rest = url.slice(scheme[0].length);
  const at = userinfoEnd(rest);
  const userinfo = at === -1 ? undefined : rest.slice(0, at);
  const afterUserinfo = at === -1 ? rest : rest.slice(at + 1);
  const authorityEnd = afterUserinfo.search(DELIMITER);
  const hostPort = authorityEnd === -1 ? afterUserinfo : afterUserinfo.slice(0, authorityEnd);
  const pathAndQuery = authorityEnd === -1 ? '' : afterUserinfo.slice(authorityEnd);
  const path = pathAndQuery.startsWith('/') ? pathAndQuery.slice(0, endOfPath(pathAndQuery)) : '';
  // Without a path, django-environ's db_url_config quotes the whole URL again before parsing it.

  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const parts: [UrlPart, string][] = colon === -1 ? [['user', userinfo]] : [['user', userinfo.slice(0, colon)], ['password', userinfo.slice(colon + 1)]];
    const requoted = kind === 'database' && path === '';
    for (const [part, text] of parts) {
      if (DELIMITER.test(text)) add('url-userinfo-delimiter', part);
      if (text.includes('@')) add('url-userinfo-at', part);
      checkCharacters(text, part, add);
      for (const escape of percentEscapes(text)) {
        if (escape === undefined) add('url-percent-stray', part);
        else if (requoted) add('url-no-database-name', part);
        else if (UNRESERVED.test(escape)) add('url-percent-literal', part);
      }
    }
  }

  const bracketed = /^\[[^\]]*\]/.exec(hostPort);
  const host = bracketed ? bracketed[0] : hostPort.split(':')[0]!;
  const port = hostPort.slice(host.length).startsWith(':') ? hostPort.slice(host.length + 1) : undefined;
  checkCharacters(bracketed ? '' : host, 'host', add);
  if (bracketed && kind === 'database' && path === '') add('url-no-database-name', 'host');
  if (port !== undefined && port !== '' && !(/^\d+$/.test(port) && Number(port) <= 65_535)) add('url-port', 'port');

  const name = path.slice(1);
  if (kind !== 'redis' && name.includes('+')) add('url-plus-in-name', 'name');
  if (INVALID.test(name) || BRACKET.test(name)) add('url-invalid-character', 'name');
  if (percentEscapes(name).includes(undefined)) add('url-percent-stray', 'name');
  return problems;
}

/**
 * Position of the `@` that ends the user and password, or -1 when the URL has none. When the
 * authority Python sees (up to the first `/`, `?` or `#`) holds an `@`, Python's split is the
 * operator's: its last `@`. Otherwise a delimiter in the password may have cut the authority short,
 * and the last `@` followed by `host[:port]` is taken.
 */
function userinfoEnd(rest: string): number {
  const authority = rest.slice(0, rest.search(DELIMITER) === -1 ? rest.length : rest.search(DELIMITER));
  if (authority.includes('@')) return authority.lastIndexOf('@');
  for (let at = rest.lastIndexOf('@'); at !== -1; at = at === 0 ? -1 : rest.lastIndexOf('@', at - 1)) {
    if (hostPortAt(rest, at + 1)) return at;
  }
  return -1;
}

/**
 * Whether `text` holds `host[:port]` at `from`, then the end of the authority (the end, `/`, `?` or
 * `#`): a bracketed IPv6 literal or a name without delimiters or brackets, and a port that runs to
 * the next `/`, `?`, `#` or `@`. The same language as
 * `/^(?:\[[^\]/?#@]*\]|[^/?#@[\]]*)(?::[^/?#@]*)?(?:[/?#]|$)/`, decided in one scan that stops at
 * the next `@`: the regex backtracks, and `userinfoEnd` asks once per `@` (test/lint.test.ts holds
 * the two equal).
 */
export function hostPortAt(text: string, from = 0): boolean {
  const firstOf = (chars: string, start: number): number => {
    for (let i = start; i < text.length; i++) if (chars.includes(text[i]!)) return i;
    return -1;
  };
  const authorityEndsAt = (i: number): boolean => i === -1 || i >= text.length || '/?#'.includes(text[i]!);
  // A port from a `:` runs to the first `/`, `?`, `#` or `@` after it: it fits unless that is an `@`.
  const portFitsAfter = (colon: number): boolean => authorityEndsAt(firstOf('/?#@', colon + 1));
  if (text[from] === '[') {
    const close = firstOf(']/?#@', from + 1);
    if (close === -1 || text[close] !== ']') return false;
    return authorityEndsAt(close + 1) || (text[close + 1] === ':' && portFitsAfter(close + 1));
  }
  const nameEnd = firstOf('/?#@[]', from);
  if (authorityEndsAt(nameEnd)) return true;
  const colon = text.indexOf(':', from);
  return colon !== -1 && colon < nameEnd && portFitsAfter(colon);
}

function endOfPath(pathAndQuery: string): number {
  const end = pathAndQuery.search(/[?#]/);
  return end === -1 ? pathAndQuery.length : end;
}

/** Characters of the user, password or host that Python refuses or that a URL may not hold. */
function checkCharacters(text: string, part: UrlPart, add: (ruleId: RuleId, part: UrlPart) => void): void {
  if (BRACKET.test(text)) add('url-bracket', part);
  if (INVALID.test(text)) add('url-invalid-character', part);
  // urlsplit's _checknetloc: NFKC must not turn a character into a delimiter of the authority.
  if (/[^\x00-\x7f]/.test(text) && /[/?#@:]/.test(text.replace(/[@:#?]/g, '').normalize('NFKC'))) add('url-nfkc-delimiter', part);
}

/** Each `%` of the text: the character its escape decodes to (a byte as a character), or undefined when no two hex digits follow. */
function percentEscapes(text: string): (string | undefined)[] {
  const escapes: (string | undefined)[] = [];
  for (let i = text.indexOf('%'); i !== -1; i = text.indexOf('%', i + 1)) {
    const hex = text.slice(i + 1, i + 3);
    escapes.push(/^[0-9A-Fa-f]{2}$/.test(hex) ? String.fromCharCode(Number.parseInt(hex, 16)) : undefined);
  }
  return escapes;
}
