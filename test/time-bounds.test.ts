/**
 * Time at its edges: Node's timers hold at most 2^31−1 ms (about 24.8 days) and fire a longer one
 * after 1 ms. A server's `retry-after` is cut to SIDECAR_RETRY_AFTER_MAX, configured durations are
 * bounded (test/config.test.ts), and every timer takes its delay through `timerDelay`. The sidecar
 * and the fake run on a manual clock (test/helpers/clock.ts), so each wait is checked to the millisecond.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { EXIT_CODES } from '../src/errors.js';
import { MAX_TIMER_MS, timerDelay } from '../src/timers.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { health, scenario } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);
const LIST = '/api/v3/secrets/raw';
/** 3,000,000 s: about 34.7 days, past what a timer holds. */
const HUGE_RETRY_AFTER_SECONDS = 3_000_000;

/** Every TimeoutOverflowWarning the process emits during a test: there must be none. */
let overflowWarnings: string[] = [];
const onWarning = (warning: Error) => {
  if (warning.name === 'TimeoutOverflowWarning') overflowWarnings.push(warning.message);
};
beforeEach(() => {
  overflowWarnings = [];
  process.on('warning', onWarning);
});
afterEach(() => {
  process.off('warning', onWarning);
});

describe('timerDelay', () => {
  it('keeps a delay within what a Node timer holds', () => {
    expect([timerDelay(0), timerDelay(1.2), timerDelay(MAX_TIMER_MS), timerDelay(MAX_TIMER_MS + 1), timerDelay(3_000_000_000), timerDelay(-5), timerDelay(Number.NaN)]).toEqual([
      0,
      2,
      MAX_TIMER_MS,
      MAX_TIMER_MS,
      MAX_TIMER_MS,
      0,
      0,
    ]);
  });
});

describe('a 429 with a retry-after of 34 days', () => {
  it('once: sends a bounded number of requests and ends exactly at its deadline', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    guard.seed(fake);
    fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: HUGE_RETRY_AFTER_SECONDS });
    let finished = false;
    const running = runCommand(['once'], glitchtipEnv(fake, makeTempDir(), { SIDECAR_ONCE_DEADLINE: '2s' }), undefined, clock).finally(() => (finished = true));

    // One pass lists the two folders; the retry-after, cut to SIDECAR_RETRY_AFTER_MAX (1 h), outlasts the deadline.
    await clock.whenPending((dueIn) => dueIn === 3_600_000);
    await clock.advance(1_999);
    expect(finished, 'still waiting 1 ms before the deadline').toBe(false);
    await clock.advance(1);
    const { code } = await running;
    expect(code).toBe(EXIT_CODES.deadline);
    expect(fake.requests.filter((r) => r.path === LIST).length).toBeLessThanOrEqual(2);
    expect(clock.scheduled.every((delay) => delay <= 3_600_000)).toBe(true);
    expect(overflowWarnings).toEqual([]);
  });

  it('run: waits SIDECAR_RETRY_AFTER_MAX, not 34 days, even when triggered meanwhile; the staleness bound still turns /healthz 503', async () => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    guard.seed(fake);
    const dir = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1s', SIDECAR_MAX_STALENESS: '2s', SIDECAR_RETRY_AFTER_MAX: '3s' }), {}, { clock });
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const syncedAt = Date.parse((await health(app)).body.lastSuccessAt!);

    fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'rateLimit', retryAfterSeconds: HUGE_RETRY_AFTER_SECONDS, times: 1 });
    const rotated = guard.canary('rotated', 'plain');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    await clock.advance(1_000); // the next refresh meets the 429
    const limited = await waitFor(async () => {
      const h = await health(app);
      return h.body.lastError?.code === 'SIDECAR_FETCH_RATE_LIMITED' ? h : undefined;
    }, 'a 429');
    const limitedAt = Math.max(...fake.requests.filter((r) => r.status === 429).map((r) => r.at));
    expect(limitedAt).toBe(syncedAt + 1_000);
    // The next attempt is due after the 3 s cap: not in 34 days, nor after 1 ms.
    expect(Date.parse(limited.body.nextRefreshAt!) - limitedAt).toBe(3_000);
    const requestsBefore = fake.requests.length;
    for (let i = 0; i < 5; i++) app.trigger('webhook during retry-after');

    // Stale once the last success is SIDECAR_MAX_STALENESS (2 s) old, before the cap (3 s) ends.
    await clock.advance(syncedAt + 1_999 - clock.now());
    expect((await health(app)).body.status).toBe('degraded');
    await clock.advance(1);
    const stale = await health(app);
    expect(stale.body.status).toBe('stale');
    expect(stale.statusCode).toBe(503);
    expect(fake.requests, 'no pass during the retry-after, triggered or not').toHaveLength(requestsBefore);

    await clock.advance(limitedAt + 2_999 - clock.now());
    expect(fake.requests, 'none 1 ms before the cap ends either').toHaveLength(requestsBefore);
    await clock.advance(1);
    await waitFor(() => readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8') === rotated, 'the rotated secret after the cap');
    // The same pass listed the other folder too; the application folder is listed once per pass.
    const after = fake.requests.filter((r) => r.path === LIST && r.query.secretPath === DEMO_APPLICATION_PATH && r.at > limitedAt);
    expect(Math.min(...after.map((r) => r.at)) - limitedAt).toBe(3_000);
    expect(overflowWarnings).toEqual([]);
  });
});
