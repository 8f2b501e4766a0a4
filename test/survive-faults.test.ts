/**
 * Infisical misbehaving, against the real sidecar (config → client → sync → writer → health) in run
 * and once mode, over real HTTP to the fake server. Every scenario checks the same promises: the last
 * good files stay byte-identical while a pass fails, /healthz says why, every retry comes exactly when
 * the backoff says with exactly one request per folder, and it recovers on its own. Time is a manual
 * clock per scenario (the sidecar's and the fake's): a pass runs when the test moves the clock to it.
 * The leak check after the last test covers everything the sidecars logged and served.
 */
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, vi } from 'vitest';
import type { SidecarError } from '../src/errors.js';
import { EXIT_CODES } from '../src/errors.js';
import type { RetryPolicy } from '../src/sync/retry.js';
import type { FakeInfisical, RequestLogEntry } from './fake-infisical/server.js';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { nextPass, passAfter } from './helpers/passes.js';
import { freePort, health, logLines, outputFiles, scenario } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand } from './helpers/sidecar.js';
import { waitFor } from './helpers/wait.js';

/**
 * Every delay of this file's sidecars takes the same jitter draw, 0.25: 10 % under the cap, so each
 * backoff is exact and visibly jittered (FAST's 200 ms cap → 180 ms). The jitter's range for every
 * draw is test/retry.test.ts's.
 */
const JITTER_DRAW = vi.hoisted(() => 0.25);
vi.mock('../src/sync/retry.js', async (importOriginal) => {
  const retry = await importOriginal<typeof import('../src/sync/retry.js')>();
  const draw = () => JITTER_DRAW;
  return {
    ...retry,
    nextRefreshDelay: (policy: RetryPolicy) => retry.nextRefreshDelay(policy, draw),
    backoffDelay: (failures: number, policy: RetryPolicy) => retry.backoffDelay(failures, policy, draw),
    delayAfterFailure: (error: SidecarError, failures: number, policy: RetryPolicy) => retry.delayAfterFailure(error, failures, policy, draw),
  };
});

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(50_000);
const LOGIN = '/api/v1/auth/universal-auth/login';
const LIST = '/api/v3/secrets/raw';
/** FAST's 200 ms backoff cap with the jitter draw above. */
const BACKOFF_MS = 180;

const isLogin = (r: { path: string }) => r.path === LOGIN;
const isList = (r: { path: string }) => r.path === LIST;
/** Stands in for a fake that is not running: only its URL is used. */
const unreachable = (port: number) => ({ url: `http://127.0.0.1:${port}` }) as FakeInfisical;
const secretKeyFile = (dir: string) => readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8');
const at = (iso: string | null) => Date.parse(iso!);

/** The list requests, grouped by the clock time they arrived at (one group per pass). */
function listsByTime(requests: readonly RequestLogEntry[], from = Number.NEGATIVE_INFINITY): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (const r of requests.filter((r) => isList(r) && r.at >= from)) groups.set(r.at, [...(groups.get(r.at) ?? []), r.status]);
  return new Map([...groups].map(([time, statuses]) => [time, statuses.sort((a, b) => a - b)]));
}

