/**
 * `infisical-sidecar status` against a real running sidecar (fake Infisical, real HTTP): the table,
 * exit codes 0 / 1 / 2 / 64, colours only on a terminal and never with NO_COLOR, control characters
 * from servers escaped. And the log formats: JSON by default off a terminal, pretty on demand,
 * redaction in both.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { runCli } from '../src/cli.js';
import { loadConfig } from '../src/config/load.js';
import type { HealthReport } from '../src/health/state.js';
import { createCliLogger, resolveLogFormat } from '../src/log.js';
import { formatStatus, parseStatusArgs } from '../src/status.js';
import { colorEnabled, formatDuration, printable } from '../src/text.js';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const ANSI = /\u001b\[/;
const tag = randomBytes(4).toString('hex');
const CANARY = `canary-status-${tag}`;

async function runningSidecar(extra: Record<string, string> = {}, prepare?: (fake: Awaited<ReturnType<typeof startFake>>) => void): Promise<{ app: App; url: string }> {
  const fake = await startFake();
  fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', CANARY);
  prepare?.(fake);
  const { log } = testLogger('warn');
  const app = createApp(loadConfig(glitchtipEnv(fake, makeTempDir(), { SIDECAR_WATCH: 'false', ...extra })), log);
  await app.start();
  onTestFinished(() => app.stop());
  const { port } = app.server.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}` };
}

/** runCli with a chosen terminal-ness, capturing stdout and stderr. */
async function status(argv: string[], options: { isTTY?: boolean; env?: Record<string, string> } = {}) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCli(['status', ...argv], {
    env: options.env ?? {},
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    shutdown: new Promise(() => undefined),
    isTTY: options.isTTY ?? false,
  });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') };
}

