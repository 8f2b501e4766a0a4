/**
 * Every lint rule on its own, the generic rules against the behaviour they describe (the postgres
 * image's `$(< file)`, run with bash), Django's SECRET_KEY check, and the leak guard: no finding,
 * log line, `/healthz` warning or metric label carries any part of a value.
 * The URL and `$` rules are held to the real django-environ in test/system/lint-oracle.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { renderLintRules } from '../scripts/reference.js';
import { countBySeverity, lintSnapshot, RULES, toWarnings, type Finding, type LintOptions, type RuleId } from '../src/lint/index.js';
import { hostPortAt } from '../src/lint/url.js';
import { trimEndOf, withoutChars } from '../src/text.js';
import { forms, leakGuard } from './helpers/canaries.js';
import { testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const guard = leakGuard(2_000);
const GLITCHTIP: LintOptions = { consumer: 'glitchtip', requiredKeys: [], derivedKeys: [] };
const lint = (entries: Record<string, string>, options: Partial<LintOptions> = {}) => lintSnapshot(new Map(Object.entries(entries)), { ...GLITCHTIP, ...options });
const ruleIds = (findings: readonly Finding[]) => findings.map((finding) => finding.ruleId);

/** One value per rule that fires it alone (with its key), and the position class its message names. */
const EXAMPLES: Readonly<Record<RuleId, { key: string; value: string; where: string; options?: Partial<LintOptions>; alongside?: RuleId }>> = {
  'trailing-newline': { key: 'POSTGRES_PASSWORD', value: 'c0rrect-horse\n', where: 'end of the value' },
  'surrounding-whitespace': { key: 'POSTGRES_PASSWORD', value: ' c0rrect-horse', where: 'start of the value' },
  'near-miss-key': { key: 'SECRET-KEY', value: 'k'.repeat(10) + 'abcdefghij'.repeat(5), where: 'required key SECRET_KEY', options: { requiredKeys: ['SECRET_KEY'] } },
  'dollar-prefix': { key: 'DATABASE_PASSWORD', value: '$abc', where: 'start of the value' },
  'url-scheme': { key: 'EMAIL_URL', value: 'mailto://u:p@smtp.example.com:25', where: 'scheme of the URL' },
  'url-userinfo-delimiter': { key: 'EMAIL_URL', value: 'smtp://u:pa/ss@smtp.example.com:25', where: 'password part of the URL' },
  'url-userinfo-at': { key: 'EMAIL_URL', value: 'smtp://glitchtip@app:pass@smtp.example.com:25', where: 'user part of the URL' },
  'url-bracket': { key: 'EMAIL_URL', value: 'smtp://u:pa]ss@smtp.example.com:25', where: 'password part of the URL' },
  'url-dropped-control': { key: 'EMAIL_URL', value: 'smtp://u:pa\tss@smtp.example.com:25', where: 'URL' },
  'url-nfkc-delimiter': { key: 'DATABASE_URL', value: 'postgres://u:pass@post／gres:5432/glitchtip', where: 'host part of the URL', alongside: 'url-invalid-character' },
  'url-invalid-character': { key: 'REDIS_URL', value: 'redis://:pa ss@valkey:6379/0', where: 'password part of the URL' },
  'url-percent-literal': { key: 'VALKEY_URL', value: 'redis://:p%41ss@valkey:6379/0', where: 'password part of the URL' },
  'url-percent-stray': { key: 'EMAIL_URL', value: 'smtp://u:100%@smtp.example.com:25', where: 'password part of the URL' },
  'url-no-database-name': { key: 'DATABASE_URL', value: 'postgres://glitchtip:p%40ss@postgres:5432', where: 'password part of the URL' },
  'url-port': { key: 'EMAIL_URL', value: 'smtp://u:p@smtp.example.com:70000', where: 'port of the URL' },
  'url-plus-in-name': { key: 'DATABASE_URL', value: 'postgres://u:p@postgres:5432/glitch+tip', where: 'database name (path) of the URL' },
  'secret-key-short': { key: 'SECRET_KEY', value: '0123456789abcdef', where: 'length of the value' },
  'secret-key-repetitive': { key: 'SECRET_KEY', value: 'abcd'.repeat(13), where: 'characters of the value' },
  'secret-key-insecure-prefix': { key: 'SECRET_KEY', value: `django-insecure-${'0123456789abcdef'.repeat(3)}`, where: 'start of the value' },
  'from-email-not-address': { key: 'DEFAULT_FROM_EMAIL', value: 'GlitchTip', where: 'value' },
};

