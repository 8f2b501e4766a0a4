/**
 * The URL-splitting rules and the `$` rule, held to the real django-environ both ways.
 *
 * The oracle is Debian trixie's python3-django-environ 0.12 (the line GlitchTip pins), fetched by
 * scripts/lint-oracle/django-environ.sh the way the e2e fetches Compose v2, and run with this
 * machine's python3 (test/tools/django-environ-oracle.py), one process per test for a whole batch.
 *
 * For every value:
 * 1. when django-environ fails, or reads a user, password, host, port or database other than a
 *    strict RFC 3986 reading of the same string (percent-decoding included), a rule fires;
 * 2. when a URL rule says `breaks`, django-environ fails, or reads something other than the strict
 *    reading or than the parts the value was built from (what the operator meant);
 * 3. a URL built from correctly percent-encoded parts draws no finding exactly when django-environ
 *    reads those parts back.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { lintSnapshot, type Finding } from '../../src/lint/index.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SEED = 17;
const RUNS_PER_KEY = 1_000;

interface Parts {
  readonly user: string;
  readonly password: string;
  readonly host: string;
  readonly port: number | null;
  readonly database: string;
}
type Reader = 'email' | 'database' | 'redis' | 'str';
type Answer = ({ ok: true } & Parts & { same?: boolean }) | { ok: false; error: string };

let pythonPath = '';
beforeAll(() => {
  try {
    pythonPath = execFileSync('bash', ['scripts/lint-oracle/django-environ.sh'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 }).trim();
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(
      `lint oracle: could not fetch or import python3-django-environ 0.12 from Debian trixie (scripts/lint-oracle/django-environ.sh); this test needs it and does not skip.\n${stderr.trim()}`,
    );
  }
}, 300_000);

/** Reads every value with the real django-environ, in one python process. */
function oracle(requests: readonly { reader: Reader; key: string; value: string }[]): Answer[] {
  const result = spawnSync('python3', ['test/tools/django-environ-oracle.py'], {
    cwd: REPO,
    input: requests.map((request) => JSON.stringify(request)).join('\n') + '\n',
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: pythonPath },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`django-environ oracle exited ${result.status}: ${result.stderr}`);
  const answers = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Answer);
  expect(answers).toHaveLength(requests.length);
  return answers;
}

// ---------------------------------------------------------------- a strict RFC 3986 reading
const UNRESERVED_OR_SUB_DELIM = "A-Za-z0-9\\-._~!$&'()*+,;=";
const PCT = '%[0-9A-Fa-f]{2}';
const USERINFO = new RegExp(`^(?:[${UNRESERVED_OR_SUB_DELIM}:]|${PCT})*$`);
const REG_NAME = new RegExp(`^(?:[${UNRESERVED_OR_SUB_DELIM}]|${PCT})*$`);
const PATH = new RegExp(`^(?:/(?:[${UNRESERVED_OR_SUB_DELIM}:@]|${PCT})*)*$`);
const QUERY_OR_FRAGMENT = new RegExp(`^(?:[${UNRESERVED_OR_SUB_DELIM}:@/?]|${PCT})*$`);

/** Percent-decoding as Python's `unquote` does it (UTF-8, invalid sequences replaced). */
function percentDecode(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(text[i]!));
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

/** `scheme://[user[:password]@]host[:port][/path][?query][#fragment]` per RFC 3986, or undefined when the string is not one. */
function readStrict(value: string): Parts | undefined {
  const match = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/s.exec(value);
  if (!match) return undefined;
  const [, authority = '', path = '', query = '', fragment = ''] = match;
  if (!PATH.test(path) || !QUERY_OR_FRAGMENT.test(query) || !QUERY_OR_FRAGMENT.test(fragment)) return undefined;
  const at = authority.indexOf('@');
  const userinfo = at === -1 ? '' : authority.slice(0, at);
  const hostPort = authority.slice(at + 1);
  if (!USERINFO.test(userinfo)) return undefined;
  const hostMatch = /^(\[[0-9A-Fa-f:.]+\]|[^:]*)(?::([0-9]*))?$/.exec(hostPort);
  if (!hostMatch) return undefined;
  const [, host = '', port] = hostMatch;
  if (!host.startsWith('[') && !REG_NAME.test(host)) return undefined;
  const colon = userinfo.indexOf(':');
  return {
    user: percentDecode(colon === -1 ? userinfo : userinfo.slice(0, colon)),
    password: colon === -1 ? '' : percentDecode(userinfo.slice(colon + 1)),
    host: percentDecode(host.replace(/^\[(.*)\]$/, '$1')).toLowerCase(),
    port: port === undefined || port === '' ? null : Number(port),
    database: percentDecode(path.slice(1)),
  };
}

