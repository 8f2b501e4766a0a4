/**
 * The whole main job against the fake Infisical server over real HTTP, into real temp directories:
 * what `once`, `check` and `run` write, keep and exit with. Where a test waits (a backoff, a
 * retry-after, the once deadline, the refresh interval, staleness) the sidecar and the fake run on a
 * manual clock the test moves, and the wait is asserted exactly on it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { EXIT_CODES } from '../src/errors.js';
import type { Clock } from '../src/timers.js';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { ManualClock } from './helpers/clock.js';
import { nextPass, passAfter } from './helpers/passes.js';
import { glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const LIST = '/api/v3/secrets/raw';
const isList = (r: { path: string }) => r.path === LIST;

async function appFor(env: Record<string, string>, clock?: Clock) {
  const { log, logs } = testLogger();
  const app = createApp(loadConfig(env), log, clock ? { clock } : {});
  return { app, logs };
}

/**
 * `app.once()` on `clock`: after each failed pass (the backoff is then scheduled, in the same tick),
 * moves the clock to its earliest timer: the end of the backoff, or the deadline when that is first.
 */
async function onceOnClock(clock: ManualClock, app: App) {
  const running = app.once();
  let done = false;
  void running.finally(() => (done = true));
  const failuresBefore = app.health.report().consecutiveFailures;
  for (let failure = 1; ; failure++) {
    await Promise.race([running, clock.whenPending(() => app.health.report().consecutiveFailures >= failuresBefore + failure)]);
    if (done) return running;
    await clock.advance(clock.pending()[0]!);
  }
}

/** A snapshot of every file under the output dir (following the links), to prove nothing changed. */
function readOutputs(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const relative = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.name.startsWith('..')) continue;
      const full = path.join(dir, relative);
      if (statSync(full).isDirectory()) walk(relative);
      else out[relative] = readFileSync(full, 'utf8');
    }
  };
  walk('');
  return out;
}

describe('first sync', () => {
  it('writes every output, derived DATABASE_URL included, with mode 0440', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', "p@ss w'rd:%/");
    const { app } = await appFor(glitchtipEnv(fake, dir));

    const outcome = await app.once();
    expect(outcome).toMatchObject({ ok: true, revision: 1, changed: true, keyCount: 5 });
    expect(readdirSync(dir).sort()).toEqual(['..data', '..digest-key', readlinkSync(path.join(dir, '..data')), 'keys', 'secrets.dotenv', 'secrets.env', 'secrets.json', 'with-secrets.sh'].sort());

    const json = JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(json)).toEqual(['DATABASE_URL', 'DEFAULT_FROM_EMAIL', 'EMAIL_URL', 'POSTGRES_PASSWORD', 'SECRET_KEY']);
    expect(json.DATABASE_URL).toBe('postgres://glitchtip_maintainer:p%40ss%20w%27rd%3A%25%2F@postgres:5432/glitchtip');
    expect(readFileSync(path.join(dir, 'keys', 'POSTGRES_PASSWORD'), 'utf8')).toBe("p@ss w'rd:%/");
    for (const file of ['secrets.env', 'secrets.dotenv', 'secrets.json', 'keys/POSTGRES_PASSWORD', 'keys/SECRET_KEY']) {
      expect(statSync(path.join(dir, file)).mode & 0o777, file).toBe(0o440);
    }
  });

  it('produces an env file that /bin/sh sources back to the exact values', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const hostile = {
      POSTGRES_PASSWORD: `it's "quoted" $HOME \`id\` $(id) \\n back\\slash`,
      SECRET_KEY: 'line one\nline two\r\n\ttabbed  ',
      EMAIL_URL: 'smtp://glitchtip%40app:p%2Bw@smtp.example.test:2525',
      DEFAULT_FROM_EMAIL: ' glitchtip@example.test ',
    };
    for (const [key, value] of Object.entries(hostile)) {
      fake.setSecret(DEMO_ENVIRONMENT, key === 'POSTGRES_PASSWORD' ? DEMO_DATABASE_PATH : DEMO_APPLICATION_PATH, key, value);
    }
    const { app } = await appFor(glitchtipEnv(fake, dir));
    expect((await app.once()).ok).toBe(true);

    for (const [key, value] of Object.entries(hostile)) {
      const seen = execFileSync('/bin/sh', ['-c', `set -a; . "$1"; set +a; printf '%s' "$${key}"`, 'sh', path.join(dir, 'secrets.env')], { encoding: 'utf8' });
      expect(seen, key).toBe(value);
    }
  });
});

