/**
 * The render stage end to end: the hostile-input table (one row per nasty key or value, with the
 * exact bytes or skip reason per format), ordering, determinism, and that no error carries a value.
 */
import { describe, expect, it } from 'vitest';
import { isSidecarError, type SidecarError } from '../src/errors.js';
import {
  applyDerived,
  DEFAULT_OUTPUTS,
  parseDotenv,
  parseTemplate,
  renderDotenv,
  renderOutputs,
  renderShellEnv,
  renderTemplate,
  type OutputSpec,
  type RenderResult,
  type SkipReason,
} from '../src/render/index.js';

type Outcome = string | { skip: SkipReason };

interface HostileCase {
  name: string;
  key: string;
  value: string;
  /** The env line without its newline, or the skip reason. */
  env: Outcome;
  /** The dotenv line without its newline, or the skip reason. */
  dotenv: Outcome;
  /** The JSON entry without its 2-space indent. JSON never skips. */
  json: string;
  /** The per-key file's exact content (UTF-8 string or bytes), or the skip reason. */
  file: Outcome | Buffer;
}

const notEnv = { skip: 'not-an-env-name' } as const;
const nul = { skip: 'contains-nul' } as const;
const interpolation = { skip: 'dotenv-interpolation' } as const;
const unsafeFile = { skip: 'unsafe-file-name' } as const;
const MIB = 1 << 20;

