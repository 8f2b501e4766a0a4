/**
 * Hostile input at the whole-program level: hostile secrets travel from the fake Infisical server over
 * HTTP through the real client, merge, render and writer, and each ends in a defined outcome, in the
 * files *and* in the logs. (The pure render functions have their own ≥30-case table and
 * property tests in test/render*.test.ts; this file does not repeat them.)
 *
 *  - keys that are not env names or not safe file names: kept in secrets.json always; left out of
 *    the env/dotenv files (`not-an-env-name`, `contains-nul`) or of keys/ (`unsafe-file-name`) with
 *    one warning per key and output, naming the key (control characters escaped) and never the value;
 *  - a key defined in two folders: the later folder in INFISICAL_SECRET_PATHS wins, with a warning;
 *  - values of 1 MiB (10,000 secrets in one folder: test/system/survive-hostile.test.ts).
 *
 * Every sidecar here runs on a manual clock (test/helpers/clock.ts) that nobody moves: its request and
 * `once` deadlines cannot cut a big payload short however slow the machine is, so only what the
 * sidecar does with the input decides the outcome.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { scenario } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand } from './helpers/sidecar.js';

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(10_000);
const HOSTILE_PATH = '/glitchtip/hostile';
const BASE_PATHS = `${DEMO_DATABASE_PATH},${DEMO_APPLICATION_PATH}`;
/** `once` through the CLI, on a clock of its own that stands still (see the header). */
const once = (env: Record<string, string>) => runCommand(['once'], env, undefined, new ManualClock());

type Kept = 'kept' | 'not-an-env-name' | 'contains-nul' | 'unsafe-file-name';
interface KeyCase {
  readonly key: string;
  /** secrets.env and secrets.dotenv */
  readonly env: Kept;
  /** keys/<key> */
  readonly files: Kept;
  readonly why: string;
}

/** The documented outcome for each hostile key (docs: SECURITY.md "Hostile input"). secrets.json keeps every key. */
const KEY_CASES: readonly KeyCase[] = [
  { key: 'my.key', env: 'not-an-env-name', files: 'kept', why: 'dot' },
  { key: 'my-key', env: 'not-an-env-name', files: 'kept', why: 'dash' },
  { key: '-dash-first', env: 'not-an-env-name', files: 'kept', why: 'leading dash' },
  { key: '1LEADING_DIGIT', env: 'not-an-env-name', files: 'kept', why: 'leading digit' },
  { key: 'ключ', env: 'not-an-env-name', files: 'kept', why: 'unicode' },
  { key: 'emoji😀', env: 'not-an-env-name', files: 'kept', why: 'astral unicode' },
  { key: 'KEY WITH SPACE', env: 'not-an-env-name', files: 'kept', why: 'space' },
  { key: 'tab\tkey', env: 'not-an-env-name', files: 'kept', why: 'tab' },
  { key: 'new\nline', env: 'not-an-env-name', files: 'kept', why: 'newline (a legal file name; escaped in logs)' },
  { key: "qu'ote", env: 'not-an-env-name', files: 'kept', why: 'single quote' },
  { key: 'back\\slash', env: 'not-an-env-name', files: 'kept', why: 'backslash' },
  { key: '$(id)', env: 'not-an-env-name', files: 'kept', why: 'command substitution' },
  { key: '`id`', env: 'not-an-env-name', files: 'kept', why: 'backticks' },
  { key: 'secrets.env', env: 'not-an-env-name', files: 'kept', why: 'an output name (lives in keys/, no clash)' },
  { key: '.hidden', env: 'not-an-env-name', files: 'kept', why: 'dot file' },
  { key: '.', env: 'not-an-env-name', files: 'unsafe-file-name', why: 'current directory' },
  { key: '..', env: 'not-an-env-name', files: 'unsafe-file-name', why: 'parent directory' },
  { key: '..data', env: 'not-an-env-name', files: 'unsafe-file-name', why: "the writer's own link name" },
  { key: '..rev-000001-x', env: 'not-an-env-name', files: 'unsafe-file-name', why: "the writer's version name" },
  { key: 'NUL\0KEY', env: 'not-an-env-name', files: 'unsafe-file-name', why: 'NUL' },
  { key: '\uD800lone', env: 'not-an-env-name', files: 'unsafe-file-name', why: 'lone surrogate' },
  { key: `LONG_${'A'.repeat(295)}`, env: 'kept', files: 'unsafe-file-name', why: '300 bytes: an env name, too long for a file name' },
  { key: `B${'b'.repeat(254)}`, env: 'kept', files: 'kept', why: '255 bytes: the longest file name' },
  { key: '__proto__', env: 'kept', files: 'kept', why: 'prototype name' },
  { key: 'constructor', env: 'kept', files: 'kept', why: 'prototype name' },
  { key: 'lower_case', env: 'kept', files: 'kept', why: 'lower case' },
  { key: '_UNDERSCORE', env: 'kept', files: 'kept', why: 'leading underscore' },
];