describe('Infisical faults, run mode', () => {
  it('down at start: retries on the capped backoff, /healthz 503 names the reason, recovers at the first retry after it comes up', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const port = await freePort();
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(unreachable(port), dir, FAST), {}, { clock });
    const start = clock.now();
    await s.start(app);

    // Five passes, each refused at the login, each followed by exactly one capped backoff.
    let report = await passAfter(clock, app, null);
    for (let pass = 2; pass <= 5; pass++) report = await nextPass(clock, app);
    const failing = await health(app);
    expect(failing.statusCode).toBe(503);
    expect(failing.body).toMatchObject({ status: 'failing', ready: false, lastSuccessAt: null, consecutiveFailures: 5, lastError: { code: 'SIDECAR_FETCH_UNAVAILABLE' } });
    expect(failing.body.lastError?.message).toBe(`POST http://127.0.0.1:${port}${LOGIN}: request failed (ECONNREFUSED)`);
    expect(failing.body.lastError?.hint).toMatch(/INFISICAL_SITE_URL/);
    const failed = logLines(logs, 'sync failed; last good files kept');
    expect(failed.map((line) => at(line.next as string) - start)).toEqual([180, 360, 540, 720, 900]);
    expect(report.nextRefreshAt).toBe(new Date(start + 5 * BACKOFF_MS).toISOString());

    // Infisical comes up on that port between two retries: the next retry, due 180 ms after the last
    // failure, is its first request, and that very pass succeeds.
    const fake = await s.fake({ port, clock });
    guard.seed(fake);
    const healthy = await nextPass(clock, app);
    expect(fake.requests.map((r) => [r.path, r.at - start])).toEqual([
      [LOGIN, 900],
      [LIST, 900],
      [LIST, 900],
    ]);
    expect(logLines(logs, 'sync failed; last good files kept')).toHaveLength(5);
    expect(healthy).toMatchObject({ status: 'ok', ready: true, revision: 1, consecutiveFailures: 0, lastError: null });
    expect((await health(app)).statusCode).toBe(200);
    expect(Object.keys(outputFiles(dir)).sort()).toEqual(expect.arrayContaining(['secrets.env', 'secrets.json', 'keys/SECRET_KEY']));
  });

  it('long outage mid-run: files byte-identical throughout, healthy until the staleness bound and stale at it, retried once per backoff, back at the next pass', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    // Default backoff cap (5m) → capped by the 1 s interval: the outage is retried once per interval, less the jitter (900 ms).
    const { app, logs, config } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_BACKOFF_MAX: '5m' }), {}, { clock });
    await s.start(app);
    const first = await passAfter(clock, app, null);
    expect(first.status).toBe('ok');
    const t0 = at(first.lastSuccessAt);
    const baseline = outputFiles(dir);

    fake.faults.add({ kind: 'reset' });
    const rotated = guard.canary('outage');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    const bound = t0 + config.maxStalenessMs;
    const seen: { time: number; code: number; status: string }[] = [];
    const look = async () => {
      const h = await health(app);
      seen.push({ time: clock.now() - t0, code: h.statusCode, status: h.body.status });
      expect(outputFiles(dir)).toEqual(baseline);
    };
    // Passes at 1000 ms (the interval), then one per 900 ms backoff; /healthz is read after each
    // pass and on both sides of the bound, which falls while the loop sleeps from 1900 to 2800.
    while (clock.now() < t0 + 3_700) {
      const due = at(app.health.report().nextRefreshAt);
      if (clock.now() < bound && bound < due) {
        await clock.advance(bound - 1 - clock.now());
        await look();
        await clock.advance(1);
        await look();
      }
      const report = await nextPass(clock, app);
      expect(report.lastError?.code, report.lastError?.message).toBe('SIDECAR_FETCH_UNAVAILABLE');
      await look();
    }
    expect(seen).toEqual([
      { time: 1_000, code: 200, status: 'degraded' },
      { time: 1_900, code: 200, status: 'degraded' },
      { time: 1_999, code: 200, status: 'degraded' },
      { time: 2_000, code: 503, status: 'stale' },
      { time: 2_800, code: 503, status: 'stale' },
      { time: 3_700, code: 503, status: 'stale' },
    ]);
    const stale = await health(app);
    guard.observe((await app.server.inject('/metrics')).body);
    expect(stale.body).toMatchObject({ status: 'stale', healthy: false, ready: true, consecutiveFailures: 4 });
    // One request per folder per pass, each pass exactly one backoff after the last: no tight loop.
    expect([...listsByTime(fake.requests, t0 + 1)].map(([time, statuses]) => [time - t0, statuses])).toEqual([
      [1_000, [0, 0]],
      [1_900, [0, 0]],
      [2_800, [0, 0]],
      [3_700, [0, 0]],
    ]);

    // Infisical returns while the loop sleeps: its next pass, 900 ms later, succeeds.
    fake.faults.clear();
    const back = await nextPass(clock, app);
    expect(back).toMatchObject({ status: 'ok', revision: 2, lastError: null });
    expect(at(back.lastSuccessAt) - t0).toBe(4_600);
    expect(logLines(logs, 'sync failed; last good files kept')).toHaveLength(4);
    expect(secretKeyFile(dir)).toBe(rotated);
  });

  it('flapping: every pass is exactly as the flap schedule says, one request per folder each, sets whole and one version, converging on the last value', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    // A 200 ms interval (below the config's 1 s minimum, set on the Config directly) and a 100 ms
    // backoff cap (90 ms with the jitter draw), so that many passes meet the flapping server.
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST), { refreshIntervalMs: 200, backoffMaxMs: 100 }, { clock });
    await s.start(app);
    const first = await passAfter(clock, app, null);
    expect(first.status).toBe('ok');
    const t0 = clock.now();
    const values = [secretKeyFile(dir)];

    // On the clock, from t0: down 120 ms, up 250 ms, from 105 ms on; every other down phase resets
    // only the application folder's list (the database folder answers: a half-done pass). A new
    // value every 400 ms from 355 ms on. No flap or rotation falls on a pass time (those end in 0).
    for (let phase = 0; 105 + phase * 370 < 3_000; phase++) {
      const down = 105 + phase * 370;
      clock.schedule(down, () => fake.faults.add(phase % 2 === 0 ? { route: 'list', kind: 'reset' } : { route: 'list', path: DEMO_APPLICATION_PATH, kind: 'reset' }));
      clock.schedule(down + 120, () => fake.faults.clear());
    }
    for (let rotation = 355; rotation < 3_000; rotation += 400) {
      clock.schedule(rotation, () => {
        const value = guard.canary('flap', 'plain');
        values.push(value);
        fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', value);
      });
    }

    // Resolve ..data once, then read the set from that version (the documented way to read a set).
    let samples = 0;
    const sample = () => {
      const version = path.join(dir, readlinkSync(path.join(dir, '..data')));
      const fromFile = readFileSync(path.join(version, 'keys', 'SECRET_KEY'), 'utf8');
      const fromJson = (JSON.parse(readFileSync(path.join(version, 'secrets.json'), 'utf8')) as Record<string, string>).SECRET_KEY;
      const fromEnv = /^SECRET_KEY='([^']*)'$/m.exec(readFileSync(path.join(version, 'secrets.env'), 'utf8'))?.[1];
      expect(fromJson).toBe(fromFile);
      expect(fromEnv).toBe(fromFile);
      expect(values).toContain(fromFile);
      samples++;
      return fromFile;
    };
    const passes: string[] = [];
    let report = first;
    while (at(report.nextRefreshAt) < t0 + 3_000) {
      const { revision, lastAttemptAt } = report;
      await clock.advance(at(report.nextRefreshAt) - clock.now());
      sample(); // while the pass may be writing
      report = await passAfter(clock, app, lastAttemptAt);
      const current = sample();
      const result = report.consecutiveFailures > 0 ? 'failed' : report.revision > revision ? 'written' : 'unchanged';
      if (result === 'written') expect(current).toBe(values.at(-1));
      passes.push(`${clock.now() - t0} ${result} +${at(report.nextRefreshAt) - clock.now()}`);
    }
    expect(passes).toEqual([
      '200 failed +90',
      '290 unchanged +200',
      '490 failed +90',
      '580 failed +90',
      '670 written +200',
      '870 failed +90',
      '960 failed +90',
      '1050 written +200',
      '1250 failed +90',
      '1340 written +200',
      '1540 unchanged +200',
      '1740 written +200',
      '1940 unchanged +200',
      '2140 written +200',
      '2340 failed +90',
      '2430 failed +90',
      '2520 written +200',
      '2720 failed +90',
      '2810 failed +90',
      '2900 written +200',
    ]);
    // Exactly one request per folder per pass: both reset, the application's reset, or both answered.
    const expectedStatuses: Record<string, number[]> = { 200: [0, 0], 490: [0, 200], 580: [0, 200], 870: [0, 0], 960: [0, 0], 1250: [0, 200], 2340: [0, 0], 2430: [0, 0], 2720: [0, 200], 2810: [0, 200] };
    expect([...listsByTime(fake.requests, t0 + 1)].map(([time, statuses]) => [time - t0, statuses])).toEqual(
      passes.map((pass) => Number(pass.split(' ')[0])).map((time) => [time, expectedStatuses[time] ?? [200, 200]]),
    );

    // The flapping ends: the next pass writes the last value.
    fake.faults.clear();
    const last = guard.canary('flap-final', 'plain');
    values.push(last);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', last);
    expect(await nextPass(clock, app)).toMatchObject({ status: 'ok', revision: 9 });
    expect(secretKeyFile(dir)).toBe(last);
    expect(sample()).toBe(last);
    // Files are rewritten only when the content changed: one revision per written set.
    expect(logLines(logs, 'secrets written')).toHaveLength(9);
    expect(samples).toBe(2 * passes.length + 1);
  });

  it('a hanging folder: each pass gives up at the request timeout with one request per folder, files kept', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_MAX_STALENESS: '30s', SIDECAR_REQUEST_TIMEOUT: '300ms' }), {}, { clock });
    await s.start(app);
    const first = await passAfter(clock, app, null);
    expect(first.status).toBe('ok');
    const t0 = clock.now();
    const baseline = outputFiles(dir);
    const requestsBefore = app.client.stats.requests; // the login and two lists

    fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'hang' });
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', guard.canary('hang'));
    const hungAt = (requests: readonly RequestLogEntry[]) => requests.filter((r) => isList(r) && r.query.secretPath === DEMO_APPLICATION_PATH).slice(1).map((r) => r.at - t0);
    for (let pass = 1; pass <= 3; pass++) {
      const { lastAttemptAt, nextRefreshAt } = app.health.report();
      await clock.advance(at(nextRefreshAt) - clock.now());
      // The application folder's request hangs and the database folder's call has its answer: only
      // the request timeout is left to end the pass.
      await fake.whenRequests((requests) => hungAt(requests).length === pass);
      await waitFor(() => app.client.stats.requests === requestsBefore + 2 * pass - 1, "the database folder's answer");
      await clock.advance(300);
      await passAfter(clock, app, lastAttemptAt);
    }
    // 1000 ms (interval) + 300 ms timeout + 180 ms backoff, and so on.
    expect(hungAt(fake.requests)).toEqual([1_000, 1_480, 1_960]);
    const failed = await health(app);
    expect(failed.statusCode).toBe(200); // still within SIDECAR_MAX_STALENESS: degraded, not down
    expect(failed.body).toMatchObject({ status: 'degraded', consecutiveFailures: 3, lastError: { code: 'SIDECAR_FETCH_TIMEOUT' } });
    const hung = failed.body.folders.find((f) => f.path === DEMO_APPLICATION_PATH)?.lastError;
    expect(hung?.code).toBe('SIDECAR_FETCH_TIMEOUT');
    expect(hung?.message).toBe(`GET ${fake.url}${LIST} (folder ${DEMO_APPLICATION_PATH}): no answer within 300 ms`);
    expect(outputFiles(dir)).toEqual(baseline);

    await app.stop(); // between passes: none is in flight
    // The SDK's own retries (up to 4 more, for ~15 s) never reach the network: one request per folder per pass.
    expect([...listsByTime(fake.requests, t0 + 1)].map(([time, statuses]) => [time - t0, statuses])).toEqual([
      [1_000, [0, 200]],
      [1_480, [0, 200]],
      [1_960, [0, 200]],
    ]);
  });

  it('5xx storm (500/502/503/504, JSON and HTML bodies): one request per folder per pass, files kept, then recovery', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, dir, FAST), {}, { clock });
    await s.start(app);
    expect((await passAfter(clock, app, null)).status).toBe('ok');
    const t0 = clock.now();
    const baseline = outputFiles(dir);

    const storm = [500, 502, 503, 504].flatMap((status) => [
      { route: 'list' as const, kind: 'status' as const, status, times: 1 },
      { route: 'list' as const, kind: 'status' as const, status, times: 1, body: `<html><body><h1>${status} from the proxy</h1></body></html>` },
    ]);
    for (let round = 0; round < 2; round++) for (const rule of storm) fake.faults.add({ ...rule });
    const rotated = guard.canary('storm');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    // Each pass's two list requests take the next two answers of the storm: eight failed passes.
    const statuses: number[] = [];
    for (let pass = 1; pass <= 8; pass++) {
      await nextPass(clock, app);
      const h = await health(app);
      expect(h.body.lastError?.code).toBe('SIDECAR_FETCH_UNAVAILABLE');
      statuses.push(Number(/: (\d{3})/.exec(h.body.lastError!.message)?.[1]));
      expect(outputFiles(dir)).toEqual(baseline);
    }
    expect(statuses).toEqual([500, 502, 503, 504, 500, 502, 503, 504]);
    expect(fake.faults.list()).toEqual([]);
    guard.observe((await app.server.inject('/metrics')).body);
    expect(await nextPass(clock, app)).toMatchObject({ status: 'ok', revision: 2 });
    expect(secretKeyFile(dir)).toBe(rotated);

    await app.stop();
    // 5xx is not retried inside a pass (neither by the SDK nor by us): one request per folder per pass, one backoff apart.
    expect([...listsByTime(fake.requests, t0 + 1).keys()].map((time) => time - t0)).toEqual([1_000, 1_180, 1_360, 1_540, 1_720, 1_900, 2_080, 2_260, 2_440]);
    expect([...listsByTime(fake.requests, t0 + 1).values()].every((pass) => pass.length === 2)).toBe(true);
  });

  it('429 with retry-after: no request before it expires, not even when triggered', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, dir, FAST), {}, { clock });
    await s.start(app);
    expect((await passAfter(clock, app, null)).status).toBe('ok');

    fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 2, times: 2 });
    const rotated = guard.canary('ratelimit');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    const limited = await nextPass(clock, app);
    expect(limited.lastError?.code).toBe('SIDECAR_FETCH_RATE_LIMITED');
    const limitedAt = clock.now();
    expect(fake.requests.filter((r) => r.status === 429).map((r) => r.at)).toEqual([limitedAt, limitedAt]);
    expect(at(limited.nextRefreshAt)).toBe(limitedAt + 2_000);

    // A webhook storm: the loop still sleeps until the retry-after is over, and asks nothing before.
    for (let i = 0; i < 5; i++) app.trigger('webhook storm');
    await clock.advance(1_999);
    expect(clock.pending()).toContain(1);
    expect(app.health.report().lastAttemptAt).toBe(limited.lastAttemptAt);
    expect(fake.requests.filter((r) => r.at > limitedAt)).toEqual([]);
    await clock.advance(1);
    const recovered = await passAfter(clock, app, limited.lastAttemptAt);
    expect(recovered).toMatchObject({ status: 'ok', revision: 2 });
    expect(secretKeyFile(dir)).toBe(rotated);
    expect(fake.requests.filter((r) => r.at > limitedAt).map((r) => [r.path, r.at - limitedAt, r.status])).toEqual([
      [LIST, 2_000, 200],
      [LIST, 2_000, 200],
    ]);
    expect(app.client.stats.rateLimited).toBe(2);
  });

  for (const form of ['401', '403'] as const) {
    it(`token expired mid-run (${form} form): exactly one re-login, then no more`, async ({ onTestFinished, expect }) => {
      const s = scenario(onTestFinished);
      const clock = new ManualClock();
      const fake = await s.fake({ expiredTokenForm: form, clock });
      guard.seed(fake);
      const dir = s.tempDir();
      const { app } = s.app(glitchtipEnv(fake, dir, FAST), {}, { clock });
      await s.start(app);
      expect((await passAfter(clock, app, null)).status).toBe('ok');
      const t0 = clock.now();

      fake.expireTokens(form);
      const rotated = guard.canary(`expired-${form}`);
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
      expect(await nextPass(clock, app)).toMatchObject({ status: 'ok', revision: 2, lastError: null });
      expect(secretKeyFile(dir)).toBe(rotated);
      expect(await nextPass(clock, app)).toMatchObject({ status: 'ok', revision: 2, lastError: null });
      // The refused lists, one shared login, the lists again; then the next pass with the new token.
      const since = fake.requests.filter((r) => r.at > t0);
      expect(since.filter(isLogin).map((r) => [r.at - t0, r.status])).toEqual([[1_000, 200]]);
      expect(since.filter(isList).map((r) => [r.at - t0, r.status]).sort()).toEqual([
        [1_000, 200],
        [1_000, 200],
        [1_000, Number(form)],
        [1_000, Number(form)],
        [2_000, 200],
        [2_000, 200],
      ]);
      expect(fake.requests.filter(isLogin)).toHaveLength(2);
      expect(app.client.stats.relogins).toBe(1);
      expect((await health(app)).body).toMatchObject({ status: 'ok', lastError: null });
    });
  }

  it('access denied after a fresh login: one re-login per pass (no loop), AUTH_FORBIDDEN, files kept', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST), {}, { clock });
    await s.start(app);
    expect((await passAfter(clock, app, null)).status).toBe('ok');
    const t0 = clock.now();
    const baseline = outputFiles(dir);

    fake.faults.add({ route: 'list', kind: 'status', status: 403, body: { reqId: 'req-aaaaaaaaaaaaaa', statusCode: 403, message: 'You are not allowed to read secrets', error: 'PermissionDenied' } });
    for (let pass = 1; pass <= 4; pass++) await nextPass(clock, app);
    const denied = await health(app);
    expect(denied.body).toMatchObject({ consecutiveFailures: 4, lastError: { code: 'SIDECAR_AUTH_FORBIDDEN' } });
    expect(denied.body.lastError?.message).toMatch(/403 You are not allowed to read secrets \(again after a fresh login\)/);
    expect(outputFiles(dir)).toEqual(baseline);
    await app.stop();

    expect(logLines(logs, 'sync failed; last good files kept')).toHaveLength(4);
    // Each pass: one list per folder, refused; one login, shared by both folders; one list per folder again, refused.
    const passTimes = [1_000, 1_180, 1_360, 1_540];
    expect(fake.requests.filter((r) => isLogin(r) && r.at > t0).map((r) => r.at - t0)).toEqual(passTimes);
    expect([...listsByTime(fake.requests, t0 + 1)].map(([time, statuses]) => [time - t0, statuses])).toEqual(passTimes.map((time) => [time, [403, 403, 403, 403]]));
  });

  it('one folder failing while the other succeeds: nothing written; both changes land together in one revision', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, dir, FAST), {}, { clock });
    await s.start(app);
    const first = await passAfter(clock, app, null);
    expect(first.status).toBe('ok');
    const baseline = outputFiles(dir);

    fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'status', status: 500 });
    const pg = guard.canary('one-folder-pg');
    const sk = guard.canary('one-folder-sk');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', pg);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', sk);
    for (let pass = 1; pass <= 3; pass++) await nextPass(clock, app);
    const failing = await health(app);
    expect(failing.body.consecutiveFailures).toBe(3);
    expect(outputFiles(dir)).toEqual(baseline);
    const [database, application] = failing.body.folders;
    expect(database).toMatchObject({ path: DEMO_DATABASE_PATH, lastError: null, lastSuccessAt: first.folders[0]!.lastSuccessAt });
    expect(application).toMatchObject({ path: DEMO_APPLICATION_PATH, lastError: { code: 'SIDECAR_FETCH_UNAVAILABLE' } });
    expect(failing.body.revision).toBe(1);

    fake.faults.clear();
    const recovered = await nextPass(clock, app);
    expect(recovered).toMatchObject({ status: 'ok', revision: 2, changedKeys: ['DATABASE_URL', 'POSTGRES_PASSWORD', 'SECRET_KEY'] });
    expect(readFileSync(path.join(dir, 'keys', 'POSTGRES_PASSWORD'), 'utf8')).toBe(pg);
    expect(secretKeyFile(dir)).toBe(sk);
  });

  it('credentials revoked: clear error, last good files kept, `once` exits 74 on the held volume and 77 on its own, recovers with a new client secret file', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
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
    const { app, config } = s.app(env, {}, { clock });
    await s.start(app);
    expect((await passAfter(clock, app, null)).status).toBe('ok');
    const t0 = clock.now();
    const baseline = outputFiles(dir);

    fake.revokeIdentity(clientId);
    fake.expireTokens();
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('after-revoke'));
    // Passes until the files are older than SIDECAR_MAX_STALENESS: at 1000 ms, then one per backoff.
    let report = app.health.report();
    const passTimes: number[] = [];
    while (report.status !== 'stale') {
      report = await nextPass(clock, app);
      passTimes.push(clock.now() - t0);
    }
    expect(passTimes).toEqual([1_000, 1_180, 1_360, 1_540, 1_720, 1_900, 2_080]);
    expect(clock.now() - t0).toBeGreaterThan(config.maxStalenessMs);
    const stale = await health(app);
    guard.observe((await app.server.inject('/metrics')).body);
    expect(stale.statusCode).toBe(503);
    expect(stale.body.lastError).toMatchObject({ code: 'SIDECAR_AUTH_INVALID_CREDENTIALS' });
    expect(stale.body.lastError?.message).toMatch(new RegExp(`^POST http://127\\.0\\.0\\.1:\\d+${LOGIN}: 401 Invalid credentials`));
    expect(stale.body.lastError?.hint).toMatch(/client secret/);
    expect(outputFiles(dir)).toEqual(baseline);
    // One refused login; the passes after it hold further logins back, so the identity is not locked out.
    expect(fake.requests.filter((r) => isLogin(r) && r.at > t0).map((r) => [r.at - t0, r.status])).toEqual([[1_000, 401]]);

    // An init container (`once`) against the same volume waits for the running sidecar's lease and
    // gives up at its deadline (exit 74), files untouched; against its own volume it exits 77 at once.
    // Each runs on its own clock, set to this one's time (the lease's times are on it).
    const initClock = new ManualClock(clock.now());
    const sameVolume = await runOnClock(initClock, runCommand(['once'], env, undefined, initClock));
    expect(sameVolume.code).toBe(EXIT_CODES.lease);
    expect(sameVolume.logs.text()).toMatch(/"code":"SIDECAR_OUTPUT_LEASE_HELD"/);
    expect(initClock.now() - clock.now()).toBe(config.onceDeadlineMs);
    expect(outputFiles(dir)).toEqual(baseline);
    const once = await runCommand(['once'], { ...env, SIDECAR_OUTPUT_DIR: s.tempDir('init-') }, undefined, new ManualClock(clock.now()));
    expect(once.code).toBe(EXIT_CODES.auth);
    expect(once.logs.text()).toMatch(/"code":"SIDECAR_AUTH_INVALID_CREDENTIALS"/);

    // The operator issues a new client secret and updates the mounted file: picked up without a
    // restart, at the first pass after the watcher reports the change (its debounce is on the clock).
    const secondSecret = guard.canary('client-secret-2', 'plain');
    fake.addIdentity(clientId, secondSecret);
    writeFileSync(secretFile, secondSecret);
    await clock.whenPending((dueIn) => dueIn === 200);
    for (let pass = 0; pass < 3 && report.status !== 'ok'; pass++) report = await nextPass(clock, app);
    expect(report).toMatchObject({ status: 'ok', revision: 2 });
    expect(app.client.stats.logins).toBe(3);
  });
});