describe('each rule', () => {
  for (const [ruleId, { key, value, where, options, alongside }] of Object.entries(EXAMPLES) as [RuleId, (typeof EXAMPLES)[RuleId]][]) {
    it(`${ruleId}: fires on its example (alone, or with the one rule that must come along), names key, rule and place, and says the severity of the table`, () => {
      const findings = lint({ [key]: value }, options);
      guard.observe(JSON.stringify(findings));
      expect(ruleIds(findings)).toEqual(alongside ? [ruleId, alongside].sort((a, b) => Object.keys(RULES).indexOf(a) - Object.keys(RULES).indexOf(b)) : [ruleId]);
      const finding = findings.find((f) => f.ruleId === ruleId);
      expect(finding).toMatchObject({ key, ruleId, severity: RULES[ruleId].severity, fix: RULES[ruleId].fix });
      expect(finding!.message).toContain(key);
      expect(finding!.message).toContain(ruleId);
      expect(finding!.message).toContain(where);
    });
  }

  it('values GlitchTip reads as written draw no finding', () => {
    const clean = {
      POSTGRES_PASSWORD: 'Zm9vYmFyYmF6cXV4Cg',
      SECRET_KEY: '5f0e1c9a7b3d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f',
      EMAIL_URL: 'smtp://glitchtip%40app:p%2Fss%3Fw%23rd%3A%40@smtp.postal.example.com:2525',
      DATABASE_URL: 'postgres://glitchtip_maintainer:p%2540ss@postgres:5432/glitchtip',
      VALKEY_URL: 'redis://:secret@valkey:6379/0',
      DEFAULT_FROM_EMAIL: 'GlitchTip <glitchtip@jefahnierocks.com>',
      NOT_READ_BY_GLITCHTIP_URL: 'smtp://u:pa/ss@host',
    };
    expect(lint(clean)).toEqual([]);
  });

  it('SIDECAR_CONSUMER=none runs only the generic rules', () => {
    const findings = lint({ EMAIL_URL: 'smtp://u:pa/ss@smtp.example.com:25', SECRET_KEY: '$short', POSTGRES_PASSWORD: 'pw\n' }, { consumer: 'none' });
    expect(ruleIds(findings)).toEqual(['trailing-newline']);
  });

  it('a derived value points at its template', () => {
    const [finding] = lint({ DATABASE_URL: 'postgres://u:pa/ss@postgres:5432/glitchtip' }, { derivedKeys: ['DATABASE_URL'] });
    expect(finding!.message).toContain('derived');
    expect(finding!.fix).toMatch(/^Fix the template/);
  });

  it('/healthz warnings hold each key once with its worst severity; metrics count by severity', () => {
    const findings = lint({ SECRET_KEY: 'short', EMAIL_URL: 'smtp://u:pa/ss@h:25?x=1\n' });
    expect(toWarnings(findings)).toEqual([
      { key: 'EMAIL_URL', severity: 'breaks' },
      { key: 'SECRET_KEY', severity: 'advice' },
    ]);
    expect(countBySeverity(findings)).toEqual({ breaks: 2, advice: 1 });
  });
});