describe('infisical-sidecar status', () => {
  it('prints a table for a healthy sidecar and exits 0; no colours off a terminal; no values', async () => {
    const { app, url } = await runningSidecar();
    await waitFor(async () => (await app.server.inject('/healthz')).statusCode === 200, '/healthz 200');
    const result = await status(['--url', url]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).not.toMatch(ANSI);
    expect(result.stdout).toMatch(/^status +ok \(HTTP 200\): secrets are fresh$/m);
    expect(result.stdout).toMatch(/^revision +1 \(\d+ keys\)$/m);
    expect(result.stdout).toMatch(/^last success +\S+Z \(\d+s ago; unhealthy after 30m\)$/m);
    expect(result.stdout).toMatch(/^next refresh +\S+Z \(in [45]m( \d+s)?\)$/m);
    expect(result.stdout).toMatch(/^FOLDER +AGE +SECRETS +LAST ERROR$/m);
    expect(result.stdout).toMatch(new RegExp(`^${DEMO_DATABASE_PATH} +\\d+s +1 +-$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^${DEMO_APPLICATION_PATH} +\\d+s +3 +-$`, 'm'));
    expect(result.stdout).not.toContain('last error ');
    expect(result.stdout).not.toContain(CANARY);

    // The same URL given as the full /healthz address, and --url=… form.
    expect((await status([`--url=${url}/healthz`])).code).toBe(0);
    const json = await status(['--url', url, '--json']);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as HealthReport).status).toBe('ok');
  });

  it('exits 1 for an unhealthy sidecar and shows the error, the failing folder and the hint', async () => {
    const { app, url } = await runningSidecar({ SIDECAR_BACKOFF_MAX: '5s' }, (fake) => fake.removeFolder(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH));
    await waitFor(async () => (await app.server.inject('/healthz')).json().status === 'failing', '/healthz status failing');
    const result = await status(['--url', url]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^status +failing \(HTTP 503\): no sync has ever succeeded$/m);
    expect(result.stdout).toMatch(/^last success +never$/m);
    expect(result.stdout).toMatch(new RegExp(`^${DEMO_DATABASE_PATH} +never +- +SIDECAR_FETCH_NOT_FOUND \\(\\d+s ago\\)$`, 'm'));
    expect(result.stdout).toMatch(/^last error +SIDECAR_FETCH_NOT_FOUND at /m);
    expect(result.stdout).toMatch(/^hint +Check INFISICAL_PROJECT_ID/m);
    expect(result.stdout).toMatch(/^failures +\d+ in a row$/m);
  });

  it('exits 2 when nothing answers, or something that is not a sidecar answers', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = await status(['--url', `http://127.0.0.1:${port}`]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`http://127.0.0.1:${port}/healthz is unreachable: ECONNREFUSED`);
    expect(refused.stderr).toMatch(/^hint: is the sidecar running/m);

    const other = createServer((_request, response) => response.end('<html>hello</html>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => other.close(() => resolve())));
    const notSidecar = await status(['--url', `http://127.0.0.1:${(other.address() as AddressInfo).port}`]);
    expect(notSidecar.code).toBe(2);
    expect(notSidecar.stderr).toMatch(/not JSON/);
  });

  it('uses SIDECAR_HEALTH_PORT for the default address, and refuses bad arguments with 64', async () => {
    expect(parseStatusArgs([], {})).toEqual({ url: 'http://127.0.0.1:8080/healthz', json: false });
    expect(parseStatusArgs([], { SIDECAR_HEALTH_PORT: '9090' })).toEqual({ url: 'http://127.0.0.1:9090/healthz', json: false });
    expect(parseStatusArgs(['--url', 'http://h:1/prefix/'], {})).toEqual({ url: 'http://h:1/prefix/healthz', json: false });
    expect((await status(['--nope'])).code).toBe(64);
    expect((await status(['--url'])).code).toBe(64);
    const bad = await status(['--url', 'ftp://x']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/usage: infisical-sidecar status/);
  });

  it('colours only on a terminal, and never with NO_COLOR or TERM=dumb', async () => {
    const { app, url } = await runningSidecar();
    await waitFor(async () => (await app.server.inject('/healthz')).statusCode === 200, '/healthz 200');
    expect((await status(['--url', url], { isTTY: true })).stdout).toMatch(ANSI);
    expect((await status(['--url', url], { isTTY: true, env: { NO_COLOR: '1' } })).stdout).not.toMatch(ANSI);
    expect((await status(['--url', url], { isTTY: true, env: { TERM: 'dumb' } })).stdout).not.toMatch(ANSI);
    expect((await status(['--url', url], { isTTY: false })).stdout).not.toMatch(ANSI);
  });

  it('escapes control characters that came from a server, so an error message cannot drive the terminal', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    const report: HealthReport = {
      status: 'degraded', healthy: true, ready: true, revision: 4, lastSuccessAt: '2026-01-01T00:09:00.000Z', ageSeconds: 60, maxStalenessSeconds: 1800,
      lastAttemptAt: '2026-01-01T00:09:30.000Z', nextRefreshAt: '2026-01-01T00:12:00.000Z', lastChangeAt: null, changedKeys: [], keyCount: 1, missingKeys: [],
      lastError: { code: 'SIDECAR_FETCH_UNAVAILABLE', message: 'GET x: 502 \u001b[2J\u001b[31mevil', hint: 'retry', at: '2026-01-01T00:09:30.000Z' },
      folders: [{ path: '/a', lastSuccessAt: '2026-01-01T00:09:00.000Z', ageSeconds: 60, secretCount: 1, lastError: null }], consecutiveFailures: 1,
      source: 'infisical', cache: null,
    };
    const text = formatStatus(report, { url: 'http://x/healthz', httpStatus: 200, color: false, now });
    expect(text).not.toMatch(ANSI);
    expect(text).toContain('GET x: 502 \\u001b[2J\\u001b[31mevil');
    expect(text).toMatch(/^status +degraded \(HTTP 200\): secrets are fresh, but the last attempt failed$/m);
    expect(text).toMatch(/^next refresh +2026-01-01T00:12:00\.000Z \(in 2m\)$/m);
    expect(text).toMatch(/^last change +none since start$/m);
  });

  it('shows durations as their two largest units, rounded to the second', () => {
    expect([0, 59, 61, 3_600, 3_660, 90_000].map((seconds) => formatDuration(seconds * 1000))).toEqual(['0s', '59s', '1m 1s', '1h', '1h 1m', '1d 1h']);
    expect([formatDuration(1_499), formatDuration(1_500), formatDuration(-5_000)]).toEqual(['1s', '2s', '0s']);
  });

  it('escapes every character that could break a line or drive a terminal, and nothing else', () => {
    expect(printable('tab\tkey new\nline \u001b[31m NUL\u0000 DEL\u007f CSI\u009b LS\u2028 back\\slash \ud800lone')).toBe(
      String.raw`tab\tkey new\nline \u001b[31m NUL\u0000 DEL\u007f CSI\u009b LS\u2028 back\\slash \ud800lone`,
    );
    for (const plain of ['KEY WITH SPACE', 'ключ', 'emoji😀', "qu'ote", 'say "hi"', '$(id)']) expect(printable(plain)).toBe(plain);
    // Key names in logs: the same text as the inside of a JSON string, for every name without `"`, DEL or C1 characters.
    for (const key of ['a\tb', 'new\nline', 'back\\slash', 'NUL\0KEY', '\uD800lone', 'esc\u001b']) expect(printable(key)).toBe(JSON.stringify(key).slice(1, -1));
  });

  it('escapes the Unicode bidi controls, so a key name cannot reorder the rest of its line', () => {
    const bidi = [0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069];
    for (const code of bidi) expect(printable(`KEY${String.fromCharCode(code)}txt.exe`)).toBe(`KEY\\u${code.toString(16).padStart(4, '0')}txt.exe`);
    // Letters of right-to-left scripts are text, not controls.
    expect(printable('מפתח_مفتاح')).toBe('מפתח_مفتاح');
  });

  it('has one colour rule: a terminal, NO_COLOR unset or empty, TERM not dumb', () => {
    expect(colorEnabled(true, {})).toBe(true);
    expect(colorEnabled(true, { NO_COLOR: '' })).toBe(true);
    expect(colorEnabled(true, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled(true, { TERM: 'dumb' })).toBe(false);
    expect(colorEnabled(false, {})).toBe(false);
  });

  it('is listed in the help', async () => {
    const help = await runCommand(['help'], {});
    expect(help.stdout).toMatch(/^ {2}status +\[--url http:\/\/127\.0\.0\.1:8080\]/m);
    expect(help.stdout).toContain('2 unreachable');
  });
});

