/**
 * Text from the server is escaped and scrubbed before the sidecar shows it.
 *
 * A server's error message can hold terminal escape sequences, line breaks, or the very credential
 * the request carried. The fake's `echoCredential` fault answers such a message (the login's client
 * secret, or the list's bearer token); `check`, the logs and /healthz must show it with control
 * characters escaped and without the credential. The file's leak guard checks the client secret in
 * every form; the token is checked by its JWT shape.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { EXIT_CODES } from '../src/errors.js';
import { shown } from '../src/infisical/server-text.js';
import type { FakeInfisical } from './fake-infisical/server.js';
import { DEMO_CLIENT_ID } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { FAST, glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);

/** Clears the screen, retitles the terminal, rings the bell, and forges a second line around the credential. */
const HOSTILE_MESSAGE = '\u001b[2J\u001b]0;owned\u0007Invalid credentials for {credential}\r\nforged: line \u009b31m';
/** What must still be readable, escaped: once where it enters (server-text.ts), maybe again where a line is printed. */
const ESCAPED_PARTS = ['u001b[2J', 'u001b]0;owned', 'u0007Invalid credentials for [redacted]', 'nforged: line', 'u009b31m'];
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const TOKEN_SHAPED = /eyJ[\w-]+\.[\w-]+\.[\w-]+/;

async function fakeWithSecret(): Promise<{ fake: FakeInfisical; env: Record<string, string> }> {
  const fake = await startFake();
  const clientSecret = guard.canary('client-secret', 'plain');
  fake.addIdentity(DEMO_CLIENT_ID, clientSecret);
  const env = { ...glitchtipEnv(fake, makeTempDir(), FAST), INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: clientSecret };
  return { fake, env };
}

/** The message as shown: control characters escaped, the credential replaced. Asserts print no text (it may hold the secret). */
function expectShownSafely(text: string | undefined, where: string): void {
  expect(text, where).toBeTypeOf('string');
  const visible = text ?? '';
  expect(CONTROL.test(visible), `${where}: a raw control character`).toBe(false);
  expect(ESCAPED_PARTS.filter((part) => !visible.includes(part)), `${where}: escapes missing`).toEqual([]);
  expect(TOKEN_SHAPED.test(visible), `${where}: a token`).toBe(false);
  expect(guard.leaksIn(visible), where).toEqual([]);
}

describe('a server message with escape sequences that echoes a credential', () => {
  it('check prints it escaped and without the client secret', async () => {
    const { fake, env } = await fakeWithSecret();
    fake.faults.add({ route: 'login', kind: 'echoCredential', status: 401, message: HOSTILE_MESSAGE });

    const result = await runCommand(['check'], env);

    expect(result.code).toBe(EXIT_CODES.auth);
    const folderLines = result.stdout.split('\n').filter((line) => line.includes('error SIDECAR_AUTH_INVALID_CREDENTIALS'));
    expect(folderLines).toHaveLength(2);
    for (const line of folderLines) expectShownSafely(line, 'a folder line of check');
    expectShownSafely(result.stdout.split('\n').find((line) => line.startsWith('error: ')), 'the error line of check');
    const exiting = result.logs.lines().find((line) => line['msg'] === 'exiting');
    expectShownSafely(exiting?.['err'] as string | undefined, 'the exiting log line');
  });

  describe('run', () => {
    async function startRun(env: Record<string, string>) {
      const { log, logs } = testLogger();
      // A clock nobody moves: the first pass (at start) is the one under test; no deadline can cut it short.
      const app = createApp(loadConfig(env), log, { clock: new ManualClock() });
      await app.start();
      onTestFinished(() => app.stop());
      return { app, logs };
    }

    async function lastError(app: App) {
      const response = await app.server.inject('/healthz');
      guard.observe(response.body);
      return (response.json() as { lastError: { code: string; message: string } | null }).lastError;
    }

    it('a login answer echoing the client secret: /healthz and the logs show it escaped, without the secret', async () => {
      const { fake, env } = await fakeWithSecret();
      fake.faults.add({ route: 'login', kind: 'echoCredential', status: 401, message: HOSTILE_MESSAGE });
      const { app, logs } = await startRun(env);

      const error = await waitFor(async () => lastError(app), 'the refused login reported');
      expect(error.code).toBe('SIDECAR_AUTH_INVALID_CREDENTIALS');
      expectShownSafely(error.message, '/healthz lastError');
      const failed = logs.lines().filter((line) => line['msg'] === 'sync failed; last good files kept');
      expect(failed.length).toBeGreaterThan(0);
      for (const line of failed) expectShownSafely(line['err'] as string, 'a sync failed log line');
    });

    it('a list answer echoing the access token: /healthz and the logs show it escaped, without the token', async () => {
      const { fake, env } = await fakeWithSecret();
      fake.faults.add({ route: 'list', kind: 'echoCredential', status: 403, message: HOSTILE_MESSAGE });
      const { app, logs } = await startRun(env);

      const error = await waitFor(async () => lastError(app), 'the refused list reported');
      expect(error.code).toBe('SIDECAR_AUTH_FORBIDDEN');
      expectShownSafely(error.message, '/healthz lastError');
      expect(TOKEN_SHAPED.test(logs.text()), 'a token in the logs').toBe(false);
      const failed = logs.lines().filter((line) => line['msg'] === 'sync failed; last good files kept');
      expect(failed.length).toBeGreaterThan(0);
      for (const line of failed) expectShownSafely(line['err'] as string, 'a sync failed log line');
    });
  });
});

describe('shown(): the one gate for server text (src/infisical/server-text.ts)', () => {
  const secret = 'sécret/with+slash "quoted" \\ and-more-than-12';

  it('replaces a credential as is, URL-encoded and JSON-escaped', () => {
    const echoes = [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)];
    expect(shown(`got ${echoes.join(' | ')}`, [undefined, secret])).toBe('got [redacted] | [redacted] | [redacted]');
  });

  it('cuts long text after the scrub, so no part of a credential survives the cut', () => {
    const text = `${'a'.repeat(290)}${secret}`;
    const result = shown(text, [secret]);
    expect(result).toBe(`${'a'.repeat(290)}[redacted]`);
    expect(shown('b'.repeat(400), [])).toBe(`${'b'.repeat(300)}…`);
  });

  it('replaces any run of 12 or more characters of a credential: an echo cut short or split across lines', () => {
    const token = 'cs-9f3b2a7e41d04c8e8a6b5f1e2d3c4b5a';
    expect(shown(`invalid secret "${token.slice(0, 24)}…"`, [token])).toBe('invalid secret "[redacted]…"');
    expect(shown(`echo: ${token.slice(0, 18)}\n${token.slice(18)}`, [token])).toBe('echo: [redacted]\\n[redacted]');
    expect(shown('short run cs-9f3b2a7 only', [token])).toBe('short run cs-9f3b2a7 only');
  });

  it('escapes control characters after the scrub, and leaves plain text alone', () => {
    expect(shown('Invalid credentials', [''])).toBe('Invalid credentials');
    expect(shown(`\u001b[31m${secret}\u0007\n`, [secret])).toBe('\\u001b[31m[redacted]\\u0007\\n');
  });
});
