/**
 * Leak guard: canary values go through every path the sidecar has (success, rotation, failures,
 * config errors, `check`, every HTTP route), and nothing it prints or serves may contain one, in
 * plain, URL-encoded, JSON-escaped or base64 form. The check runs after the last test, over
 * everything this file's sidecars printed or served (helpers/canaries.ts).
 */
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { health, logLines } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(1_000);
const LIST = '/api/v3/secrets/raw';

async function seededFake() {
  const fake = await startFake();
  guard.seed(fake);
  return fake;
}

describe('no secret value leaks', () => {
  it('through run mode: sync, rotation, failures, and every HTTP route', async () => {
    const fake = await seededFake();
    const { log, logs } = testLogger('trace');
    const app = createApp(loadConfig(glitchtipEnv(fake, makeTempDir(), { ...FAST, SIDECAR_LOG_LEVEL: 'trace' })), log);
    await app.start();
    try {
      await waitFor(async () => (await health(app)).statusCode === 200, 'the first sync', 5_000);

      // A rotated value goes through the whole pipeline once more.
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated'));
      await waitFor(async () => (await health(app)).body.revision === 2, 'the rotation written as revision 2', 5_000);

      // A 5xx and a truncated body: two failed passes (their error messages are what could quote a
      // value), then a healthy one.
      fake.faults.add({ route: 'list', kind: 'status', status: 500, times: 1 });
      fake.faults.add({ route: 'list', kind: 'malformed', times: 1 });
      const faultsFrom = Date.now();
      await waitFor(() => fake.faults.list().length === 0, 'both faults served', 5_000);
      await waitFor(async () => {
        const report = (await health(app)).body;
        return report.status === 'ok' && Date.parse(report.lastSuccessAt!) > faultsFrom;
      }, 'a healthy pass after the faults', 5_000);
      const faulted = fake.requests.filter((r) => r.path === LIST && r.at >= faultsFrom);
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
  }, 20_000);

  it('through failures that name keys: missing required key, missing template key, auth refused', async () => {
    const fake = await seededFake();
    const env = glitchtipEnv(fake, makeTempDir());
    const results = await Promise.all([
      runCommand(['once'], { ...env, SIDECAR_REQUIRED_KEYS: 'NOT_THERE' }),
      runCommand(['once'], { ...env, SIDECAR_DERIVE_X: 'a{{ NOT_THERE | url }}b' }),
      runCommand(['once'], { ...env, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: guard.canary('wrong-client-secret', 'plain') }),
      runCommand(['check'], env),
      runCommand(['once'], env),
    ]);
    expect(results.map((r) => r.code)).toEqual([65, 65, 77, 0, 0]);
  });
});