describe('log format (SIDECAR_LOG_FORMAT)', () => {
  const capture = () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk.toString('utf8'));
        callback();
      },
    });
    return { stream, text: () => chunks.join('') };
  };

  it('auto is pretty on a terminal and JSON elsewhere; json and pretty are what they say', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });

  it('pretty lines are readable, coloured only when asked, and still redacted', async () => {
    for (const color of [false, true]) {
      const out = capture();
      const log = await createCliLogger('info', { format: 'pretty', destination: out.stream as never, isTTY: false, color });
      log.child({ component: 'sync' }).info({ revision: 3, clientSecret: CANARY, nested: { value: CANARY } }, 'secrets written');
      const text = out.text();
      expect(text).toMatch(/INFO.*sync: secrets written/);
      expect(text).toMatch(/revision.*3/);
      expect(text).toContain('[redacted]');
      expect(text).not.toContain(CANARY);
      expect(ANSI.test(text)).toBe(color);
      expect(() => JSON.parse(text.split('\n')[0]!)).toThrow();
    }
  });

  it('JSON stays JSON (and redacted), even when asked on a terminal', async () => {
    const out = capture();
    const log = await createCliLogger('info', { format: 'json', destination: out.stream as never, isTTY: true, color: true });
    log.info({ clientSecret: CANARY }, 'hello');
    const line = JSON.parse(out.text()) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: 'hello', level: 'info', clientSecret: '[redacted]' });
  });

  it('the CLI honours the variable, and rejects an unknown format with the config exit code', async () => {
    const fake = await startFake();
    const env = glitchtipEnv(fake, makeTempDir());
    const pretty = await runCommand(['once'], { ...env, SIDECAR_LOG_FORMAT: 'pretty' });
    expect(pretty.code).toBe(0);
    expect(pretty.logs.text()).toMatch(/INFO.*once: secrets are in place/);
    expect(pretty.logs.text()).not.toMatch(ANSI);
    const auto = await runCommand(['once'], env);
    expect(auto.logs.lines().some((line) => line.msg === 'once: secrets are in place')).toBe(true);
    const bad = await runCommand(['once'], { ...env, SIDECAR_LOG_FORMAT: 'fancy' });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toContain('SIDECAR_LOG_FORMAT: must be one of auto, json, pretty');
  });
});