const HOSTILE_CASES: HostileCase[] = [
  // values
  { name: 'plain value', key: 'SECRET_KEY', value: 'abc123', env: `SECRET_KEY='abc123'`, dotenv: `SECRET_KEY='abc123'`, json: `"SECRET_KEY": "abc123"`, file: 'abc123' },
  { name: 'empty value', key: 'EMPTY', value: '', env: `EMPTY=''`, dotenv: `EMPTY=''`, json: `"EMPTY": ""`, file: '' },
  { name: 'single quote', key: 'Q1', value: "it's", env: String.raw`Q1='it'\''s'`, dotenv: `Q1="it's"`, json: `"Q1": "it's"`, file: "it's" },
  { name: 'double quotes', key: 'Q2', value: 'say "hi"', env: `Q2='say "hi"'`, dotenv: `Q2='say "hi"'`, json: String.raw`"Q2": "say \"hi\""`, file: 'say "hi"' },
  { name: 'both quotes', key: 'Q3', value: `a'b"c`, env: String.raw`Q3='a'\''b"c'`, dotenv: String.raw`Q3="a'b\"c"`, json: String.raw`"Q3": "a'b\"c"`, file: `a'b"c` },
  { name: 'single backslashes', key: 'BS1', value: String.raw`C:\temp\new`, env: String.raw`BS1='C:\temp\new'`, dotenv: String.raw`BS1='C:\temp\new'`, json: String.raw`"BS1": "C:\\temp\\new"`, file: String.raw`C:\temp\new` },
  { name: 'doubled backslash', key: 'BS2', value: String.raw`a\\b`, env: String.raw`BS2='a\\b'`, dotenv: String.raw`BS2="a\\\\b"`, json: String.raw`"BS2": "a\\\\b"`, file: String.raw`a\\b` },
  { name: 'trailing backslash', key: 'BS3', value: 'abc\\', env: "BS3='abc\\'", dotenv: { skip: 'dotenv-trailing-backslash' }, json: '"BS3": "abc\\\\"', file: 'abc\\' },
  { name: 'literal backslash-n', key: 'BSN', value: String.raw`x\ny`, env: String.raw`BSN='x\ny'`, dotenv: String.raw`BSN='x\ny'`, json: String.raw`"BSN": "x\\ny"`, file: String.raw`x\ny` },
  { name: 'escaped-quote sequence as data', key: 'ESC', value: String.raw`'\''`, env: String.raw`ESC=''\''\'\'''\'''`, dotenv: String.raw`ESC="'\\''"`, json: String.raw`"ESC": "'\\''"`, file: String.raw`'\''` },
  { name: '$VAR', key: 'D1', value: '$HOME', env: `D1='$HOME'`, dotenv: `D1='$HOME'`, json: `"D1": "$HOME"`, file: '$HOME' },
  { name: 'command substitution', key: 'D2', value: '$(rm -rf /)', env: `D2='$(rm -rf /)'`, dotenv: `D2='$(rm -rf /)'`, json: `"D2": "$(rm -rf /)"`, file: '$(rm -rf /)' },
  { name: 'backticks', key: 'D3', value: '`id`', env: "D3='`id`'", dotenv: "D3='`id`'", json: '"D3": "`id`"', file: '`id`' },
  { name: '${VAR}', key: 'D4', value: '${HOME}', env: "D4='${HOME}'", dotenv: interpolation, json: '"D4": "${HOME}"', file: '${HOME}' },
  { name: '$ with single quote', key: 'D5', value: "it's $5", env: String.raw`D5='it'\''s $5'`, dotenv: interpolation, json: `"D5": "it's $5"`, file: "it's $5" },
  { name: 'value starting with $ (django-environ reference)', key: 'D6', value: '$abc', env: `D6='$abc'`, dotenv: `D6='$abc'`, json: `"D6": "$abc"`, file: '$abc' },
  { name: '$ with newline', key: 'D7', value: 'a\n$b', env: "D7='a\n$b'", dotenv: interpolation, json: String.raw`"D7": "a\n$b"`, file: 'a\n$b' },
  { name: 'newline', key: 'NL', value: 'line1\nline2', env: "NL='line1\nline2'", dotenv: String.raw`NL="line1\nline2"`, json: String.raw`"NL": "line1\nline2"`, file: 'line1\nline2' },
  { name: 'carriage return', key: 'CR', value: 'a\rb', env: "CR='a\rb'", dotenv: String.raw`CR="a\rb"`, json: String.raw`"CR": "a\rb"`, file: 'a\rb' },
  { name: 'trailing CRLF', key: 'CRLF', value: 'v\r\n', env: "CRLF='v\r\n'", dotenv: String.raw`CRLF="v\r\n"`, json: String.raw`"CRLF": "v\r\n"`, file: 'v\r\n' },
  {
    name: 'PEM block',
    key: 'PEM',
    value: '-----BEGIN KEY-----\nAB+/=\n-----END KEY-----\n',
    env: "PEM='-----BEGIN KEY-----\nAB+/=\n-----END KEY-----\n'",
    dotenv: String.raw`PEM="-----BEGIN KEY-----\nAB+/=\n-----END KEY-----\n"`,
    json: String.raw`"PEM": "-----BEGIN KEY-----\nAB+/=\n-----END KEY-----\n"`,
    file: '-----BEGIN KEY-----\nAB+/=\n-----END KEY-----\n',
  },
  { name: 'leading and trailing spaces', key: 'SP', value: '  padded  ', env: `SP='  padded  '`, dotenv: `SP='  padded  '`, json: `"SP": "  padded  "`, file: '  padded  ' },
  { name: 'tab', key: 'TAB', value: 'a\tb', env: "TAB='a\tb'", dotenv: "TAB='a\tb'", json: String.raw`"TAB": "a\tb"`, file: 'a\tb' },
  { name: 'hash (comment marker)', key: 'HASH', value: 'a #b', env: `HASH='a #b'`, dotenv: `HASH='a #b'`, json: `"HASH": "a #b"`, file: 'a #b' },
  { name: 'unicode', key: 'UNI', value: 'pässwörd 密码 😀', env: `UNI='pässwörd 密码 😀'`, dotenv: `UNI='pässwörd 密码 😀'`, json: `"UNI": "pässwörd 密码 😀"`, file: 'pässwörd 密码 😀' },
  { name: 'U+2028 line separator', key: 'LS', value: 'a\u2028b', env: "LS='a\u2028b'", dotenv: "LS='a\u2028b'", json: '"LS": "a\u2028b"', file: 'a\u2028b' },
  { name: 'NUL in value', key: 'NUL', value: 'a\0b', env: nul, dotenv: nul, json: String.raw`"NUL": "a\u0000b"`, file: Buffer.from([0x61, 0x00, 0x62]) },
  { name: 'lone surrogate in value', key: 'LONE', value: 'a\uD800b', env: "LONE='a\uFFFDb'", dotenv: "LONE='a\uFFFDb'", json: String.raw`"LONE": "a\ud800b"`, file: Buffer.from([0x61, 0xef, 0xbf, 0xbd, 0x62]) },
  { name: '1 MiB value', key: 'BIG', value: 'x'.repeat(MIB), env: `BIG='${'x'.repeat(MIB)}'`, dotenv: `BIG='${'x'.repeat(MIB)}'`, json: `"BIG": "${'x'.repeat(MIB)}"`, file: 'x'.repeat(MIB) },
  // keys
  { name: 'dotted key', key: 'db.password', value: 'v', env: notEnv, dotenv: notEnv, json: `"db.password": "v"`, file: 'v' },
  { name: 'dashed key', key: 'my-key', value: 'v', env: notEnv, dotenv: notEnv, json: `"my-key": "v"`, file: 'v' },
  { name: 'leading digit', key: '1KEY', value: 'v', env: notEnv, dotenv: notEnv, json: `"1KEY": "v"`, file: 'v' },
  { name: 'integer-like key', key: '10', value: 'v', env: notEnv, dotenv: notEnv, json: `"10": "v"`, file: 'v' },
  { name: 'unicode key', key: 'clé', value: 'v', env: notEnv, dotenv: notEnv, json: `"clé": "v"`, file: 'v' },
  { name: 'key with a space', key: 'MY KEY', value: 'v', env: notEnv, dotenv: notEnv, json: `"MY KEY": "v"`, file: 'v' },
  { name: 'empty key', key: '', value: 'v', env: notEnv, dotenv: notEnv, json: `"": "v"`, file: unsafeFile },
  { name: 'key "."', key: '.', value: 'v', env: notEnv, dotenv: notEnv, json: `".": "v"`, file: unsafeFile },
  { name: 'key ".."', key: '..', value: 'v', env: notEnv, dotenv: notEnv, json: `"..": "v"`, file: unsafeFile },
  { name: 'key "..data" (writer-reserved prefix)', key: '..data', value: 'v', env: notEnv, dotenv: notEnv, json: `"..data": "v"`, file: unsafeFile },
  { name: 'key ".hidden" (allowed)', key: '.hidden', value: 'v', env: notEnv, dotenv: notEnv, json: `".hidden": "v"`, file: 'v' },
  { name: 'key with slash', key: 'a/b', value: 'v', env: notEnv, dotenv: notEnv, json: `"a/b": "v"`, file: unsafeFile },
  { name: 'key with NUL', key: 'a\0b', value: 'v', env: notEnv, dotenv: notEnv, json: String.raw`"a\u0000b": "v"`, file: unsafeFile },
  { name: 'key with lone surrogate', key: 'a\uD800', value: 'v', env: notEnv, dotenv: notEnv, json: String.raw`"a\ud800": "v"`, file: unsafeFile },
  { name: 'key of 255 bytes', key: 'K'.repeat(255), value: 'v', env: `${'K'.repeat(255)}='v'`, dotenv: `${'K'.repeat(255)}='v'`, json: `"${'K'.repeat(255)}": "v"`, file: 'v' },
  { name: 'key of 256 bytes', key: 'K'.repeat(256), value: 'v', env: `${'K'.repeat(256)}='v'`, dotenv: `${'K'.repeat(256)}='v'`, json: `"${'K'.repeat(256)}": "v"`, file: unsafeFile },
  { name: 'key of 128 two-byte characters (256 bytes)', key: 'é'.repeat(128), value: 'v', env: notEnv, dotenv: notEnv, json: `"${'é'.repeat(128)}": "v"`, file: unsafeFile },
  { name: 'key __proto__', key: '__proto__', value: 'v', env: `__proto__='v'`, dotenv: `__proto__='v'`, json: `"__proto__": "v"`, file: 'v' },
];