describe('near-miss keys', () => {
  const required = ['SECRET_KEY', 'EMAIL_URL', 'DATABASE_URL', 'DEFAULT_FROM_EMAIL'];
  it.each([
    ['EMAIL_URl', 'EMAIL_URL'],
    ['SECRET-KEY', 'SECRET_KEY'],
    ['secret.key', 'SECRET_KEY'],
    ['EMAIL_UR', 'EMAIL_URL'],
    ['DATABSE_URL', 'DATABASE_URL'],
    ['DEFUALT_FROM_EMAIL', 'DEFAULT_FROM_EMAIL'],
  ])('%s is named as a near miss of the missing %s', (key, wanted) => {
    const findings = lint({ [key]: 'x' }, { consumer: 'none', requiredKeys: required });
    expect(findings.filter((f) => f.ruleId === 'near-miss-key').map((f) => f.message)).toEqual([expect.stringContaining(`required key ${wanted}, which is missing`)]);
  });

  it('is silent when the required key is present, or the name is not close', () => {
    expect(lint({ SECRET_KEY: 'x', SECRET_KEYS: 'y' }, { consumer: 'none', requiredKeys: ['SECRET_KEY'] })).toEqual([]);
    expect(lint({ EMAIL_HOST: 'x', SENTRY_DSN: 'y' }, { consumer: 'none', requiredKeys: ['EMAIL_URL', 'SECRET_KEY'] })).toEqual([]);
  });
});

