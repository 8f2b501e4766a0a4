/**
 * A rotated client secret with a typo must not lock the machine identity out.
 *
 * Infisical locks an identity's Universal Auth for 5 minutes after 3 failed logins within 30 s
 * (docs/infisical-api.md §1.1; the fake implements it). The sidecar keeps its token until Infisical
 * refuses it, spaces refused logins far below that rate, says so in /healthz, and tries a changed
 * credential file sooner without ever reaching 3 failures in the window. The fake and the sidecar
 * share one manual clock (test/helpers/clock.ts): passes run when the test moves it, and the spacing
 * is checked to the millisecond.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import type { FolderResult } from '../src/infisical/client.js';
import type { Credentials } from '../src/config/credentials.js';
import type { FakeInfisical } from './fake-infisical/server.js';
import { DEMO_CLIENT_ID, DEMO_DATABASE_PATH } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { clientAgainst, FAST, glitchtipEnv, startFake, testLogger, type CapturedLogs } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);
const LOGIN = '/api/v1/auth/universal-auth/login';
const LOCKED = 'This identity auth method is temporarily locked, please try again later';

const loginsIn = (fake: FakeInfisical) => fake.requests.filter((r) => r.path === LOGIN);

/** The identity still logs in with its right secret: Infisical did not lock it. */
async function assertNotLockedOut(fake: FakeInfisical, clientSecret: string): Promise<void> {
  const response = await fetch(`${fake.url}${LOGIN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: DEMO_CLIENT_ID, clientSecret }),
  });
  const body = (await response.json()) as { message?: string };
  expect(body.message, 'the lockout message').not.toBe(LOCKED);
  expect(response.status).toBe(200);
}

describe('a run with a client secret file', () => {
  async function startRun() {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const rightSecret = guard.canary('client-secret', 'plain');
    fake.addIdentity(DEMO_CLIENT_ID, rightSecret);
    const secretFile = path.join(makeTempDir(), 'client-secret');
    writeFileSync(secretFile, `${rightSecret}\n`);
    const env: Record<string, string> = { ...glitchtipEnv(fake, makeTempDir(), { ...FAST, SIDECAR_MAX_STALENESS: '1h' }), INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: secretFile };
    delete env['INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET'];
    const config = loadConfig(env);
    const { log, logs } = testLogger();
    const app = createApp(config, log, { clock });
    await app.start();
    onTestFinished(() => app.stop());
    await waitFor(async () => (await health(app)).status === 'ok', 'the first sync');
    return { fake, app, logs, clock, rightSecret, secretFile };
  }

  async function health(app: App) {
    const response = await app.server.inject('/healthz');
    guard.observe(response.body);
    return response.json() as { status: string; lastAttemptAt: string | null; nextRefreshAt: string | null; lastError: { code: string; message: string; hint: string } | null };
  }

  /** Waits until no pass is in flight: the loop sleeps until a next attempt still ahead on the clock. */
  async function asleep(app: App, clock: ManualClock) {
    return waitFor(async () => {
      const report = await health(app);
      return Date.parse(report.nextRefreshAt ?? '') > clock.now() ? report : undefined;
    }, 'the refresh loop asleep');
  }

  /** Runs `count` more passes: moves the clock to each next attempt /healthz announces, and waits for the pass to end. */
  async function passes(app: App, clock: ManualClock, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const { lastAttemptAt, nextRefreshAt } = await asleep(app, clock);
      await clock.advance(Date.parse(nextRefreshAt!) - clock.now());
      await waitFor(async () => (await health(app)).lastAttemptAt !== lastAttemptAt, 'one more pass');
    }
  }

  /**
   * Writes the credential file and moves the clock through the watcher's debounce (200 ms) until the
   * watcher says the file changed. The output watcher debounces on 200 ms too (the first write's
   * events), so a 200 ms timer may be that one: then the next is waited for. Returns with the loop asleep.
   */
  async function changeCredentialFile(app: App, clock: ManualClock, logs: CapturedLogs, file: string, content: string): Promise<void> {
    const changes = () => logs.lines().filter((line) => line.msg === 'credential file changed; the next login uses it').length;
    const seen = changes();
    writeFileSync(file, content);
    while (changes() === seen) {
      await clock.whenPending((dueIn) => dueIn === 200);
      await clock.advance(200);
    }
    await asleep(app, clock);
  }

  it('keeps the running token when the client secret file changes: a typo stops nothing while the token works', async () => {
    const { fake, app, logs, clock, secretFile } = await startRun();
    fake.clearRequests();
    await changeCredentialFile(app, clock, logs, secretFile, 'typo-in-the-rotated-secret\n');
    await passes(app, clock, 3);

    expect(loginsIn(fake), 'logins after the file changed').toEqual([]);
    expect(await health(app)).toMatchObject({ status: 'ok', lastError: null });
  });

  it('after the token is refused, a refused login waits (no lockout), /healthz says until when, and a fixed file logs in at once', async () => {
    const { fake, app, logs, clock, rightSecret, secretFile } = await startRun();
    await changeCredentialFile(app, clock, logs, secretFile, 'typo-in-the-rotated-secret\n');
    fake.clearRequests();
    fake.expireTokens();

    await passes(app, clock, 1);
    expect((await health(app)).lastError?.code).toBe('SIDECAR_AUTH_INVALID_CREDENTIALS');
    const refusedAt = clock.now();
    await passes(app, clock, 4);
    expect(loginsIn(fake).map((r) => r.status), 'login answers while the file is wrong').toEqual([401]);
    const { lastError } = await health(app);
    expect(lastError?.message).toMatch(/universal-auth\/login: 401 Invalid credentials/);
    const nextLogin = new Date(refusedAt + 60_000).toISOString().replace(/\./g, '\\.');
    const inSeconds = Math.round((refusedAt + 60_000 - clock.now()) / 1_000);
    expect(lastError?.message).toMatch(new RegExp(`logins are backing off .*: next attempt at ${nextLogin} \\(in ${inSeconds < 60 ? `${inSeconds}s` : '1m'}\\)`));

    await changeCredentialFile(app, clock, logs, secretFile, `${rightSecret}\n`);
    await passes(app, clock, 1); // the next pass, not the backoff's minute later
    expect(clock.now() - refusedAt).toBeLessThan(60_000);
    expect((await health(app)).status).toBe('ok');
    expect(loginsIn(fake).map((r) => r.status)).toEqual([401, 200]);
    await assertNotLockedOut(fake, rightSecret);
  });
});

describe('the spacing of refused logins', () => {
  async function clientWith(clock: ManualClock) {
    const fake = await startFake({ clock });
    const rightSecret = guard.canary('client-secret', 'plain');
    fake.addIdentity(DEMO_CLIENT_ID, rightSecret);
    let credentials: Credentials = { clientId: DEMO_CLIENT_ID, clientSecret: 'typo-1' };
    const client = clientAgainst(fake, () => credentials, clock);
    /** One fetch; returns the error message, or 'ok'. */
    const fetchOnce = async () => {
      const [result] = (await client.fetchFolders([DEMO_DATABASE_PATH])) as [FolderResult];
      if (result.ok) return 'ok';
      guard.observe(result.error.message, result.error.hint);
      return result.error.message;
    };
    const setSecret = (clientSecret: string) => {
      credentials = { clientId: DEMO_CLIENT_ID, clientSecret };
      client.credentialsChanged();
    };
    return { fake, client, rightSecret, fetchOnce, setSecret };
  }

  it('waits 1 min, 2 min, 4 min, then 5 min between refused logins, sending nothing in between', async () => {
    const clock = new ManualClock();
    const { fake, fetchOnce } = await clientWith(clock);
    const loginAttempts = () => loginsIn(fake).length;

    expect(await fetchOnce()).toMatch(/401 Invalid credentials$/);
    for (const waitMs of [60_000, 120_000, 240_000, 300_000, 300_000]) {
      const attempts = loginAttempts();
      await clock.advance(waitMs - 1_000);
      expect(await fetchOnce()).toMatch(/logins are backing off/);
      expect(loginAttempts(), `no login ${waitMs / 1000 - 1} s after a refusal`).toBe(attempts);
      await clock.advance(1_000);
      expect(await fetchOnce()).toMatch(/401 Invalid credentials$/);
      expect(loginAttempts()).toBe(attempts + 1);
    }
  });

  it('tries a changed credential file sooner, but never lets 3 refused logins fall within the lockout window', async () => {
    const clock = new ManualClock();
    const { fake, rightSecret, fetchOnce, setSecret } = await clientWith(clock);

    expect(await fetchOnce()).toMatch(/401 Invalid credentials$/); // refused: 1 in the window
    setSecret('typo-2');
    expect(await fetchOnce()).toMatch(/401 Invalid credentials$/); // tried at once: 2 in the window
    setSecret('typo-3');
    expect(await fetchOnce(), 'a third try within the window').toMatch(/logins are backing off .*\(in 40s\)/);
    await clock.advance(39_000);
    expect(await fetchOnce()).toMatch(/logins are backing off/);
    expect(loginsIn(fake)).toHaveLength(2);
    await clock.advance(1_000); // the first refusal has left the window (30 s, plus a margin)
    expect(await fetchOnce()).toMatch(/401 Invalid credentials$/);
    expect(loginsIn(fake)).toHaveLength(3);

    setSecret(rightSecret); // one refusal in the window: tried at once
    expect(await fetchOnce()).toBe('ok');
    expect(loginsIn(fake).map((r) => r.status)).toEqual([401, 401, 401, 200]);
    await assertNotLockedOut(fake, rightSecret);
  });
});
