/**
 * The env format in real shells: write secrets.env, source it with `set -a; . ./secrets.env; set +a`
 * in dash, bash and busybox sh, dump the environment with `env -0`, and compare every value byte for
 * byte. A property test pushes 10,000 generated values through each shell, 1,000 per shell run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { renderShellEnv, shellSingleQuote } from '../src/render/index.js';
import { makeTempDir } from './helpers/temp-dir.js';

const ENV_BINARY = '/usr/bin/env';

interface Shell {
  name: string;
  /** argv before `-c script`, or undefined when the shell is not installed. */
  argv: string[] | undefined;
  install: string;
}

function findExecutable(candidates: string[]): string | undefined {
  return candidates.find((path) => existsSync(path));
}

function shellArgv(paths: string[], extra: string[] = []): string[] | undefined {
  const found = findExecutable(paths);
  return found === undefined ? undefined : [found, ...extra];
}

const SHELLS: Shell[] = [
  { name: 'dash', argv: shellArgv(['/bin/dash', '/usr/bin/dash']), install: 'apt-get install -y dash' },
  { name: 'bash', argv: shellArgv(['/bin/bash', '/usr/bin/bash']), install: 'apt-get install -y bash' },
  { name: 'busybox sh', argv: shellArgv(['/bin/busybox', '/usr/bin/busybox'], ['sh']), install: 'apt-get install -y busybox' },
];

/** One directory for the whole file (each test rewrites secrets.env in it), removed after the last test. */
const workDir = makeTempDir('render-shell-', afterAll);

/** Sources `content` in `argv` and returns the resulting environment, name → raw value bytes. */
function sourceAndDump(argv: string[], content: Buffer): Map<string, Buffer> {
  const file = join(workDir, 'secrets.env');
  writeFileSync(file, content);
  const [command = '', ...args] = argv;
  const script = `set -a; . ./secrets.env; set +a; exec ${ENV_BINARY} -0`;
  const run = runShell(command, [...args, '-c', script]);
  expect(run.error).toBeUndefined();
  expect(run.stderr.toString('utf8')).toBe('');
  expect(run.status).toBe(0);
  return parseEnvDump(run.stdout);
}

/** Prints one variable from inside the shell: for values too big to pass to a child process. */
function sourceAndPrint(argv: string[], content: Buffer, key: string): Buffer {
  writeFileSync(join(workDir, 'secrets.env'), content);
  const [command = '', ...args] = argv;
  const run = runShell(command, [...args, '-c', `set -a; . ./secrets.env; set +a; printf '%s' "$${key}"`]);
  expect(run.stderr.toString('utf8')).toBe('');
  expect(run.status).toBe(0);
  return run.stdout;
}

function runShell(command: string, args: string[]): ReturnType<typeof spawnSync> & { stdout: Buffer; stderr: Buffer } {
  return spawnSync(command, args, {
    cwd: workDir,
    env: { LC_ALL: 'C.UTF-8' },
    // stdin from /dev/null: bash reads ~/.bashrc when stdin is a socket (node's pipes are socketpairs).
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
    // spawnSync blocks vitest's own timer, so a shell that misparses the file and runs away is killed here.
    timeout: 15_000,
  }) as ReturnType<typeof spawnSync> & { stdout: Buffer; stderr: Buffer };
}

/** Splits `env -0` output: NAME=VALUE entries separated by NUL. */
function parseEnvDump(dump: Buffer): Map<string, Buffer> {
  const variables = new Map<string, Buffer>();
  let start = 0;
  while (start < dump.length) {
    const end = dump.indexOf(0, start);
    const entry = dump.subarray(start, end === -1 ? dump.length : end);
    const equals = entry.indexOf(0x3d);
    variables.set(entry.subarray(0, equals).toString('utf8'), entry.subarray(equals + 1));
    start = end === -1 ? dump.length : end + 1;
  }
  return variables;
}

/** Asserts each key's value came through the shell byte-exact; reports the first mismatch briefly. */
function expectExactValues(dump: Map<string, Buffer>, snapshot: Map<string, string>): void {
  for (const [key, value] of snapshot) {
    const expected = Buffer.from(value, 'utf8');
    const actual = dump.get(key);
    if (actual === undefined || !actual.equals(expected)) {
      expect.fail(`${key}: got ${actual?.subarray(0, 120).toString('hex') ?? 'nothing'}, expected ${expected.subarray(0, 120).toString('hex')}`);
    }
  }
}