describe('whitespace rules against the postgres image (docker-entrypoint.sh file_env: `val="$(< "${!fileVar}")"`)', () => {
  it('trailing-newline fires exactly when bash `$(< file)` reads another value than the bytes the env file and django-environ keep', () => {
    const values = fc.sample(fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\t', '\n', '\r'), maxLength: 8 }), { seed: 17, numRuns: 200 });
    const dir = makeTempDir('lint-ws-');
    values.forEach((value, index) => writeFileSync(path.join(dir, String(index).padStart(4, '0')), value));
    // One bash for all files; NUL ends each value read (the values hold none).
    const script = 'for f in "$1"/*; do v="$(< "$f")"; printf "%s\\0" "$v"; done';
    const read = execFileSync('bash', ['-c', script, 'bash', dir], { encoding: 'utf8' }).split('\0');
    expect(read).toHaveLength(values.length + 1);
    values.forEach((value, index) => {
      const postgresReads = read[index]!;
      const fires = ruleIds(lint({ POSTGRES_PASSWORD: value }, { consumer: 'none' }));
      expect(fires.includes('trailing-newline'), JSON.stringify(value)).toBe(postgresReads !== value);
      // Spaces and tabs survive `$(< file)`: every reader agrees on them, hence only advice.
      if (/^[ \t]|[ \t]$/.test(value)) expect(fires, JSON.stringify(value)).toContain('surrounding-whitespace');
    });
  }, 60_000);
});

describe("Django's SECRET_KEY check (security.W009: len < 50, len(set()) < 5, 'django-insecure-' prefix)", () => {
  it.each([
    ['a'.repeat(49), ['secret-key-short', 'secret-key-repetitive']],
    ['abcde'.repeat(10), []],
    ['abcd'.repeat(13), ['secret-key-repetitive']],
    ['é'.repeat(25) + 'abcd'.repeat(7), []],
    ['🔑'.repeat(30) + 'abcd', ['secret-key-short']],
    [`django-insecure-${'x1y2z3'.repeat(6)}`, ['secret-key-insecure-prefix']],
  ])('%j → %j', (value, expected) => {
    expect(ruleIds(lint({ SECRET_KEY: value }))).toEqual(expected);
  });
});

describe('DEFAULT_FROM_EMAIL', () => {
  it.each(['glitchtip@jefahnierocks.com', 'webmaster@localhost', 'GlitchTip <glitchtip@example.com>', '"Glitch Tip" <gt+alerts@example.com>'])('%s is an address', (value) => {
    expect(lint({ DEFAULT_FROM_EMAIL: value })).toEqual([]);
  });
  it.each(['glitchtip', '@example.com', 'glitchtip@', 'GlitchTip <>', 'a b@example.com', 'glitchtip@example.com\nBcc: x@y.z'])('%j is not', (value) => {
    expect(ruleIds(lint({ DEFAULT_FROM_EMAIL: value }))).toContain('from-email-not-address');
  });
});

describe('leak guard', () => {
  it('no finding, log line, /healthz warning or metric label holds any form of a value', () => {
    const values = {
      EMAIL_URL: `smtp://glitchtip@app:${guard.canary('mail')}@smtp.example.com:25`,
      DATABASE_URL: `postgres://glitchtip:${guard.canary('db', 'plain')}#x@postgres:5432`,
      SECRET_KEY: `$${guard.canary('sk', 'plain')}`,
      DEFAULT_FROM_EMAIL: guard.canary('from'),
      'SECRET-KEY': `${guard.canary('near', 'plain')} `,
    };
    const findings = lint(values, { requiredKeys: ['SECRET_KEY_X'], derivedKeys: ['DATABASE_URL'] });
    expect(findings.length).toBeGreaterThan(8);
    const { log, logs } = testLogger();
    for (const { key, ruleId, severity, message, fix } of findings) log.warn({ key, rule: ruleId, severity, message, fix }, 'lint finding');
    guard.observe(JSON.stringify(findings), JSON.stringify(toWarnings(findings)), JSON.stringify(countBySeverity(findings)), logs.text());
    for (const value of Object.values(values)) {
      for (const form of forms(value)) expect(JSON.stringify(findings).includes(form)).toBe(false);
    }
  });

  it('generated values: a message or fix never contains the value', () => {
    fc.assert(
      fc.property(fc.constantFrom('EMAIL_URL', 'DATABASE_URL', 'SECRET_KEY', 'DEFAULT_FROM_EMAIL', 'VALKEY_URL'), fc.string({ minLength: 12, maxLength: 40 }), (key, secret) => {
        const text = lint({ [key]: `smtp://u:${secret}@h:25/${secret}` }).map((f) => `${f.message}\n${f.fix}`).join('\n');
        return !text.includes(secret);
      }),
      { seed: 17, numRuns: 500 },
    );
  });
});

describe('docs/lint-rules.md', () => {
  it('matches the rule table (run `npm run docs` after changing it)', () => {
    const doc = readFileSync(new URL('../docs/lint-rules.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderLintRules());
    for (const id of Object.keys(RULES)) expect(doc).toContain(`\`${id}\``);
  });
});

describe('the URL split decides in one scan what its regex decided by backtracking', () => {
  const HOST_PORT_AHEAD = /^(?:\[[^\]/?#@]*\]|[^/?#@[\]]*)(?::[^/?#@]*)?(?:[/?#]|$)/;
  const urlCharacter = fc.constantFrom('[', ']', ':', '@', '/', '?', '#', 'a', '1', '%');

  it('hostPortAt agrees with the regex on every text made of the characters that matter, at every offset', () => {
    fc.assert(
      fc.property(fc.string({ unit: urlCharacter, maxLength: 14 }), fc.nat(15), (text, from) => {
        expect(hostPortAt(text, from)).toBe(HOST_PORT_AHEAD.test(text.slice(from)));
      }),
      { numRuns: 20_000, seed: 23 },
    );
  });

  it('trailing line breaks are trimmed as the generic and URL rules did, without a regex', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('\r', '\n', ' ', 'x'), maxLength: 12 }), (text) => {
        expect(trimEndOf(text, '\r\n')).toBe(text.replace(/[\r\n]+$/, ''));
        expect(trimEndOf(text, '\n')).toBe(text.replace(/\n+$/, ''));
      }),
      { numRuns: 5_000, seed: 23 },
    );
  });
});

describe('characters removed by runs, not by a global regex', () => {
  it('withoutChars removes exactly what the regex removed', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('\t', '\r', '\n', 'a', 'é', '😀'), maxLength: 20 }), (text) => {
        expect(withoutChars(text, '\t\r\n')).toBe(text.replace(/[\t\r\n]/g, ''));
      }),
      { numRuns: 5_000, seed: 23 },
    );
  });
});