const ENV_HEADER = renderShellEnv(new Map()).content.toString('utf8');
const DOTENV_HEADER = renderDotenv(new Map()).content.toString('utf8');

function fileAt(result: RenderResult, path: string): Buffer | undefined {
  return result.files.find((file) => file.path === path)?.content;
}

function skipReason(result: RenderResult, key: string, output: string): SkipReason | undefined {
  return result.skipped.find((entry) => entry.key === key && entry.output === output)?.reason;
}

/** Compares big buffers without printing a megabyte on failure. */
function expectSameBytes(actual: Buffer | undefined, expected: Buffer, what: string): void {
  expect(actual, `${what}: missing`).toBeDefined();
  if (actual !== undefined && !actual.equals(expected)) {
    expect.fail(`${what}: ${actual.length} bytes, expected ${expected.length}; first: ${actual.subarray(0, 80).toString('hex')}`);
  }
}

function expectLine(result: RenderResult, output: string, header: string, key: string, outcome: Outcome): void {
  if (typeof outcome === 'string') {
    expectSameBytes(fileAt(result, output), Buffer.from(`${header}${outcome}\n`, 'utf8'), output);
    expect(skipReason(result, key, output)).toBeUndefined();
  } else {
    expectSameBytes(fileAt(result, output), Buffer.from(header, 'utf8'), output);
    expect(skipReason(result, key, output)).toBe(outcome.skip);
  }
}