describe('refresh failures keep the last good files', () => {
  it('writes nothing when one folder fails while the other succeeds', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const { app, logs } = await appFor(glitchtipEnv(fake, dir, { SIDECAR_ONCE_DEADLINE: '1s' }), clock);
    expect((await app.once()).ok).toBe(true);
    const before = readOutputs(dir);

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', 'rotated-but-must-not-appear');
    fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'status', status: 500 });
    const start = clock.now();
    const outcome = await onceOnClock(clock, app);

    // Retried on the backoff until the deadline, and never written.
    expect(clock.now() - start).toBe(1_000);
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE' });
    expect(outcome.folders.map((f) => [f.path, f.ok])).toEqual([
      [DEMO_DATABASE_PATH, true],
      [DEMO_APPLICATION_PATH, false],
    ]);
    expect(readOutputs(dir)).toEqual(before);
    expect(logs.text()).toContain('sync failed; last good files kept');
  });

  it('re-logs in exactly once when the token expires, in the 401 and in the 403 form', async () => {
    for (const form of ['401', '403'] as const) {
      const fake = await startFake({ expiredTokenForm: form });
      const dir = makeTempDir();
      const { app } = await appFor(glitchtipEnv(fake, dir));
      expect((await app.once()).ok).toBe(true);
      fake.expireTokens(form);
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', `after-expiry-${form}`);
      fake.clearRequests();

      const outcome = await app.once();
      expect(outcome.ok, form).toBe(true);
      expect(outcome.changedKeys).toEqual(['SECRET_KEY']);
      const logins = fake.requests.filter((r) => r.path.includes('/auth/universal-auth/login'));
      expect(logins, form).toHaveLength(1);
      expect(app.client.stats.relogins).toBe(1);
      expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).toBe(`after-expiry-${form}`);
    }
  });

  it('does not loop when access is denied after a fresh login', async () => {
    const fake = await startFake();
    const { app } = await appFor(glitchtipEnv(fake, makeTempDir()));
    fake.faults.add({ route: 'list', kind: 'status', status: 403, body: { reqId: 'req-aaaaaaaaaaaaaa', statusCode: 403, message: 'You do not have permission to read secret values', error: 'ForbiddenError' } });
    const outcome = await app.once();
    expect(outcome.error).toMatchObject({ code: 'SIDECAR_AUTH_FORBIDDEN', exitCode: EXIT_CODES.auth });
    expect(outcome.error?.message).toMatch(/403 You do not have permission to read secret values \(again after a fresh login\)/);
    expect(fake.requests.filter((r) => r.path.includes('login'))).toHaveLength(2);
  });

  it('waits for retry-after on 429 before asking again', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const { app } = await appFor(glitchtipEnv(fake, makeTempDir(), { INFISICAL_SECRET_PATHS: DEMO_DATABASE_PATH, SIDECAR_REQUIRED_KEYS: 'POSTGRES_PASSWORD', SIDECAR_DERIVE_DATABASE_URL: '{{ POSTGRES_PASSWORD }}' }), clock);
    fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 1, times: 1 });

    const outcome = await onceOnClock(clock, app);
    expect(outcome.ok).toBe(true);
    // The retry-after (1 s) rules over the backoff (at most 200 ms here): asked again exactly 1 s later.
    const lists = fake.requests.filter(isList);
    expect(lists.map((r) => r.status)).toEqual([429, 200]);
    expect(lists[1]!.at - lists[0]!.at).toBe(1_000);
    expect(app.client.stats.rateLimited).toBe(1);
  });

  it('turns a hanging server into a deadline error instead of hanging', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const { app } = await appFor(glitchtipEnv(fake, makeTempDir(), { SIDECAR_REQUEST_TIMEOUT: '300ms', SIDECAR_ONCE_DEADLINE: '1s' }), clock);
    fake.faults.add({ route: 'list', kind: 'hang' });
    const start = clock.now();
    const running = app.once();
    let done = false;
    void running.finally(() => (done = true));
    // Each pass: both list requests hang until the 300 ms request timeout, then the backoff; the
    // clock moves only once the pass waits on timers alone.
    for (let pass = 1; !done; pass++) {
      await Promise.race([running, fake.whenRequests((requests) => requests.filter(isList).length === 2 * pass)]);
      if (done) break;
      await clock.advance(Math.min(300, start + 1_000 - clock.now()));
      if (clock.now() === start + 1_000) break;
      await Promise.race([running, clock.whenPending(() => app.health.report().consecutiveFailures >= pass)]);
      if (done) break;
      await clock.advance(Math.min(clock.pending()[0]!, start + 1_000 - clock.now()));
    }
    const outcome = await running;
    expect(clock.now() - start).toBe(1_000);
    expect(outcome.error).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE', exitCode: EXIT_CODES.deadline });
    expect(outcome.error?.message).toMatch(/last error: SIDECAR_FETCH_TIMEOUT: GET http:\/\/127\.0\.0\.1:\d+\/api\/v3\/secrets\/raw \(folder \/glitchtip\/\w+\): no answer within 300 ms/);
  });
});