/**
 * Runs `command` on `clock`: whenever it waits on a timer alone (a lease poll, a backoff), moves the
 * clock to that timer. Only for commands that never wait on I/O and a timer at once.
 */
async function runOnClock<T>(clock: ManualClock, command: Promise<T>): Promise<T> {
  let done = false;
  void command.finally(() => (done = true));
  for (;;) {
    await Promise.race([command, clock.whenPending()]);
    if (done) return command;
    await clock.advance(clock.pending()[0]!);
  }
}

describe('Infisical faults, once mode', () => {
  it('down at start: `once` retries on the backoff until SIDECAR_ONCE_DEADLINE, then exits 75 naming the deadline and the last error', async ({ onTestFinished, expect }) => {
    const port = await freePort();
    const clock = new ManualClock();
    const start = clock.now();
    const env = glitchtipEnv(unreachable(port), scenario(onTestFinished).tempDir('once-'), { ...FAST, SIDECAR_ONCE_DEADLINE: '1s' });
    const running = runCommand(['once'], env, undefined, clock);
    // A pass every 180 ms: at 0, 180, …, 900; the sixth backoff is cut by the deadline at 1000.
    for (let backoff = 1; backoff <= 6; backoff++) {
      await clock.whenPending(() => clock.scheduled.filter((delay) => delay === BACKOFF_MS).length >= backoff);
      await clock.advance(Math.min(BACKOFF_MS, start + 1_000 - clock.now()));
    }
    const result = await running;
    expect(clock.now() - start).toBe(1_000);
    expect(result.code).toBe(EXIT_CODES.deadline);
    const exiting = result.logs.lines().find((line) => line.msg === 'exiting')!;
    expect(exiting).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE' });
    expect(exiting.err).toBe(`no complete sync within 1s; last error: SIDECAR_FETCH_UNAVAILABLE: POST http://127.0.0.1:${port}${LOGIN}: request failed (ECONNREFUSED)`);
    expect(logLines(result.logs, 'sync failed; last good files kept')).toHaveLength(6);
  });

  it('a hanging server: `once` exits 75 at its deadline even when the deadline falls inside a request', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    fake.faults.add({ route: 'list', kind: 'hang' });
    const start = clock.now();
    const running = runCommand(['once'], glitchtipEnv(fake, s.tempDir(), { ...FAST, SIDECAR_REQUEST_TIMEOUT: '5s', SIDECAR_ONCE_DEADLINE: '1s' }), undefined, clock);
    // Both list requests hang; the deadline falls 1 s in, long before their 5 s timeout.
    await fake.whenRequests((requests) => requests.filter(isList).length === 2);
    await clock.advance(1_000);
    const result = await running;
    expect(clock.now() - start).toBe(1_000);
    expect(result.code).toBe(EXIT_CODES.deadline);
    const exiting = result.logs.lines().find((line) => line.msg === 'exiting')!;
    expect(exiting).toMatchObject({ code: 'SIDECAR_ONCE_DEADLINE' });
    // The message names the deadline as configured and the request that never answered.
    expect(exiting.err).toBe(`no complete sync within 1s; last error: SIDECAR_FETCH_TIMEOUT: GET ${fake.url}${LIST} (folder ${DEMO_DATABASE_PATH}): cancelled before an answer arrived (deadline or shutdown)`);
    expect(fake.requests.filter(isList)).toHaveLength(2);
  });
});
