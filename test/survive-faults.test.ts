/**
 * Issue 5 §1: Infisical misbehaving, against the real sidecar (config → client → sync → writer →
 * health) in run mode, over real HTTP to the fake server. Every scenario checks the same promises:
 * the last good files stay byte-identical while a pass fails, /healthz says why, the retry schedule
 * is bounded, and it recovers on its own. The scenarios only wait on timers, so they run concurrently;
 * the leak check after the last test covers everything they logged and served.
 */
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../src/errors.js';
import type { FakeInfisical } from './fake-infisical/server.js';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { freePort, health, logLines, outputFiles, scenario } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand, type CapturedLogs } from './helpers/sidecar.js';
import { waitFor } from './helpers/wait.js';

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(50_000);
const LOGIN = '/api/v1/auth/universal-auth/login';
const LIST = '/api/v3/secrets/raw';
/** Timer lateness tolerated on a loaded 2-core CI machine (timers fire late, never early). */
const SCHEDULING_SLACK_MS = 500;
/** Upper bound for waits that include real work (HTTP, render, fsync) under load; only a failure waits this long. */
const PATIENCE_MS = 8_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isLogin = (r: { path: string }) => r.path === LOGIN;
const isList = (r: { path: string }) => r.path === LIST;
/** Stands in for a fake that is not running: only its URL is used. */
const unreachable = (port: number) => ({ url: `http://127.0.0.1:${port}` }) as FakeInfisical;
/** Passes that got past the login (a login that timed out under CI load lists nothing). */
const passesThatListed = (logs: CapturedLogs) =>
  logs.lines().filter((line) => line.component === 'sync' && ['sync failed; last good files kept', 'secrets written', 'secrets unchanged'].includes(line.msg as string) && !String(line.err).includes(LOGIN)).length;
const secretKeyFile = (dir: string) => readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8');