describe('once deadline', () => {
  it('reports the deadline even when it expires in the middle of a request', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const { app } = await appFor(glitchtipEnv(fake, makeTempDir(), { SIDECAR_REQUEST_TIMEOUT: '10s', SIDECAR_ONCE_DEADLINE: '1s' }), clock);
    fake.faults.add({ route: 'list', kind: 'hang' });
    const start = clock.now();
    const running = app.once();
    // Both list requests hang, with 10 s to go before their timeout; the deadline falls 1 s in.
    await fake.whenRequests((requests) => requests.filter(isList).length === 2);
    await clock.advance(999);
    expect(app.health.report().lastAttemptAt).toBeNull(); // still waiting on the hung requests
    await clock.advance(1);
    const outcome = await running;
    expect(clock.now() - start).toBe(1_000);
    expect(outcome.error).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE', exitCode: EXIT_CODES.deadline });
    expect(outcome.error?.message).toBe(`no complete sync within 1s; last error: SIDECAR_FETCH_TIMEOUT: GET ${fake.url}${LIST} (folder ${DEMO_DATABASE_PATH}): cancelled before an answer arrived (deadline or shutdown)`);
  });
});

describe('health', () => {
  it('is 503 naming the key while a required key is missing, and 200 once it exists', async () => {
    const fake = await startFake();
    const { app } = await appFor(glitchtipEnv(fake, makeTempDir(), { SIDECAR_REQUIRED_KEYS: 'POSTGRES_PASSWORD,SENTRY_DSN' }));
    const before = await app.server.inject('/healthz');
    expect(before.statusCode).toBe(503);
    expect(before.json()).toMatchObject({ status: 'starting', ready: false });

    expect((await app.once()).error?.code).toBe('SIDECAR_MISSING_REQUIRED_KEYS');
    const missing = await app.server.inject('/healthz');
    expect(missing.statusCode).toBe(503);
    expect(missing.json()).toMatchObject({ status: 'missing_keys', missingKeys: ['SENTRY_DSN'], lastError: { code: 'SIDECAR_MISSING_REQUIRED_KEYS' } });
    expect(missing.json().lastError.message).toMatch(/required key missing from .*: SENTRY_DSN/);

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SENTRY_DSN', 'https://key@sentry.example.test/1');
    expect((await app.once()).ok).toBe(true);
    const healthy = await app.server.inject('/healthz');
    expect(healthy.statusCode).toBe(200);
    expect(healthy.json()).toMatchObject({
      status: 'ok',
      ready: true,
      revision: 1,
      keyCount: 6,
      folders: [
        { path: DEMO_DATABASE_PATH, secretCount: 1, lastError: null },
        { path: DEMO_APPLICATION_PATH, secretCount: 4, lastError: null },
      ],
    });
    expect((await app.server.inject('/readyz')).statusCode).toBe(200);
    expect((await app.server.inject('/livez')).statusCode).toBe(200);
  });
});

describe('run mode', () => {
  it('serves /healthz, refreshes on the interval, is healthy until the staleness bound and stale at it, recovers, and stops cleanly on shutdown', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const { app } = await appFor(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1s', SIDECAR_MAX_STALENESS: '3s', SIDECAR_REFRESH_JITTER: '0' }), clock);
    await app.start();
    try {
      const first = await passAfter(clock, app, null);
      expect((await app.server.inject('/healthz')).statusCode).toBe(200);
      expect(first.nextRefreshAt).toBe(new Date(clock.now() + 1_000).toISOString());
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'rotated-in-run');
      // The next pass, one interval later, writes it; the files are swapped in before /healthz records the pass.
      const rotated = await nextPass(clock, app);
      expect(Date.parse(rotated.lastAttemptAt!) - Date.parse(first.lastAttemptAt!)).toBe(1_000);
      expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).toBe('rotated-in-run');
      expect((await app.server.inject('/healthz')).json()).toMatchObject({ status: 'ok', revision: 2, changedKeys: ['SECRET_KEY'] });

      // Infisical goes away: files stay; /healthz is 200 up to lastSuccessAt + SIDECAR_MAX_STALENESS and 503 after it.
      const before = readOutputs(dir);
      fake.faults.add({ kind: 'status', status: 503 });
      const bound = Date.parse(rotated.lastSuccessAt!) + 3_000;
      const seen: [number, number, string][] = [];
      for (const checkpoint of [bound - 1, bound]) {
        while (Date.parse(app.health.report().nextRefreshAt!) <= checkpoint) {
          expect((await nextPass(clock, app)).lastError).toMatchObject({ code: 'SIDECAR_FETCH_UNAVAILABLE' });
        }
        await clock.advance(checkpoint - clock.now());
        const response = await app.server.inject('/healthz');
        seen.push([clock.now() - bound, response.statusCode, response.json().status]);
      }
      expect(seen).toEqual([
        [-1, 200, 'degraded'],
        [0, 503, 'stale'],
      ]);
      expect((await app.server.inject('/healthz')).json()).toMatchObject({ status: 'stale', lastError: { code: 'SIDECAR_FETCH_UNAVAILABLE' } });
      expect(readOutputs(dir)).toEqual(before);
      fake.faults.clear();
      expect(await nextPass(clock, app)).toMatchObject({ status: 'ok', revision: 2 });
      expect((await app.server.inject('/healthz')).statusCode).toBe(200);
    } finally {
      await app.stop();
    }
  });
});

