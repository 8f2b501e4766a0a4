/**
 * The rules for GlitchTip (SIDECAR_CONSUMER=glitchtip): it reads its settings with django-environ's
 * `FileAwareEnv` (`env.email_url`, `env.db`, `env.str`), and Django checks its own SECRET_KEY.
 */
import type { RuleId } from './rules.js';
import { checkUrl, type UrlKind, type UrlProblem } from './url.js';

/**
 * The URL-shaped keys GlitchTip reads, by the reader they go through: `env.email_url` (EMAIL_URL),
 * `env.db` (the database URLs), and `env.str` handed to redis-py / valkey-py / kombu, which split it
 * with the same `urlparse` + `unquote` as django-environ's `env.url`.
 */
export const GLITCHTIP_URL_KEYS: Readonly<Record<string, UrlKind>> = Object.freeze({
  EMAIL_URL: 'email',
  DATABASE_URL: 'database',
  READ_ONLY_DATABASE_URL: 'database',
  MAINTENANCE_DATABASE_URL: 'database',
  REDIS_URL: 'redis',
  VALKEY_URL: 'redis',
  CELERY_BROKER_URL: 'redis',
});

/** Django's security.W009 (django/core/checks/security/base.py): a key below these is "weak". */
export const SECRET_KEY_MIN_LENGTH = 50;
export const SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5;
export const SECRET_KEY_INSECURE_PREFIX = 'django-insecure-';

/** `name@domain`, alone or as `Display Name <name@domain>`. */
const ADDRESS = /^[^\s@<>]+@[^\s@<>]+$/;
const DISPLAY_NAME_ADDRESS = /^[^<>]*<([^<>]*)>$/;

/** A problem and where it sits; `where` is a position class, never text from the value. */
export interface Placed {
  readonly ruleId: RuleId;
  readonly where: string;
}

const PART_NAMES: Readonly<Record<UrlProblem['part'], string>> = {
  scheme: 'scheme of the URL',
  user: 'user part of the URL',
  password: 'password part of the URL',
  host: 'host part of the URL',
  port: 'port of the URL',
  name: 'database name (path) of the URL',
  whole: 'URL',
};

export function glitchtipProblems(key: string, value: string): Placed[] {
  const problems: Placed[] = [];
  // The postgres image reads its own POSTGRES_* keys with a shell, not django-environ.
  if (value.startsWith('$') && !key.startsWith('POSTGRES_')) problems.push({ ruleId: 'dollar-prefix', where: 'start of the value' });
  else {
    const kind = GLITCHTIP_URL_KEYS[key];
    if (kind) problems.push(...checkUrl(value, kind).map(({ ruleId, part }) => ({ ruleId, where: PART_NAMES[part] })));
  }
  if (key === 'SECRET_KEY') {
    const characters = [...value];
    if (characters.length < SECRET_KEY_MIN_LENGTH) problems.push({ ruleId: 'secret-key-short', where: 'length of the value' });
    if (new Set(characters).size < SECRET_KEY_MIN_UNIQUE_CHARACTERS) problems.push({ ruleId: 'secret-key-repetitive', where: 'characters of the value' });
    if (value.startsWith(SECRET_KEY_INSECURE_PREFIX)) problems.push({ ruleId: 'secret-key-insecure-prefix', where: 'start of the value' });
  }
  if (key === 'DEFAULT_FROM_EMAIL' && !isAddress(value)) problems.push({ ruleId: 'from-email-not-address', where: 'value' });
  return problems;
}

function isAddress(value: string): boolean {
  if (/[\r\n]/.test(value)) return false;
  const text = value.trim();
  const address = DISPLAY_NAME_ADDRESS.exec(text)?.[1]?.trim() ?? text;
  return ADDRESS.test(address);
}