/** Values that matter at this level; NUL makes the env outputs drop the key (`contains-nul`). */
const NUL_VALUE_KEY = 'VALUE_WITH_NUL';
const DOLLAR_VALUE_KEY = 'VALUE_STARTING_WITH_DOLLAR';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const printable = (key: string) => JSON.stringify(key).slice(1, -1);

/** What `sh` sees after sourcing `file` once, for each of `keys`, as sha256 hashes (values can be megabytes). */
function sourcedHashes(shell: string, file: string, keys: readonly string[]): string[] {
  const script = `. "$1"; ${keys.map((key) => `printf '%s' "$${key}" | sha256sum;`).join(' ')}`;
  return execFileSync(shell, ['-c', script, shell, file], { encoding: 'utf8', maxBuffer: 1 << 20 })
    .trim()
    .split('\n')
    .map((line) => line.split(' ')[0]!);
}

describe('hostile input, end to end', () => {
  it(`${KEY_CASES.length} hostile keys and two hostile values: defined outcome in every file and in the logs`, async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const values = new Map<string, string>();
    for (const { key } of KEY_CASES) {
      const value = guard.canary('hostile-key', 'plain');
      values.set(key, value);
      fake.setSecret(DEMO_ENVIRONMENT, HOSTILE_PATH, key, value);
    }
    const nulValue = `${guard.canary('nul', 'plain')}\0after-nul`;
    const dollarValue = `$${guard.canary('dollar', 'plain')}`; // django-environ would read this as a reference
    fake.setSecret(DEMO_ENVIRONMENT, HOSTILE_PATH, NUL_VALUE_KEY, nulValue);
    fake.setSecret(DEMO_ENVIRONMENT, HOSTILE_PATH, DOLLAR_VALUE_KEY, dollarValue);
    values.set(NUL_VALUE_KEY, nulValue);
    values.set(DOLLAR_VALUE_KEY, dollarValue);

    const dir = s.tempDir();
    const result = await once(glitchtipEnv(fake, dir, { ...FAST, INFISICAL_SECRET_PATHS: `${BASE_PATHS},${HOSTILE_PATH}` }));
    expect(result.code).toBe(0);

    // secrets.json: every key, byte-exact (JSON.parse keeps __proto__ as an own property).
    const json = JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as Record<string, string>;
    for (const [key, value] of values) expect(Object.prototype.hasOwnProperty.call(json, key) && json[key] === value, printable(key)).toBe(true);

    // keys/: one file per safe name, holding the exact bytes; nothing for the unsafe ones.
    const keyFiles = new Set(readdirSync(path.join(dir, 'keys')));
    for (const { key, files } of KEY_CASES) {
      expect(keyFiles.has(key), `keys/${printable(key)}`).toBe(files === 'kept');
      if (files === 'kept') expect(readFileSync(path.join(dir, 'keys', key), 'utf8')).toBe(values.get(key));
    }
    expect(readFileSync(path.join(dir, 'keys', NUL_VALUE_KEY))).toEqual(Buffer.from(nulValue));
    expect(readFileSync(path.join(dir, 'keys', DOLLAR_VALUE_KEY), 'utf8')).toBe(dollarValue);

    // secrets.env: dash and bash source exactly the env-name keys, to the exact value ($ stays literal).
    const envFile = path.join(dir, 'secrets.env');
    const envText = readFileSync(envFile, 'utf8');
    for (const { key, env } of KEY_CASES) {
      const line = envText.split('\n').find((l) => l.startsWith(`${key}=`));
      expect(line !== undefined, printable(key)).toBe(env === 'kept');
    }
    expect(envText).not.toContain(NUL_VALUE_KEY);
    const envKeys = [...KEY_CASES.filter((c) => c.env === 'kept').map((c) => c.key), DOLLAR_VALUE_KEY];
    for (const shell of ['dash', 'bash']) {
      expect(sourcedHashes(shell, envFile, envKeys), shell).toEqual(envKeys.map((key) => sha256(values.get(key)!)));
    }
    const dotenvText = readFileSync(path.join(dir, 'secrets.dotenv'), 'utf8');
    for (const { key, env } of KEY_CASES) expect(dotenvText.split('\n').some((l) => l.startsWith(`${key}=`)), `dotenv ${printable(key)}`).toBe(env === 'kept');

    // Logs: every line one JSON object; one warning per (key, output) left out, naming the key escaped.
    const rawLines = result.logs.text().split('\n').filter((line) => line !== '');
    expect(rawLines.every((line) => typeof JSON.parse(line) === 'object')).toBe(true);
    const warned = new Set(
      result.logs
        .lines()
        .filter((line) => line.msg === 'key left out of an output')
        .map((line) => `${line.key as string} | ${line.output as string} | ${line.reason as string}`),
    );
    const expected = new Set<string>();
    for (const { key, env, files } of KEY_CASES) {
      if (env !== 'kept') for (const output of ['secrets.env', 'secrets.dotenv']) expected.add(`${printable(key)} | ${output} | ${env}`);
      if (files !== 'kept') expected.add(`${printable(key)} | keys | ${files}`);
    }
    for (const output of ['secrets.env', 'secrets.dotenv']) expected.add(`${NUL_VALUE_KEY} | ${output} | contains-nul`);
    // The dotenv dialect also refuses `$…` values that a reader would interpolate; that is the render stage's rule.
    for (const line of warned) if (line.includes('dotenv-')) expected.add(line);
    expect([...warned].sort()).toEqual([...expected].sort());
    console.info(`[survive] hostile keys: ${KEY_CASES.length} keys + 2 values end to end; ${warned.size} (key, output) exclusions logged`);
  });

  it('a key in two folders: the later folder wins in every output, with a warning naming the key and both folders', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const fromDatabase = guard.canary('dup-db', 'plain');
    const fromApplication = guard.canary('dup-app', 'plain');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'SECRET_KEY', fromDatabase);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', fromApplication);

    for (const [paths, winner, loser, value] of [
      [BASE_PATHS, DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, fromApplication],
      [`${DEMO_APPLICATION_PATH},${DEMO_DATABASE_PATH}`, DEMO_DATABASE_PATH, DEMO_APPLICATION_PATH, fromDatabase],
    ] as const) {
      const dir = s.tempDir();
      const result = await once(glitchtipEnv(fake, dir, { ...FAST, INFISICAL_SECRET_PATHS: paths }));
      expect(result.code).toBe(0);
      expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).toBe(value);
      expect((JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as Record<string, string>).SECRET_KEY).toBe(value);
      expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toContain(`SECRET_KEY='${value}'\n`);
      const warnings = result.logs.lines().filter((line) => line.msg === 'key defined in more than one folder; the later folder wins');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 'warn', key: 'SECRET_KEY', from: loser, winner });
    }
  });

  it('1 MiB values: byte-exact in keys/, json and the env file for dash and bash; the environment limit is the consumer’s', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    // 1 MiB (in UTF-8) of everything a shell or a parser could trip on, in a deterministic mix.
    const pieces = ["'", '"', '\\', '$', '$(id)', '`id`', '${HOME}', '\n', '\r', '\t', ' ', 'é', '😀', '%', '#', '=', 'x'.repeat(40)];
    const parts = [guard.canary('mib', 'plain')];
    for (let i = 0, bytes = 0; bytes < 1024 * 1024; i++) {
      const piece = pieces[(i * 7) % pieces.length]!;
      parts.push(piece);
      bytes += Buffer.byteLength(piece);
    }
    const big = parts.join('');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', big);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', ` ${big} `);

    const dir = s.tempDir();
    const result = await once(glitchtipEnv(fake, dir, FAST));
    expect(result.code).toBe(0);
    // Buffer.equals, not toEqual: vitest compares a 1 MiB Buffer element by element (seconds).
    expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY')).equals(Buffer.from(big))).toBe(true);
    expect(readFileSync(path.join(dir, 'keys', 'EMAIL_URL')).equals(Buffer.from(` ${big} `))).toBe(true);
    const json = JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as Record<string, string>;
    expect(json.SECRET_KEY === big && json.EMAIL_URL === ` ${big} `).toBe(true);
    for (const shell of ['dash', 'bash']) {
      expect(sourcedHashes(shell, path.join(dir, 'secrets.env'), ['SECRET_KEY', 'EMAIL_URL']), shell).toEqual([sha256(big), sha256(` ${big} `)]);
    }
    // Documented outcome: Linux caps one environment string at 128 KiB (MAX_ARG_STRLEN), so exporting
    // a 1 MiB value (`set -a; . secrets.env; exec app`) fails in the consumer with E2BIG. Such values
    // belong in keys/<KEY> (the *_FILE form) or secrets.json.
    const exported = spawnSync('dash', ['-c', 'set -a; . "$1"; exec /bin/true', 'dash', path.join(dir, 'secrets.env')], { encoding: 'utf8' });
    expect(exported.status).not.toBe(0);
    expect(exported.stderr).toMatch(/Argument list too long|too long/i);
    // …and the sidecar says so, once per key, naming the key and the way out.
    const oversized = result.logs.lines().filter((line) => String(line.msg).startsWith('value longer than the 128 KiB'));
    expect(oversized.map((line) => line.key).sort()).toEqual(['EMAIL_URL', 'SECRET_KEY']);
    expect(oversized[0]).toMatchObject({ level: 'warn' });
    expect(String(oversized[0]!.msg)).toMatch(/keys\/ file/);
  }, 60_000);
});
