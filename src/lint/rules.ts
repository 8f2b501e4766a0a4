/**
 * The lint rules: one row per mistake an operator makes when pasting a secret, with what goes wrong
 * and how to fix it. docs/lint-rules.md is generated from this table (`npm run docs`); a test fails
 * when the two differ.
 *
 * A finding names the key, the rule and where in the value the problem sits ("password part of the
 * URL"), never the value or any part of it: findings reach logs and `check` output.
 */

/** `breaks`: the consumer will fail or read another value. `advice`: it works, but is fragile or weak. */
export type Severity = 'breaks' | 'advice';

/** Which consumer a rule speaks for: `any` rules are always on, the others follow SIDECAR_CONSUMER. */
export type RuleScope = 'any' | 'glitchtip';

export interface RuleSpec {
  readonly severity: Severity;
  readonly scope: RuleScope;
  /** One line: what goes wrong, and in which reader. */
  readonly explanation: string;
  readonly fix: string;
}

export const RULES = {
  'trailing-newline': {
    severity: 'breaks',
    scope: 'any',
    explanation:
      'The value ends with a newline (a copy-paste or `echo` artefact). Readers disagree about it: the postgres image reads `POSTGRES_PASSWORD_FILE` with `$(< file)`, which drops it, while django-environ, the env file and templates (a derived `DATABASE_URL`) keep it, so the role and the app end up with different passwords.',
    fix: 'Remove the newline in Infisical (paste without the line break; write files with `printf %s`).',
  },
  'surrounding-whitespace': {
    severity: 'advice',
    scope: 'any',
    explanation: 'The value starts or ends with a space or tab, which every reader keeps as part of the secret; almost always a copy-paste artefact.',
    fix: 'Remove the surrounding whitespace in Infisical, unless it really is part of the secret.',
  },
  'near-miss-key': {
    severity: 'breaks',
    scope: 'any',
    explanation: 'The key is spelled almost like a key of SIDECAR_REQUIRED_KEYS that is missing: different case, `-` or `.` for `_`, or one character off. The consumer does not find the key it reads.',
    fix: 'Rename the key in Infisical to the exact name the consumer reads.',
  },
  'dollar-prefix': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation:
      'django-environ reads a value that starts with `$` as a reference to another variable: `$abc` makes GlitchTip look up `abc`, and fail with ImproperlyConfigured or silently use that variable (or the default) instead.',
    fix: 'Use a value that does not start with `$` (e.g. `openssl rand -hex 32`); GlitchTip does not enable django-environ\'s `\\$` escape.',
  },
  'url-scheme': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'The URL does not start with `scheme://`, or `EMAIL_URL` uses a scheme django-environ does not know (it raises ImproperlyConfigured).',
    fix: 'Write the URL as `scheme://user:password@host:port/name`; for EMAIL_URL use smtp, smtps, smtp+tls, smtp+ssl, consolemail, filemail, memorymail or dummymail.',
  },
  'url-userinfo-delimiter': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation:
      'An unescaped `/`, `?` or `#` in the user or password ends the host part early: the URL is split in the wrong place, so GlitchTip fails ("Port could not be cast to integer value") or connects to the wrong host with no password.',
    fix: 'Percent-encode the user and password: `/` → `%2F`, `?` → `%3F`, `#` → `%23` (e.g. `python3 -c \'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))\' …`), or use the `url` filter in a derived template.',
  },
  'url-userinfo-at': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation: 'An unescaped `@` in the user or password is not valid in a URL; django-environ happens to split at the last `@`, other URL readers split at the first.',
    fix: 'Percent-encode it: `@` → `%40` (as the GlitchTip runbook says for the Postal user).',
  },
  'url-bracket': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'A `[` or `]` outside an IPv6 address: Python\'s URL parser takes it for an IPv6 host and raises "Invalid IPv6 URL" (or, for a database URL, django-environ re-quotes the whole URL and reads it differently).',
    fix: 'Percent-encode it: `[` → `%5B`, `]` → `%5D`.',
  },
  'url-dropped-control': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'A tab, carriage return or line feed inside the URL: Python\'s URL parser silently deletes these characters, so the password GlitchTip uses is not the one stored.',
    fix: 'Remove the character, or percent-encode it if it really is part of the secret (`%09`, `%0D`, `%0A`).',
  },
  'url-nfkc-delimiter': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'A non-ASCII character in the host or user/password part that Unicode NFKC normalisation turns into `/`, `?`, `#`, `@` or `:` (e.g. a full-width `＠`): Python\'s URL parser refuses the URL.',
    fix: 'Percent-encode the user and password (UTF-8), or replace the look-alike character.',
  },
  'url-invalid-character': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation: 'A space, a control character, a non-ASCII character or one of `"`, `<`, `>`, `\\`, `^`, a backtick, `{`, `|`, `}` is not allowed unescaped in a URL; django-environ passes it through, stricter URL readers do not.',
    fix: 'Percent-encode the user, password and name parts.',
  },
  'url-percent-literal': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation:
      'The user or password contains `%` followed by two hex digits that encode a letter, digit or `-._~`: no URL encoder writes that, so it is probably a literal part of the password, and django-environ decodes it into another character.',
    fix: 'If the `%` is part of the password, write it as `%25`; if the escape is intended, ignore this advice.',
  },
  'url-percent-stray': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation: 'A `%` not followed by two hex digits is not valid in a URL; django-environ keeps it literally today, but the password changes as soon as it is followed by hex digits.',
    fix: 'Write a literal `%` as `%25`.',
  },
  'url-no-database-name': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation:
      'A database URL without a database name (no `/name`): django-environ quotes the whole URL again before parsing it, so percent-escapes in the user or password are NOT decoded (the password still contains `%`) and a bracketed IPv6 host is not recognised.',
    fix: 'Add the database name (`…@host:5432/glitchtip`).',
  },
  'url-port': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'The port is not a number from 0 to 65535: Python raises "Port could not be cast to integer value" or "Port out of range" (for a database URL, django-environ silently drops the port).',
    fix: 'Write the port as digits only, or percent-encode the password if the text after `:` belongs to it.',
  },
  'url-plus-in-name': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'A `+` in the database name (or EMAIL_URL path): django-environ decodes it with `unquote_plus`, which reads `+` as a space.',
    fix: 'Write a literal `+` in the name as `%2B`.',
  },
  'secret-key-short': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation: 'SECRET_KEY is shorter than 50 characters: Django\'s deployment check (security.W009) calls such a key weak.',
    fix: 'Generate a longer key, e.g. `openssl rand -hex 32` (64 characters).',
  },
  'secret-key-repetitive': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation: 'SECRET_KEY has fewer than 5 distinct characters: Django\'s deployment check (security.W009) calls such a key weak.',
    fix: 'Generate a random key, e.g. `openssl rand -hex 32`.',
  },
  'secret-key-insecure-prefix': {
    severity: 'advice',
    scope: 'glitchtip',
    explanation: 'SECRET_KEY starts with `django-insecure-`, the marker of a key generated by `startproject` for development: Django\'s deployment check (security.W009) flags it.',
    fix: 'Generate a new key, e.g. `openssl rand -hex 32`.',
  },
  'from-email-not-address': {
    severity: 'breaks',
    scope: 'glitchtip',
    explanation: 'DEFAULT_FROM_EMAIL is not an e-mail address (`name@domain` or `Name <name@domain>`), or holds a line break: the mail server refuses the sender, or Django refuses the header, so mail never leaves.',
    fix: 'Set it to an address of a domain the mail server may send for, e.g. `glitchtip@example.com`.',
  },
} as const satisfies Record<string, RuleSpec>;

export type RuleId = keyof typeof RULES;

export interface Finding {
  readonly key: string;
  readonly ruleId: RuleId;
  readonly severity: Severity;
  /** Names the key, the rule and the position class; never the value nor any part of it. */
  readonly message: string;
  readonly fix: string;
}