function sameParts(answer: Answer, parts: Parts | undefined): boolean {
  return answer.ok && parts !== undefined && (['user', 'password', 'host', 'port', 'database'] as const).every((name) => answer[name] === parts[name]);
}

// ---------------------------------------------------------------- generated URLs
const ALNUM = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'];
const PRINTABLE_SYMBOLS = [...' !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'];
const TRAPS = ['\t', '\n', '\r', 'é', '＠', '／', '%41', '%40', '%2F', '%zz', '%4', '::', '@@'];
const userinfoUnit = fc.oneof(
  { weight: 24, arbitrary: fc.constantFrom(...ALNUM) },
  { weight: 6, arbitrary: fc.constantFrom(...PRINTABLE_SYMBOLS) },
  { weight: 1, arbitrary: fc.constantFrom(...TRAPS) },
);
const nameUnit = fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...ALNUM, '_', '-', '.') }, { weight: 1, arbitrary: fc.constantFrom('+', ' ', '%2B', '%zz', '%', ';', '@', ':') });

const SCHEMES: Readonly<Record<Exclude<Reader, 'str'>, readonly string[]>> = {
  email: ['smtp', 'smtps', 'smtp+tls', 'smtp+ssl'],
  database: ['postgres', 'postgresql', 'pgsql'],
  redis: ['redis', 'rediss'],
};

interface Built {
  readonly value: string;
  /** The parts the value was built from: what the operator meant. */
  readonly meant: Parts;
  readonly encoded: boolean;
}

function urls(reader: Exclude<Reader, 'str'>): fc.Arbitrary<Built> {
  return fc
    .record({
      scheme: fc.constantFrom(...SCHEMES[reader]),
      user: fc.string({ unit: userinfoUnit, maxLength: 10 }),
      password: fc.option(fc.string({ unit: userinfoUnit, maxLength: 16 }), { nil: undefined }),
      host: fc.constantFrom('smtp.example.com', 'postgres', 'valkey', '127.0.0.1', '[::1]', 'Mail.Example.ORG'),
      port: fc.option(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 65_535 }).map(String) }, { weight: 1, arbitrary: fc.constantFrom('0025', '70000', '') }), { nil: undefined }),
      database: fc.option(reader === 'redis' ? fc.integer({ min: 0, max: 15 }).map(String) : fc.string({ unit: nameUnit, maxLength: 10 }), { nil: undefined }),
      encoded: fc.boolean(),
    })
    .map(({ scheme, user, password, host, port, database, encoded }) => {
      const encode = encoded ? encodeURIComponent : (text: string) => text;
      const userinfo = user === '' && password === undefined ? '' : `${encode(user)}${password === undefined ? '' : `:${encode(password)}`}@`;
      const value = `${scheme}://${userinfo}${host}${port === undefined ? '' : `:${port}`}${database === undefined ? '' : `/${encode(database)}`}`;
      const meant: Parts = {
        user,
        password: password ?? '',
        host: host.replace(/^\[(.*)\]$/, '$1').toLowerCase(),
        port: port === undefined || port === '' ? null : Number(port),
        database: database ?? '',
      };
      return { value, meant, encoded };
    });
}

const isUrlBreak = (finding: Finding) => finding.severity === 'breaks' && finding.ruleId.startsWith('url-');

/**
 * Checks properties 1–3 for every value and returns the disagreements, each with the value (test
 * data, not a secret), and how many values django-environ read differently from RFC 3986.
 */