describe.concurrent('Infisical faults, run mode', () => {
  it('down at start: retries on the capped backoff, /healthz 503 names the reason, recovers when it comes up', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const port = await freePort();
    const dir = s.tempDir();
    const env = glitchtipEnv(unreachable(port), dir, FAST);
    const { app, logs } = s.app(env);
    await s.start(app);

    const failing = await waitFor(async () => {
      const h = await health(app);
      return h.body.consecutiveFailures >= 5 ? h : undefined;
    }, '5 failed passes', PATIENCE_MS);
    expect(failing.statusCode).toBe(503);
    expect(failing.body).toMatchObject({ status: 'failing', ready: false, lastSuccessAt: null, lastError: { code: 'SIDECAR_FETCH_UNAVAILABLE' } });
    expect(failing.body.lastError?.message).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/auth\/universal-auth\/login: request failed \(ECONNREFUSED\)/);
    expect(failing.body.lastError?.hint).toMatch(/INFISICAL_SITE_URL/);

    // Capped backoff: every wait is the 200 ms cap minus at most 20 % jitter; no tight loop, no long stall.
    const delays = logLines(logs, 'sync failed; last good files kept').map((line) => Date.parse(line.next as string) - Date.parse(line.time as string));
    expect(delays.length).toBeGreaterThanOrEqual(5);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(120); // 160 ms minimum, minus the time between scheduling and logging
      expect(delay).toBeLessThanOrEqual(201);
    }

    // Infisical comes up on that port: the next attempt (≤ one capped backoff) succeeds.
    const fake = await s.fake({ port });
    guard.seed(fake);
    const upAt = Date.now();
    const healthy = await waitFor(async () => {
      const h = await health(app);
      return h.statusCode === 200 ? h : undefined;
    }, 'healthy after Infisical came up', 5_000, 10);
    // Recovery is scheduled by the backoff, not by luck: the first request after the return comes
    // within one capped backoff, and that very pass succeeds.
    const firstTry = fake.requests[0]!.at - upAt;
    expect(firstTry).toBeLessThanOrEqual(200 + SCHEDULING_SLACK_MS);
    expect(fake.requests.filter(isLogin)).toHaveLength(1);
    const failedAfterUp = logLines(logs, 'sync failed; last good files kept').filter((line) => Date.parse(line.time as string) > upAt + 5);
    expect(failedAfterUp).toEqual([]);
    console.info(`[survive] down at start: ${delays.length} retries ${Math.min(...delays)}–${Math.max(...delays)} ms apart (cap 200 ms); first request ${firstTry} ms after Infisical came up, healthy after ${Date.now() - upAt} ms`);
    expect(healthy.body).toMatchObject({ status: 'ok', ready: true, revision: 1, consecutiveFailures: 0, lastError: null });
    expect(Object.keys(outputFiles(dir)).sort()).toEqual(expect.arrayContaining(['secrets.env', 'secrets.json', 'keys/SECRET_KEY']));
  });

  it('long outage mid-run: files byte-identical throughout, stale exactly at the bound, back within one interval', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    // Default backoff cap (5m) → capped by the 1 s interval: the outage is retried once per interval.
    const { app, logs, config } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_BACKOFF_MAX: '5m' }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);

    fake.faults.add({ kind: 'reset' });
    const outageStart = Date.now();
    const rotated = guard.canary('outage');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    const firstFailure = await waitFor(async () => {
      const h = await health(app);
      return h.body.lastError ? h : undefined;
    }, 'first failed pass', PATIENCE_MS, 10);
    const bound = Date.parse(firstFailure.body.lastSuccessAt!) + config.maxStalenessMs;

    // Poll /healthz back to back; each sample knows the time window it was taken in.
    const samples: { before: number; after: number; code: number; status: string }[] = [];
    let identicalChecks = 0;
    let lastFileCheck = 0;
    while (Date.now() < bound + 1_500) {
      const before = Date.now();
      const h = await health(app);
      const after = Date.now();
      samples.push({ before, after, code: h.statusCode, status: h.body.status });
      if (after - lastFileCheck >= 100) {
        expect(outputFiles(dir)).toEqual(baseline);
        identicalChecks++;
        lastFileCheck = after;
      }
      await sleep(5);
    }
    const stale = await health(app);
    guard.observe((await app.server.inject('/metrics')).body);
    expect(stale.body).toMatchObject({ status: 'stale', healthy: false, ready: true });
    expect(stale.body.lastError?.code, stale.body.lastError?.message).toBe('SIDECAR_FETCH_UNAVAILABLE');

    // "Exactly at the bound": healthy up to lastSuccessAt + SIDECAR_MAX_STALENESS, 503 after it.
    const beforeBound = samples.filter((sample) => sample.after <= bound);
    const afterBound = samples.filter((sample) => sample.before > bound);
    expect(beforeBound.length).toBeGreaterThan(10);
    expect(afterBound.length).toBeGreaterThan(10);
    expect(beforeBound.every((sample) => sample.code === 200 && sample.status === 'degraded')).toBe(true);
    expect(afterBound.every((sample) => sample.code === 503 && sample.status === 'stale')).toBe(true);
    const firstStale = samples.find((sample) => sample.code === 503)!;
    const flipLagMs = firstStale.after - bound;
    expect(identicalChecks).toBeGreaterThanOrEqual(5);
    expect(lastFileCheck).toBeGreaterThan(bound); // checked after the flip to stale too

    // The outage was retried about once per interval, not in a tight loop.
    const outageMs = Date.now() - outageStart;
    const outageLists = fake.requests.filter((r) => isList(r) && r.at >= outageStart).length;
    expect(outageLists).toBeLessThanOrEqual(2 * (Math.ceil(outageMs / 800) + 1));

    fake.faults.clear();
    const backAt = Date.now();
    await waitFor(async () => (await health(app)).body.status === 'ok', 'recovery', PATIENCE_MS, 10);
    const recoveryMs = Date.now() - backAt;
    // Within one interval of its return the sidecar asks again, and that pass succeeds.
    const firstTry = Math.min(...fake.requests.filter((r) => r.at >= backAt).map((r) => r.at)) - backAt;
    expect(firstTry).toBeLessThanOrEqual(config.refreshIntervalMs + SCHEDULING_SLACK_MS);
    const failedAfter = logLines(logs, 'sync failed; last good files kept').filter((line) => Date.parse(line.time as string) > backAt + firstTry + 5);
    expect(failedAfter.map((line) => `${line.time as string} ${line.code as string} ${line.err as string}`), `back at ${new Date(backAt).toISOString()}`).toEqual([]);
    expect(secretKeyFile(dir)).toBe(rotated);
    console.info(`[survive] outage: stale flip ${flipLagMs} ms after lastSuccessAt+maxStaleness (poll gap ≤ ${firstStale.after - firstStale.before + 5} ms); ${identicalChecks} byte-identical checks over ${outageMs} ms; ${outageLists} list requests; first request ${firstTry} ms and healthy ${recoveryMs} ms after Infisical returned (interval ${config.refreshIntervalMs} ms)`);
  });

  it('flapping: every sampled set is whole and one version, request rate bounded, converges on the last value', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    // A 200 ms interval (below the config's 1 s minimum, set on the Config directly) so that many
    // passes meet the flapping server within the 3 s window.
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST), { refreshIntervalMs: 200, backoffMaxMs: 100 });
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');

    const values = [secretKeyFile(dir)];
    // Down 120 ms, up 280 ms, over and over: connections reset mid-pass, passes half-done.
    let flapping = true;
    const flapStart = Date.now();
    let toggler: NodeJS.Timeout | undefined;
    const flap = (down: boolean) => {
      if (!flapping) return;
      if (down) fake.faults.add({ route: 'list', kind: 'reset' });
      else fake.faults.clear();
      toggler = setTimeout(() => flap(!down), down ? 120 : 280);
    };
    flap(true);
    const rotator = setInterval(() => {
      const value = guard.canary('flap', 'plain');
      values.push(value);
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', value);
    }, 400);
    let samples = 0;
    const seen = new Set<string>();
    try {
      while (Date.now() - flapStart < 3_000) {
        // Resolve ..data once, then read the set from that version (the documented way to read a set).
        const version = path.join(dir, readlinkSync(path.join(dir, '..data')));
        const fromFile = readFileSync(path.join(version, 'keys', 'SECRET_KEY'), 'utf8');
        const fromJson = (JSON.parse(readFileSync(path.join(version, 'secrets.json'), 'utf8')) as Record<string, string>).SECRET_KEY;
        const fromEnv = /^SECRET_KEY='([^']*)'$/m.exec(readFileSync(path.join(version, 'secrets.env'), 'utf8'))?.[1];
        expect(fromJson).toBe(fromFile);
        expect(fromEnv).toBe(fromFile);
        expect(values).toContain(fromFile);
        seen.add(fromFile);
        samples++;
        await sleep(25);
      }
    } finally {
      flapping = false;
      clearTimeout(toggler);
      clearInterval(rotator);
    }
    const flapMs = Date.now() - flapStart;
    fake.faults.clear();
    const last = guard.canary('flap-final', 'plain');
    values.push(last);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', last);
    await waitFor(() => secretKeyFile(dir) === last, 'the last value', PATIENCE_MS, 10);

    const lists = fake.requests.filter((r) => isList(r) && r.at >= flapStart && r.at <= flapStart + flapMs).length;
    expect(lists).toBeGreaterThanOrEqual(2 * 3); // it met the flapping server several times
    expect(lists).toBeLessThanOrEqual(2 * (Math.ceil(flapMs / 80) + 1)); // never faster than the backoff allows
    expect(samples).toBeGreaterThan(20);
    // Files are rewritten only when the content changed: one revision per written set.
    const report = (await health(app)).body;
    expect(logLines(logs, 'secrets written')).toHaveLength(report.revision);
    console.info(`[survive] flapping: ${samples} set samples over ${flapMs} ms, all whole and one version; ${seen.size} distinct values seen; ${lists} list requests; ${report.revision} revisions`);
  });

  it('a hanging folder: each pass gives up at the request timeout with one request per folder, files kept', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_MAX_STALENESS: '30s', SIDECAR_REQUEST_TIMEOUT: '300ms' }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);

    fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'hang' });
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', guard.canary('hang'));
    const failed = await waitFor(async () => {
      const h = await health(app);
      return h.body.consecutiveFailures >= 3 ? h : undefined;
    }, '3 timed-out passes', PATIENCE_MS);
    expect(failed.statusCode).toBe(200); // still within SIDECAR_MAX_STALENESS: degraded, not down
    expect(failed.body).toMatchObject({ status: 'degraded', lastError: { code: 'SIDECAR_FETCH_TIMEOUT' } });
    const hung = failed.body.folders.find((f) => f.path === DEMO_APPLICATION_PATH)?.lastError;
    expect(hung?.code).toBe('SIDECAR_FETCH_TIMEOUT');
    expect(hung?.message).toMatch(/folder \/glitchtip\/application\): no answer within 300 ms/);
    expect(outputFiles(dir)).toEqual(baseline);

    await app.stop(); // between passes: the next one is 200 ms away, none is in flight
    // The SDK's own retries (up to 4 more, for ~15 s) never reach the network: at most one request per
    // folder per pass. (Fewer can arrive on a loaded machine: a request aborted before it was sent.)
    const passes = passesThatListed(logs);
    const hungRequests = fake.requests.filter((r) => isList(r) && r.query.secretPath === DEMO_APPLICATION_PATH).length;
    expect(hungRequests).toBeLessThanOrEqual(passes);
    expect(hungRequests).toBeGreaterThanOrEqual(Math.ceil(passes / 2));
    expect(fake.requests.filter(isList).length).toBeLessThanOrEqual(2 * passes);
  });

  it('5xx storm (500/502/503/504, JSON and HTML bodies): one request per folder per pass, files kept, then recovery', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);

    const storm = [500, 502, 503, 504].flatMap((status) => [
      { route: 'list' as const, kind: 'status' as const, status, times: 1 },
      { route: 'list' as const, kind: 'status' as const, status, times: 1, body: `<html><body><h1>${status} from the proxy</h1></body></html>` },
    ]);
    for (let round = 0; round < 2; round++) for (const rule of storm) fake.faults.add({ ...rule });
    const stormStart = Date.now();
    const rotated = guard.canary('storm');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    const statuses = new Set<number | undefined>();
    while (fake.faults.list().length > 0 && Date.now() - stormStart < PATIENCE_MS) {
      const h = await health(app);
      if (h.body.lastError) statuses.add(Number(/: (\d{3})/.exec(h.body.lastError.message)?.[1]));
      expect(h.body.lastError?.code ?? 'SIDECAR_FETCH_UNAVAILABLE').toBe('SIDECAR_FETCH_UNAVAILABLE');
      expect(outputFiles(dir)).toEqual(baseline);
      await sleep(30);
    }
    expect(fake.faults.list()).toEqual([]);
    guard.observe((await app.server.inject('/metrics')).body);
    // Recovered (and recorded: the next pass is a whole interval away, so stopping now cuts no pass).
    await waitFor(async () => (await health(app)).body.revision === 2, 'recovery after the storm', PATIENCE_MS);
    expect(secretKeyFile(dir)).toBe(rotated);
    expect([...statuses].filter((status) => [500, 502, 503, 504].includes(status!)).length).toBeGreaterThanOrEqual(3);

    await app.stop();
    // 5xx is not retried inside a pass (neither by the SDK nor by us): one request per folder per pass.
    const lists = fake.requests.filter(isList).length;
    expect(lists).toBeLessThanOrEqual(2 * passesThatListed(logs));
    expect(lists).toBeGreaterThanOrEqual(2 * passesThatListed(logs) - 2);
  });

  it('429 with retry-after: no request before it expires, not even when triggered', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');

    fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 2, times: 2 });
    const rotated = guard.canary('ratelimit');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    const limited = await waitFor(async () => {
      const h = await health(app);
      return h.body.lastError?.code === 'SIDECAR_FETCH_RATE_LIMITED' ? h : undefined;
    }, 'a 429', PATIENCE_MS, 10);
    const lastLimited = Math.max(...fake.requests.filter((r) => r.status === 429).map((r) => r.at));
    expect(Date.parse(limited.body.nextRefreshAt!)).toBeGreaterThanOrEqual(lastLimited + 2_000 - 50);
    for (let i = 0; i < 5; i++) app.trigger('webhook storm');

    await waitFor(() => secretKeyFile(dir) === rotated, 'success after retry-after', PATIENCE_MS);
    const after = fake.requests.filter((r) => isList(r) && r.at > lastLimited);
    expect(after.length).toBeGreaterThanOrEqual(2);
    expect(Math.min(...after.map((r) => r.at)) - lastLimited).toBeGreaterThanOrEqual(2_000 - 5);
    expect(app.client.stats.rateLimited).toBeGreaterThanOrEqual(1);
  });

  for (const form of ['401', '403'] as const) {
    it(`token expired mid-run (${form} form): exactly one re-login, then no more`, async ({ onTestFinished, expect }) => {
      const s = scenario(onTestFinished);
      const fake = await s.fake({ expiredTokenForm: form });
      guard.seed(fake);
      const dir = s.tempDir();
      const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
      await s.start(app);
      await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');

      fake.expireTokens(form);
      const rotated = guard.canary(`expired-${form}`);
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
      await waitFor(() => secretKeyFile(dir) === rotated, 'rotation after re-login', PATIENCE_MS);
      const attemptsBefore = (await health(app)).body.lastAttemptAt;
      await waitFor(async () => {
        const h = await health(app);
        return h.body.lastAttemptAt !== attemptsBefore && h.body.status === 'ok';
      }, 'one more healthy pass', PATIENCE_MS);
      expect(fake.requests.filter(isLogin)).toHaveLength(2);
      expect(app.client.stats.relogins).toBe(1);
      expect((await health(app)).body).toMatchObject({ status: 'ok', lastError: null });
    });
  }

  it('access denied after a fresh login: one re-login per pass (no loop), AUTH_FORBIDDEN, files kept', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);

    const deniedFrom = Date.now();
    fake.faults.add({ route: 'list', kind: 'status', status: 403, body: { reqId: 'req-aaaaaaaaaaaaaa', statusCode: 403, message: 'You are not allowed to read secrets', error: 'PermissionDenied' } });
    const denied = await waitFor(async () => {
      const h = await health(app);
      return h.body.consecutiveFailures >= 4 ? h : undefined;
    }, '4 denied passes', PATIENCE_MS);
    expect(denied.body.lastError).toMatchObject({ code: 'SIDECAR_AUTH_FORBIDDEN' });
    expect(denied.body.lastError?.message).toMatch(/403 You are not allowed to read secrets \(again after a fresh login\)/);
    expect(outputFiles(dir)).toEqual(baseline);
    await app.stop();

    const failedPasses = logLines(logs, 'sync failed; last good files kept').length;
    const logins = fake.requests.filter((r) => isLogin(r) && r.at >= deniedFrom).length;
    expect(failedPasses).toBeGreaterThanOrEqual(4);
    expect(logins).toBeLessThanOrEqual(failedPasses);
    expect(logins).toBeGreaterThanOrEqual(failedPasses - 1);
  });

  it('one folder failing while the other succeeds: nothing written; both changes land together in one revision', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
    await s.start(app);
    const first = await waitFor(async () => {
      const h = await health(app);
      return h.body.status === 'ok' ? h : undefined;
    }, 'first sync');
    const baseline = outputFiles(dir);

    fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'status', status: 500 });
    const pg = guard.canary('one-folder-pg');
    const sk = guard.canary('one-folder-sk');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', pg);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', sk);
    const failing = await waitFor(async () => {
      const h = await health(app);
      return h.body.consecutiveFailures >= 3 ? h : undefined;
    }, '3 failed passes', PATIENCE_MS);
    expect(outputFiles(dir)).toEqual(baseline);
    const [database, application] = failing.body.folders;
    expect(database).toMatchObject({ path: DEMO_DATABASE_PATH, lastError: null, lastSuccessAt: first.body.folders[0]!.lastSuccessAt });
    expect(application).toMatchObject({ path: DEMO_APPLICATION_PATH, lastError: { code: 'SIDECAR_FETCH_UNAVAILABLE' } });
    expect(failing.body.revision).toBe(1);

    fake.faults.clear();
    const recovered = await waitFor(async () => {
      const h = await health(app);
      return h.body.revision === 2 ? h : undefined;
    }, 'one new revision', PATIENCE_MS);
    expect(recovered.body.changedKeys).toEqual(['DATABASE_URL', 'POSTGRES_PASSWORD', 'SECRET_KEY']);
    expect(readFileSync(path.join(dir, 'keys', 'POSTGRES_PASSWORD'), 'utf8')).toBe(pg);
    expect(secretKeyFile(dir)).toBe(sk);
  });

  it('credentials revoked: clear error, last good files kept, `once` exits 77, recovers with a new client secret file', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    const credentials = s.tempDir('creds-');
    const clientId = `revocable-${guard.tag}`;
    const firstSecret = guard.canary('client-secret-1', 'plain');
    fake.addIdentity(clientId, firstSecret);
    const secretFile = path.join(credentials, 'client_secret');
    writeFileSync(secretFile, `${firstSecret}\n`);
    const env = { ...glitchtipEnv(fake, dir, FAST), INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: clientId, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: secretFile };
    delete (env as Record<string, string | undefined>).INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET;
    const { app, logs } = s.app(env);
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);

    fake.revokeIdentity(clientId);
    fake.expireTokens();
    const revokedAt = Date.now();
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('after-revoke'));
    const stale = await waitFor(async () => {
      const h = await health(app);
      return h.body.status === 'stale' ? h : undefined;
    }, 'stale after revocation', PATIENCE_MS);
    guard.observe((await app.server.inject('/metrics')).body);
    expect(stale.statusCode).toBe(503);
    expect(stale.body.lastError).toMatchObject({ code: 'SIDECAR_AUTH_INVALID_CREDENTIALS' });
    expect(stale.body.lastError?.message).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/auth\/universal-auth\/login: 401 Invalid credentials/);
    expect(stale.body.lastError?.hint).toMatch(/client secret/);
    expect(outputFiles(dir)).toEqual(baseline);
    const revokedPasses = stale.body.consecutiveFailures;
    const revokedLogins = fake.requests.filter((r) => isLogin(r) && r.at >= revokedAt).length;
    expect(revokedLogins).toBeLessThanOrEqual(revokedPasses + 1); // one login attempt per pass at most

    // An init container (`once`) against the same volume waits for the running sidecar's lease and
    // gives up at its deadline (exit 74), files untouched; against its own volume it exits 77 at once.
    const sameVolume = await runCommand(['once'], env);
    expect(sameVolume.code).toBe(EXIT_CODES.lease);
    expect(sameVolume.logs.text()).toMatch(/"code":"SIDECAR_OUTPUT_LEASE_HELD"/);
    expect(outputFiles(dir)).toEqual(baseline);
    const once = await runCommand(['once'], { ...env, SIDECAR_OUTPUT_DIR: s.tempDir('init-') });
    expect(once.code).toBe(EXIT_CODES.auth);
    expect(once.logs.text()).toMatch(/"code":"SIDECAR_AUTH_INVALID_CREDENTIALS"/);

    // The operator issues a new client secret and updates the mounted file: picked up without a restart.
    const secondSecret = guard.canary('client-secret-2', 'plain');
    fake.addIdentity(clientId, secondSecret);
    writeFileSync(secretFile, secondSecret);
    const back = await waitFor(async () => {
      const h = await health(app);
      return h.body.status === 'ok' ? h : undefined;
    }, 'recovered with the new client secret', PATIENCE_MS);
    expect(back.body.revision).toBe(2);
  });
});