describe('hostile input table', () => {
  it('has at least 30 cases with distinct keys', () => {
    expect(HOSTILE_CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(HOSTILE_CASES.map((c) => c.key)).size).toBe(HOSTILE_CASES.length);
  });

  it.each(HOSTILE_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const result = renderOutputs(new Map([[c.key, c.value]]), DEFAULT_OUTPUTS);

    expectLine(result, 'secrets.env', ENV_HEADER, c.key, c.env);
    expectLine(result, 'secrets.dotenv', DOTENV_HEADER, c.key, c.dotenv);
    expectSameBytes(fileAt(result, 'secrets.json'), Buffer.from(`{\n  ${c.json}\n}\n`, 'utf8'), 'secrets.json');

    const keyFile = fileAt(result, `keys/${c.key}`);
    if (Buffer.isBuffer(c.file) || typeof c.file === 'string') {
      expectSameBytes(keyFile, Buffer.isBuffer(c.file) ? c.file : Buffer.from(c.file, 'utf8'), `keys/${c.key}`);
      expect(skipReason(result, c.key, 'keys')).toBeUndefined();
    } else {
      expect(result.files.filter((file) => file.path.startsWith('keys/'))).toEqual([]);
      expect(skipReason(result, c.key, 'keys')).toBe(c.file.skip);
    }
  });

  it('every dotenv line the table expects parses back to the value with the reference parser', () => {
    for (const c of HOSTILE_CASES) {
      if (typeof c.dotenv !== 'string' || c.key === 'LONE') continue; // LONE: UTF-8 already replaced the surrogate
      expect(parseDotenv(`${c.dotenv}\n`).get(c.key), c.name).toBe(c.value);
    }
  });

  it('renders all cases together with the same lines as one by one', () => {
    const all = new Map(HOSTILE_CASES.map((c) => [c.key, c.value]));
    const result = renderOutputs(all, DEFAULT_OUTPUTS);
    const envText = fileAt(result, 'secrets.env')?.toString('utf8') ?? '';
    for (const c of HOSTILE_CASES) {
      if (typeof c.env === 'string') expect(envText.includes(`\n${c.env}\n`), c.name).toBe(true);
    }
    const parsedJson = JSON.parse(fileAt(result, 'secrets.json')?.toString('utf8') ?? '') as Record<string, string>;
    expect(new Map(Object.entries(parsedJson))).toEqual(all);
  });
});