const HOSTILE_VALUES: string[] = [
  '',
  "it's",
  `a'b"c`,
  String.raw`'\''`,
  "'",
  "''",
  '\\',
  'abc\\',
  String.raw`a\\b`,
  String.raw`x\ny`,
  '$HOME',
  '${HOME}',
  '$(touch pwned)',
  '`touch pwned`',
  '$abc',
  '$',
  '$$',
  '!!',
  'line1\nline2',
  '\n',
  '\n\n',
  'a\rb',
  'v\r\n',
  '  padded  ',
  '\t',
  'a #b',
  '#',
  ';',
  '&& exit 1',
  '| cat',
  '> ./redirected',
  '*',
  '~',
  '=',
  'pässwörd 密码 😀',
  'a\u2028b',
  '\u00a0',
  '\x01\x1b[31m\x7f',
  '-----BEGIN KEY-----\nAB+/=\n-----END KEY-----\n',
  `'$\n\`\\"\r`.repeat(18_000), // 126,000 bytes: just under Linux's 128 KiB limit for one exported NAME=value
];

/**
 * 1 MiB with a hostile 7-character run every 64 bytes. Too big to export to a child process (Linux
 * refuses any NAME=value over 128 KiB with E2BIG), so it is checked from inside the shell. Quotes are
 * spaced out because bash splices `'\''` in quadratic time (262,144 of them take seconds).
 */
const HUGE_VALUE = `'$\n\`\\"\r${'x'.repeat(57)}`.repeat(1 << 14);

/** A value biased towards shell metacharacters, mixed with arbitrary Unicode; never NUL. */
const valueArbitrary = fc
  .array(
    fc.oneof(
      fc.constantFrom("'", '"', '\\', '$', '${HOME}', '$(id)', '`id`', '\n', '\r', ' ', '\t', '#', ';', '&', '|', '*', '?', '!', "'\\''", '\\n', '😀', 'é', '\u2028', '\x1b'),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
    { maxLength: 12 },
  )
  .map((parts) => parts.join('').replaceAll('\0', ''));

const BATCH_SIZE = 1_000;
const BATCHES = 10;

describe.each(SHELLS)('env format sourced in $name', (shell) => {
  const { argv } = shell;
  const missing = argv === undefined ? ` (SKIPPED: ${shell.name} is not installed; ${shell.install})` : '';

  it.skipIf(argv === undefined)(`gives every hostile value back byte-exact${missing}`, () => {
    const snapshot = new Map(HOSTILE_VALUES.map((value, i) => [`V${i}`, value]));
    const { content, skipped } = renderShellEnv(snapshot);
    expect(skipped).toEqual([]);
    expectExactValues(sourceAndDump(argv ?? [], content), snapshot);
  });

  it.skipIf(argv === undefined)(`holds a 1 MiB hostile value byte-exact${missing}`, () => {
    const snapshot = new Map([
      ['BEFORE', 'b'],
      ['HUGE', HUGE_VALUE],
      ['ZAFTER', 'a'],
    ]);
    const printed = sourceAndPrint(argv ?? [], renderShellEnv(snapshot).content, 'HUGE');
    expect(printed.equals(Buffer.from(HUGE_VALUE, 'utf8'))).toBe(true);
  });

  it.skipIf(argv === undefined)(`runs no command substitution while sourcing${missing}`, () => {
    const marker = join(workDir, 'pwned');
    const snapshot = new Map([
      ['A', `$(touch ${marker})`],
      ['B', `\`touch ${marker}\``],
      ['C', `'; touch ${marker}; '`],
    ]);
    sourceAndDump(argv ?? [], renderShellEnv(snapshot).content);
    expect(existsSync(marker)).toBe(false);
  });

  it.skipIf(argv === undefined)(`property: ${BATCHES * BATCH_SIZE} generated values come back byte-exact${missing}`, () => {
    fc.assert(
      fc.property(fc.array(valueArbitrary, { minLength: BATCH_SIZE, maxLength: BATCH_SIZE }), (values) => {
        const snapshot = new Map(values.map((value, i) => [`K${i}`, value]));
        expectExactValues(sourceAndDump(argv ?? [], renderShellEnv(snapshot).content), snapshot);
      }),
      // No shrinking: every shrink step would start a shell; the failure message names the key and bytes.
      { numRuns: BATCHES, endOnFailure: true },
    );
  });

  it.skipIf(argv === undefined)(`the shell filter quotes a word that expands to the value${missing}`, () => {
    const values = HOSTILE_VALUES.slice(0, -1);
    const script = values.map((value, i) => `export W${i}=${shellSingleQuote(value)}`).join('\n');
    const snapshot = new Map(values.map((value, i) => [`W${i}`, value]));
    // Same mechanism as the env file, but through `export NAME=word`, as a template using `| shell` would.
    const file = Buffer.from(`${script}\n`, 'utf8');
    expectExactValues(sourceAndDump(argv ?? [], file), snapshot);
  });
});