describe.concurrent('Infisical faults, once mode', () => {
  it('down at start: `once` retries until SIDECAR_ONCE_DEADLINE, then exits 75 naming the last error', async ({ onTestFinished, expect }) => {
    const port = await freePort();
    const started = Date.now();
    const env = glitchtipEnv(unreachable(port), scenario(onTestFinished).tempDir('once-'), { ...FAST, SIDECAR_ONCE_DEADLINE: '1s' });
    const result = await runCommand(['once'], env);
    const elapsed = Date.now() - started;
    expect(result.code).toBe(EXIT_CODES.deadline);
    const exiting = result.logs.lines().find((line) => line.msg === 'exiting')!;
    expect(exiting).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE' });
    expect(exiting.err).toMatch(/no complete sync within 1s; last error: SIDECAR_FETCH_UNAVAILABLE: .*ECONNREFUSED/);
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(1_000 + PATIENCE_MS);
    expect(logLines(result.logs, 'sync failed; last good files kept').length).toBeGreaterThanOrEqual(2);
  });

  // Regression test for the race fixed in 33b9980 (the deadline expiring while a request is in flight
  // used to surface as a non-retryable "cancelled" SIDECAR_FETCH_TIMEOUT, exit 69).
  it('a hanging server: `once` exits 75 at its deadline even when the deadline falls inside a request', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    fake.faults.add({ route: 'list', kind: 'hang' });
    const started = Date.now();
    const result = await runCommand(['once'], glitchtipEnv(fake, s.tempDir(), { ...FAST, SIDECAR_REQUEST_TIMEOUT: '5s', SIDECAR_ONCE_DEADLINE: '1s' }));
    expect(Date.now() - started).toBeLessThan(1_000 + PATIENCE_MS);
    expect(result.code).toBe(EXIT_CODES.deadline);
    const exiting = result.logs.lines().find((line) => line.msg === 'exiting')!;
    expect(exiting).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE' });
    // The message names the request that never answered.
    expect(exiting.err).toMatch(/last error: SIDECAR_FETCH_TIMEOUT: GET http:\/\/127\.0\.0\.1:\d+\/api\/v3\/secrets\/raw \(folder \/glitchtip\/\w+\): cancelled before an answer arrived/);
  });
});
