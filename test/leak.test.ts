/**
 * Leak guard: canary values go through every path the sidecar has (success, rotation, failures,
 * config errors, `check`, every HTTP route), and nothing it prints or serves may contain one, in
 * plain, URL-encoded, JSON-escaped or base64 form. The check runs after the last test, over
 * everything this file's sidecars printed or served (helpers/canaries.ts). The sidecars run on manual
 * clocks: each refresh is a pass the test asks for.
 */
import { describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import type { HealthReport } from '../src/health/state.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { health, logLines } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand, startFake, testLogger, type CapturedLogs } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(1_000);
const LIST = '/api/v3/secrets/raw';
/** The one line logOutcome leaves for every pass (with its `next`). */
const PASS_LINES = new Set(['secrets written', 'secrets unchanged', 'sync failed; last good files kept']);

async function seededFake() {
  const fake = await startFake();
  guard.seed(fake);
  return fake;
}

/** Passes the refresh loop has finished (and then gone to sleep: it schedules its next pass as it records one). */
const passes = (logs: CapturedLogs) => logs.lines().filter((line) => PASS_LINES.has(line.msg as string)).length;

/** Moves the clock to the next pass the loop has scheduled, and returns the health report once that pass is recorded. */
async function nextPass(app: App, clock: ManualClock, logs: CapturedLogs): Promise<HealthReport> {
  const before = passes(logs);
  const { nextRefreshAt } = (await health(app)).body;
  await clock.advance(Date.parse(nextRefreshAt!) - clock.now());
  await waitFor(() => passes(logs) > before, `pass ${before + 1}`);
  return (await health(app)).body;
}

describe('no secret value leaks', () => {
  it('through run mode: sync, rotation, failures, and every HTTP route', async () => {
    const fake = await seededFake();
    const { log, logs } = testLogger('trace');
    const clock = new ManualClock();
    const app = createApp(loadConfig(glitchtipEnv(fake, makeTempDir(), { ...FAST, SIDECAR_LOG_LEVEL: 'trace' })), log, { clock });
    await app.start();
    try {
      await waitFor(() => passes(logs) === 1, 'the first sync');
      expect((await health(app)).statusCode).toBe(200);

      // A rotated value goes through the whole pipeline once more.
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated'));
      expect((await nextPass(app, clock, logs)).revision, 'the rotation written as revision 2').toBe(2);

      // A 5xx and a truncated body: failed passes (their error messages are what could quote a
      // value), then a healthy one.
      fake.faults.add({ route: 'list', kind: 'status', status: 500, times: 1 });
      fake.faults.add({ route: 'list', kind: 'malformed', times: 1 });
      const faultsFrom = { request: fake.requests.length, at: clock.now() };
      let report = await nextPass(app, clock, logs);
      expect(report.status, 'the pass that met the faults failed').not.toBe('ok');
      for (let more = 0; more < 4 && (fake.faults.list().length > 0 || report.status !== 'ok'); more++) report = await nextPass(app, clock, logs);
      expect(fake.faults.list(), 'both faults served').toEqual([]);
      expect(report.status).toBe('ok');
      expect(Date.parse(report.lastSuccessAt!), 'a healthy pass after the faults').toBeGreaterThan(faultsFrom.at);
      const faulted = fake.requests.slice(faultsFrom.request).filter((r) => r.path === LIST);
      expect(faulted.some((r) => r.status === 500)).toBe(true);
      const failedCodes = logLines(logs, 'sync failed; last good files kept').map((line) => line.code);
      expect(failedCodes).toContain('SIDECAR_FETCH_UNAVAILABLE');

      const routes: [string, number][] = [['/healthz', 200], ['/readyz', 200], ['/livez', 200], ['/nope', 404], ['/healthz?x=q', 200]];
      for (const [url, status] of routes) {
        const response = await app.server.inject(url);
        guard.observe(response.body, JSON.stringify(response.headers));
        expect(response.statusCode, url).toBe(status);
      }
    } finally {
      await app.stop();
    }
  });

  it('through failures that name keys: missing required key, missing template key, auth refused', async () => {
    const fake = await seededFake();
    // Each on its own output directory (no lease to wait for) and a clock nobody moves: none of these outcomes waits for anything but I/O.
    const run = (argv: string[], extra: Record<string, string> = {}) => runCommand(argv, glitchtipEnv(fake, makeTempDir(), extra), undefined, new ManualClock());
    const results = await Promise.all([
      run(['once'], { SIDECAR_REQUIRED_KEYS: 'NOT_THERE' }),
      run(['once'], { SIDECAR_DERIVE_X: 'a{{ NOT_THERE | url }}b' }),
      run(['once'], { INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: guard.canary('wrong-client-secret', 'plain') }),
      run(['check']),
      run(['once']),
    ]);
    expect(results.map((r) => r.code)).toEqual([65, 65, 77, 0, 0]);
  });
});