describe('once and check through the CLI', () => {
  it('exits with a distinct code per failure', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const env = glitchtipEnv(fake, dir);
    expect((await runCommand(['once'], env)).code).toBe(EXIT_CODES.ok);
    expect((await runCommand(['once'], { ...env, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: 'wrong' })).code).toBe(EXIT_CODES.auth);
    expect((await runCommand(['once'], { ...env, INFISICAL_SECRET_PATHS: '/nope' })).code).toBe(EXIT_CODES.fetch);
    expect((await runCommand(['once'], { ...env, SIDECAR_REQUIRED_KEYS: 'NOT_THERE' })).code).toBe(EXIT_CODES.missingKeys);
    expect((await runCommand(['once'], { ...env, SIDECAR_OUTPUT_DIR: path.join(dir, 'missing') })).code).toBe(EXIT_CODES.write);
    expect((await runCommand(['once'], { ...env, SIDECAR_REFRESH_INTERVAL: 'soon' })).code).toBe(EXIT_CODES.config);
    expect((await runCommand(['once'], { ...env, SIDECAR_DERIVE_X: '{{ A | nope }}' })).code).toBe(EXIT_CODES.config);
    expect((await runCommand(['frobnicate'], env)).code).toBe(EXIT_CODES.usage);
    // A 502 is retried on the backoff until the deadline (on a manual clock: each backoff is moved
    // through once it is scheduled, the only timer shorter than the deadline).
    fake.faults.add({ route: 'list', kind: 'status', status: 502 });
    const clock = new ManualClock();
    const start = clock.now();
    const deadline = runCommand(['once'], { ...env, SIDECAR_ONCE_DEADLINE: '1s' }, undefined, clock);
    let done = false;
    void deadline.finally(() => (done = true));
    const backoffs = () => clock.scheduled.filter((delay) => delay > 0 && delay < 1_000).length;
    for (let backoff = 1; !done; backoff++) {
      await Promise.race([deadline, clock.whenPending(() => backoffs() >= backoff)]);
      if (!done) await clock.advance(clock.pending()[0]!);
    }
    expect((await deadline).code).toBe(EXIT_CODES.deadline);
    expect(clock.now() - start).toBe(1_000);
  });

  it('prints the config problem to stderr, naming the variable', async () => {
    const result = await runCommand(['once'], { INFISICAL_ENVIRONMENT: 'prod' });
    expect(result.code).toBe(EXIT_CODES.config);
    expect(result.stderr).toMatch(/^infisical-sidecar: SIDECAR_CONFIG_INVALID: invalid configuration \(3 problems\):\n  - INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: not set/);
  });

  it('check shows folders, key names and files, writes nothing and prints no value', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const result = await runCommand(['check'], glitchtipEnv(fake, dir));
    expect(result.code).toBe(EXIT_CODES.ok);
    expect(readdirSync(dir)).toEqual([]);
    expect(result.stdout).toContain('infisical-sidecar check: OK');
    expect(result.stdout).toMatch(/\/glitchtip\/application\s+3 secret\(s\)/);
    expect(result.stdout).toMatch(/keys \(5, values not shown\):\n  DATABASE_URL\n  DEFAULT_FROM_EMAIL/);
    expect(result.stdout).toMatch(/secrets\.env\s+\d+ bytes/);
    expect(result.stdout).toContain('nothing was written');
  });
});