describe('renderOutputs', () => {
  const snapshot = new Map([
    ['B', '2'],
    ['A', '1'],
  ]);

  it('has the four default outputs', () => {
    expect(DEFAULT_OUTPUTS).toEqual([
      { format: 'env', path: 'secrets.env' },
      { format: 'dotenv', path: 'secrets.dotenv' },
      { format: 'json', path: 'secrets.json' },
      { format: 'files', path: 'keys' },
    ]);
    expect(Object.isFrozen(DEFAULT_OUTPUTS)).toBe(true);
  });

  it('returns files in output order, per-key files sorted, with exact bytes', () => {
    const result = renderOutputs(snapshot, DEFAULT_OUTPUTS);
    expect(result.files.map((file) => [file.path, file.content.toString('utf8')])).toEqual([
      ['secrets.env', `${ENV_HEADER}A='1'\nB='2'\n`],
      ['secrets.dotenv', `${DOTENV_HEADER}A='1'\nB='2'\n`],
      ['secrets.json', '{\n  "A": "1",\n  "B": "2"\n}\n'],
      ['keys/A', '1'],
      ['keys/B', '2'],
    ]);
    expect(result.skipped).toEqual([]);
  });

  it('uses the configured paths, also in skipped entries', () => {
    const outputs: OutputSpec[] = [
      { format: 'env', path: 'gt/glitchtip.env' },
      { format: 'files', path: 'secret-files/' },
      { format: 'json', path: 'all.json' },
    ];
    const result = renderOutputs(new Map([['a.b', 'v'], ['..x', 'w']]), outputs);
    expect(result.files.map((file) => file.path)).toEqual(['gt/glitchtip.env', 'secret-files/a.b', 'all.json']);
    expect(result.skipped).toEqual([
      { key: '..x', output: 'gt/glitchtip.env', reason: 'not-an-env-name' },
      { key: 'a.b', output: 'gt/glitchtip.env', reason: 'not-an-env-name' },
      { key: '..x', output: 'secret-files/', reason: 'unsafe-file-name' },
    ]);
  });

  it('renders an empty snapshot to headers, {} and no key files', () => {
    const result = renderOutputs(new Map(), DEFAULT_OUTPUTS);
    expect(result.files.map((file) => [file.path, file.content.toString('utf8')])).toEqual([
      ['secrets.env', ENV_HEADER],
      ['secrets.dotenv', DOTENV_HEADER],
      ['secrets.json', '{}\n'],
    ]);
  });

  it('headers are one comment line with nothing that varies between runs', () => {
    for (const header of [ENV_HEADER, DOTENV_HEADER]) {
      expect(header).toMatch(/^# [^\n]*\n$/);
      expect(header).not.toMatch(/\d{4}-\d{2}-\d{2}|\d{2}:\d{2}/);
    }
  });

  it('sorts keys by UTF-16 code units, not numerically, by locale or by code point', () => {
    const keys = ['a', '_', 'B', '2', '10', '\uFFFF', '😀', 'Z'];
    const result = renderOutputs(new Map(keys.map((key) => [key, 'v'])), [{ format: 'json', path: 'j' }, { format: 'files', path: 'k' }]);
    const order = ['10', '2', 'B', 'Z', '_', 'a', '😀', '\uFFFF'];
    const jsonKeys = (fileAt(result, 'j')?.toString('utf8') ?? '').split('\n').slice(1, -2).map((line) => line.slice(2).split(':')[0]);
    expect(jsonKeys).toEqual(order.map((key) => JSON.stringify(key)));
    expect(result.files.slice(1).map((file) => file.path)).toEqual(order.map((key) => `k/${key}`));
  });

  it('is deterministic: insertion order does not matter and repeated renders are byte-identical', () => {
    const entries = HOSTILE_CASES.filter((c) => c.value.length < 1000).map((c) => [c.key, c.value] as [string, string]);
    const first = renderOutputs(new Map(entries), DEFAULT_OUTPUTS);
    const second = renderOutputs(new Map([...entries].reverse()), DEFAULT_OUTPUTS);
    const third = renderOutputs(new Map(entries), DEFAULT_OUTPUTS);
    for (const other of [second, third]) {
      expect(other.files.map((file) => file.path)).toEqual(first.files.map((file) => file.path));
      other.files.forEach((file, i) => expect(file.content.equals(first.files[i]?.content ?? Buffer.alloc(0)), file.path).toBe(true));
      expect(other.skipped).toEqual(first.skipped);
    }
  });

  it('rejects an unknown format from untyped callers with SIDECAR_UNEXPECTED', () => {
    const bogus = [{ format: 'yaml', path: 'x.yaml' }] as unknown as OutputSpec[];
    expect(() => renderOutputs(snapshot, bogus)).toThrow(expect.objectContaining({ code: 'SIDECAR_UNEXPECTED', message: 'unknown output format "yaml"' }));
  });
});

describe('no error from the render stage carries a secret value', () => {
  const CANARY = "c4n4ry-'\"$x-S3CRET";
  const snapshot = new Map([
    ['PRESENT', CANARY],
    ['ALSO_PRESENT', `${CANARY}\n${CANARY}`],
  ]);

  function caught(action: () => unknown): SidecarError | Error {
    try {
      action();
    } catch (error) {
      return error as Error;
    }
    return expect.fail('expected an error');
  }

  const failures: Array<[string, () => unknown]> = [
    ['renderTemplate with a missing key', () => renderTemplate(parseTemplate('{{ PRESENT | url }}{{ MISSING }}'), snapshot)],
    ['applyDerived with missing keys', () => applyDerived(snapshot, new Map([['D', parseTemplate('{{ PRESENT }}:{{ NOPE }}')]]))],
    ['parseTemplate with an unknown filter', () => parseTemplate('{{ PRESENT | reveal }}')],
    ['parseTemplate with an unclosed placeholder', () => parseTemplate('x {{ PRESENT')],
    ['parseDotenv with a malformed value', () => parseDotenv(`A="${CANARY}\n`)],
    ['parseDotenv with an unquoted value', () => parseDotenv(`A=${CANARY}\n`)],
    ['parseDotenv with a bad escape', () => parseDotenv(`A="x\\q${CANARY}"\n`)],
  ];

  it.each(failures)('%s', (_name, action) => {
    const error = caught(action);
    const visible = [error.message, String(error), error.stack ?? '', isSidecarError(error) ? JSON.stringify(error.toJSON()) : ''];
    for (const text of visible) {
      expect(text).not.toContain(CANARY);
      expect(text).not.toContain('c4n4ry');
    }
  });
});