function disagreements(key: string, reader: Exclude<Reader, 'str'>, cases: readonly Built[]): { problems: string[]; differing: number } {
  const answers = oracle(cases.map(({ value }) => ({ reader, key, value })));
  const problems: string[] = [];
  let differing = 0;
  cases.forEach(({ value, meant, encoded }, index) => {
    const answer = answers[index]!;
    const findings = lintSnapshot(new Map([[key, value]]), { consumer: 'glitchtip', requiredKeys: [], derivedKeys: [] });
    const rules = findings.map((finding) => finding.ruleId).join(',') || 'none';
    const readsStrictly = sameParts(answer, readStrict(value));
    const readsAsMeant = sameParts(answer, meant);
    const seen = `${JSON.stringify(value)} → django-environ ${JSON.stringify(answer)}; rules: ${rules}`;
    if (!readsStrictly) differing++;
    if (!readsStrictly && findings.length === 0) problems.push(`no rule fired although django-environ differs from RFC 3986: ${seen}`);
    if (findings.some(isUrlBreak) && readsStrictly && readsAsMeant) problems.push(`a rule says breaks but django-environ reads it as written: ${seen}`);
    if (encoded && (findings.length === 0) !== readsAsMeant) problems.push(`a correctly encoded URL: findings and django-environ disagree: ${seen}`);
  });
  return { problems, differing };
}

const URL_KEYS: readonly [string, Exclude<Reader, 'str'>][] = [
  ['EMAIL_URL', 'email'],
  ['DATABASE_URL', 'database'],
  ['READ_ONLY_DATABASE_URL', 'database'],
  ['MAINTENANCE_DATABASE_URL', 'database'],
  ['REDIS_URL', 'redis'],
  ['VALKEY_URL', 'redis'],
  ['CELERY_BROKER_URL', 'redis'],
];

describe('URL rules agree with the real django-environ', () => {
  for (const [key, reader] of URL_KEYS) {
    it(`${key}: ${RUNS_PER_KEY} generated URLs (seed ${SEED})`, () => {
      const cases = fc.sample(urls(reader), { seed: SEED, numRuns: RUNS_PER_KEY });
      const { problems, differing } = disagreements(key, reader, cases);
      expect(problems).toEqual([]);
      // Both sides of the property are exercised: many values django-environ misreads, many it reads right.
      expect(differing).toBeGreaterThan(RUNS_PER_KEY / 10);
      expect(differing).toBeLessThan(RUNS_PER_KEY * 0.9);
    });
  }

  /** The known traps, with the parts the operator meant and the rules that must name them. */
  const TRAP_TABLE: readonly { key: string; reader: Exclude<Reader, 'str'>; value: string; meant: Parts; rules: string[]; asMeant?: true }[] = [
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://glitchtip%40app:pa/ss@smtp.example.com:2525', meant: parts('glitchtip@app', 'pa/ss', 'smtp.example.com', 2525), rules: ['url-userinfo-delimiter'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:pa?ss@smtp.example.com:587', meant: parts('user', 'pa?ss', 'smtp.example.com', 587), rules: ['url-userinfo-delimiter'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:pa#ss@smtp.example.com:587', meant: parts('user', 'pa#ss', 'smtp.example.com', 587), rules: ['url-userinfo-delimiter'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://us/er:pass@smtp.example.com:587', meant: parts('us/er', 'pass', 'smtp.example.com', 587), rules: ['url-userinfo-delimiter'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://glitchtip@app:secret@smtp.example.com:2525', meant: parts('glitchtip@app', 'secret', 'smtp.example.com', 2525), rules: ['url-userinfo-at'], asMeant: true },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:p%41ss@smtp.example.com:25', meant: parts('user', 'p%41ss', 'smtp.example.com', 25), rules: ['url-percent-literal'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:100%@smtp.example.com:25', meant: parts('user', '100%', 'smtp.example.com', 25), rules: ['url-percent-stray'], asMeant: true },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:pa[ss@smtp.example.com:25', meant: parts('user', 'pa[ss', 'smtp.example.com', 25), rules: ['url-bracket'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:pa\tss@smtp.example.com:25', meant: parts('user', 'pa\tss', 'smtp.example.com', 25), rules: ['url-dropped-control'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:pa＠ss@smtp.example.com:25', meant: parts('user', 'pa＠ss', 'smtp.example.com', 25), rules: ['url-nfkc-delimiter', 'url-invalid-character'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://user:pass@smtp.example.com:70000', meant: parts('user', 'pass', 'smtp.example.com', 70000), rules: ['url-port'] },
    { key: 'EMAIL_URL', reader: 'email', value: 'mailto://user:pass@smtp.example.com:25', meant: parts('user', 'pass', 'smtp.example.com', 25), rules: ['url-scheme'] },
    { key: 'DATABASE_URL', reader: 'database', value: 'postgres://glitchtip:pa/ss@postgres:5432/glitchtip', meant: parts('glitchtip', 'pa/ss', 'postgres', 5432, 'glitchtip'), rules: ['url-userinfo-delimiter'] },
    { key: 'DATABASE_URL', reader: 'database', value: 'postgres://glitchtip:p%40ss@postgres:5432', meant: parts('glitchtip', 'p@ss', 'postgres', 5432), rules: ['url-no-database-name'] },
    { key: 'DATABASE_URL', reader: 'database', value: 'postgres://glitchtip:pass@[::1]:5432', meant: parts('glitchtip', 'pass', '::1', 5432), rules: ['url-no-database-name'] },
    { key: 'DATABASE_URL', reader: 'database', value: 'postgres://glitchtip:pass@postgres:5432/glitch+tip', meant: parts('glitchtip', 'pass', 'postgres', 5432, 'glitch+tip'), rules: ['url-plus-in-name'] },
    { key: 'DATABASE_URL', reader: 'database', value: 'postgres://glitchtip:pass@postgres:5432/glitchtip\n', meant: parts('glitchtip', 'pass', 'postgres', 5432, 'glitchtip'), rules: ['trailing-newline'], asMeant: true },
    { key: 'VALKEY_URL', reader: 'redis', value: 'redis://:pa#ss@valkey:6379/0', meant: parts('', 'pa#ss', 'valkey', 6379, '0'), rules: ['url-userinfo-delimiter'] },
    { key: 'VALKEY_URL', reader: 'redis', value: 'redis://:p%2Fss@valkey:6379/0', meant: parts('', 'p/ss', 'valkey', 6379, '0'), rules: [] },
    { key: 'EMAIL_URL', reader: 'email', value: 'smtp://glitchtip%40app:p%2Fss%3F@smtp.example.com:2525', meant: parts('glitchtip@app', 'p/ss?', 'smtp.example.com', 2525), rules: [] },
  ];

  it('the hand-written table of known traps', () => {
    const answers = oracle(TRAP_TABLE.map(({ reader, key, value }) => ({ reader, key, value })));
    TRAP_TABLE.forEach(({ key, value, meant, rules, asMeant }, index) => {
      const answer = answers[index]!;
      const findings = lintSnapshot(new Map([[key, value]]), { consumer: 'glitchtip', requiredKeys: [], derivedKeys: [] });
      const label = JSON.stringify(value);
      expect(findings.map((finding) => finding.ruleId).sort(), label).toEqual([...rules].sort());
      expect(sameParts(answer, meant), `${label}: django-environ reads it as meant`).toBe(rules.length === 0 || asMeant === true);
      if (!sameParts(answer, readStrict(value))) expect(findings.length, `${label}: differs from RFC 3986, so a rule fires`).toBeGreaterThan(0);
    });
  });
});

function parts(user: string, password: string, host: string, port: number | null, database = ''): Parts {
  return { user, password, host, port, database };
}

describe('the `$` rule agrees with the real django-environ', () => {
  it(`${RUNS_PER_KEY} generated values: django-environ reads another value (or fails) exactly when the rule fires`, () => {
    const keys = ['SECRET_KEY', 'DEFAULT_FROM_EMAIL', 'DATABASE_PASSWORD', 'VALKEY_PASSWORD', 'GLITCHTIP_DOMAIN'];
    const values = fc.sample(
      fc.record({
        key: fc.constantFrom(...keys),
        value: fc.oneof(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }).map((text) => `$${text}`), fc.constantFrom('$', '$$', '$SECRET_KEY', '\\$abc', 'a$b', ' $abc')),
      }),
      { seed: SEED, numRuns: RUNS_PER_KEY },
    );
    const answers = oracle(values.map(({ key, value }) => ({ reader: 'str' as const, key, value })));
    const problems: string[] = [];
    values.forEach(({ key, value }, index) => {
      const answer = answers[index]!;
      const readsAnother = !answer.ok || answer.same === false;
      const fires = lintSnapshot(new Map([[key, value]]), { consumer: 'glitchtip', requiredKeys: [], derivedKeys: [] }).some((finding) => finding.ruleId === 'dollar-prefix');
      if (readsAnother !== fires) problems.push(`${key}=${JSON.stringify(value)}: django-environ ${JSON.stringify(answer)}, dollar-prefix ${fires ? 'fires' : 'silent'}`);
    });
    expect(problems).toEqual([]);
  });
});
