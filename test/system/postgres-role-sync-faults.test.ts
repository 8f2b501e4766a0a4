/**
 * Role sync under faults, through the real app, a real PostgreSQL and the fake Infisical: frozen backends, a
 * restart while PostgreSQL is down, a write that fails after the change, `once` on a volume with a set.
 * Real time: PostgreSQL's connections and role sync's step bounds (SIDECAR_POSTGRES_TIMEOUT, 1 s here) run on
 * the wall clock, so "never hangs" is a real-time bound here, kept ten times above what a step needs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leakGuard } from '../helpers/canaries.js';
import { proxy, keyFile, logsIn, newRole, roleSyncEnv, rotate, setByVerifier } from '../helpers/pg-faults.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { health, scenario } from '../helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/wait.js';
import { mountTmpfs, remount } from '../helpers/tmpfs.js';

const guard = leakGuard(1_000);
let pg: TestPostgres;
let n = 0;
const roleName = () => `atk_${++n}_${guard.tag}`;

beforeAll(async () => {
  pg = await startPostgres({ logStatements: true });
}, 60_000);
afterAll(async () => {
  guard.observe(await pg.logText());
  await pg.stop();
});

/** `p`, or 'HUNG' after `ms` of real time: a bound on a hang, ten times what the bounded steps need. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'HUNG'> {
  return Promise.race([p, new Promise<'HUNG'>((r) => setTimeout(() => r('HUNG'), ms))]);
}

describe('role sync under faults, through the app', () => {
  it('a backend that freezes after answering (docker pause, SIGSTOP) bounds every step: the pass ends, the rotation converges, stop() returns', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = rotate(fake, guard.canary('pg-before', 'plain'));
    const role = roleName();
    await newRole(pg, role, before);
    const door = await proxy(pg.port);
    const out = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1s', SIDECAR_MAX_STALENESS: '3s', ...roleSyncEnv(role, door.port) }));
    await app.start();
    await waitFor(async () => (await health(app)).body.revision === 1, 'first write');
    await waitFor(async () => (await health(app)).body.postgres?.state === 'in_step', 'in step');

    door.freezeOnTerminate = true;
    const after = rotate(fake, guard.canary('pg-after', 'plain'));
    app.trigger('test');
    // Every connection of the rotation freezes at its end; each step still ends within its bound.
    await waitFor(() => keyFile(out) === after && (door.frozen > 0), 'the rotated set published through frozen backends', 15_000);
    expect(logsIn(pg, role, after)).toBe(true);
    const stopped = await within(app.stop(), 10_000);
    expect(stopped, 'stop() must not wait forever on a frozen PostgreSQL').not.toBe('HUNG');
  }, 30_000);

  it('once keeps SIDECAR_ONCE_DEADLINE while a backend is frozen', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = rotate(fake, guard.canary('pg-before', 'plain'));
    const role = roleName();
    await newRole(pg, role, before);
    const door = await proxy(pg.port, { freezeOnTerminate: true });
    const out = s.tempDir();
    const result = await within(runCommand(['once'], glitchtipEnv(fake, out, { ...FAST, SIDECAR_ONCE_DEADLINE: '3s', ...roleSyncEnv(role, door.port) })), 30_000);
    expect(result).not.toBe('HUNG');
    if (result !== 'HUNG') expect([0, 75], 'a set written, or the deadline named').toContain(result.code);
  }, 30_000);

  it("once exits 76, the catalogue's code, for SIDECAR_POSTGRES_ROLE_REFUSED on a volume with a set", async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = rotate(fake, guard.canary('pg-before', 'plain'));
    const role = roleName();
    await newRole(pg, role, before);
    const out = s.tempDir();
    const env = glitchtipEnv(fake, out, { ...FAST, SIDECAR_ONCE_DEADLINE: '3s', ...roleSyncEnv(role, pg.port) });
    const first = await runCommand(['once'], env);
    expect(first.code).toBe(0);
    await setByVerifier(pg, role, guard.canary('pg-someone-else', 'plain'));
    rotate(fake, guard.canary('pg-new', 'plain'));
    const second = await runCommand(['once'], env);
    expect(second.logs.lines().map((l) => l.code)).toContain('SIDECAR_POSTGRES_ROLE_REFUSED');
    expect(keyFile(out)).toBe(before);
    expect(second.code, 'ROLE_REFUSED maps to exit "database" (76) in src/errors.ts').toBe(76);
  }, 30_000);

  it('once rotates with the password of the set on the volume (no cache needed)', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = rotate(fake, guard.canary('pg-before', 'plain'));
    const role = roleName();
    await newRole(pg, role, before);
    const out = s.tempDir();
    const env = glitchtipEnv(fake, out, { ...FAST, SIDECAR_ONCE_DEADLINE: '3s', ...roleSyncEnv(role, pg.port) });
    expect((await runCommand(['once'], env)).code).toBe(0);
    const after = rotate(fake, guard.canary('pg-new', 'plain'));
    const second = await runCommand(['once'], env);
    expect(second.code).toBe(0);
    expect(logsIn(pg, role, after)).toBe(true);
  }, 30_000);

  it('a sidecar restarted alone after a rotation made while it was down changes the role with the password on the volume', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = rotate(fake, guard.canary('pg-before', 'plain'));
    const role = roleName();
    await newRole(pg, role, before);
    const out = s.tempDir();
    const env = glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_BACKOFF_MAX: '300ms', ...roleSyncEnv(role, pg.port) });
    const first = s.app(env);
    await first.app.start();
    await waitFor(async () => (await health(first.app)).body.revision === 1, 'first write');
    await first.app.stop();
    const after = rotate(fake, guard.canary('pg-after', 'plain'));
    const second = s.app(env);
    await s.start(second.app);
    await waitFor(async () => (await health(second.app)).body.status === 'ok', 'the role changed and the set published');
    expect(keyFile(out)).toBe(after);
    expect(logsIn(pg, role, after)).toBe(true);
  }, 30_000);

  it('a restart while PostgreSQL is down and a rotation waits stays healthy (200 degraded) on the set on the volume: PostgreSQL, gated on it, can start', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = rotate(fake, guard.canary('pg-before', 'plain'));
    const role = roleName();
    await newRole(pg, role, before);
    const door = await proxy(pg.port);
    const out = s.tempDir();
    const cacheDir = s.tempDir('cache-');
    (await import('node:fs')).chmodSync(cacheDir, 0o700);
    const env = glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_BACKOFF_MAX: '300ms', SIDECAR_CACHE_DIR: cacheDir, ...roleSyncEnv(role, door.port) });
    const first = s.app(env);
    await first.app.start();
    await waitFor(async () => (await health(first.app)).body.revision === 1, 'first write');
    await first.app.stop();
    // PostgreSQL is stopped (maintenance / recreated by compose, waiting on the sidecar's health): nothing listens.
    const envDown = { ...env, ...roleSyncEnv(role, 1) }; // port 1: connection refused
    rotate(fake, guard.canary('pg-after', 'plain'));
    const second = s.app(envDown);
    await s.start(second.app);
    const h = await waitFor(async () => {
      const answer = await health(second.app);
      return answer.body.postgres?.lastResult === 'unreachable' ? answer : undefined;
    }, 'a role check that found PostgreSQL down');
    expect(h.statusCode, 'docs: "a hold keeps that set; the sidecar is healthy on it"').toBe(200);
    expect(keyFile(out)).toBe(before);
  }, 30_000);

  for (const fault of ['read-only volume', 'a 1 MB password on the production-sized 4m tmpfs: refused before any change'] as const) {
    it(`a write that fails after the role change (${fault}) sets the role back: the app is never locked out`, async ({ onTestFinished }) => {
      const s = scenario(onTestFinished);
      const fake = await s.fake();
      guard.seed(fake);
      const before = rotate(fake, guard.canary('pg-before', 'plain'));
      const role = roleName();
      await newRole(pg, role, before);
      const out = mountTmpfs(onTestFinished, 4096);
      const { app } = s.app(glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_BACKOFF_MAX: '300ms', ...roleSyncEnv(role, pg.port, { SIDECAR_POSTGRES_TIMEOUT: '10s' }) }));
      await s.start(app);
      await waitFor(async () => (await health(app)).body.revision === 1, 'first write');
      let after: string;
      if (fault === 'read-only volume') {
        remount(out, 'ro');
        onTestFinished(() => remount(out, 'rw'));
        after = rotate(fake, guard.canary('pg-after', 'plain'));
      } else {
        after = rotate(fake, 'big-' + 'x'.repeat(1024 * 1024));
      }
      app.trigger('test');
      // The pass that failed has set the role back (or never changed it) before it reported its error.
      await waitFor(async () => (await health(app)).body.lastError?.code, 'the failed pass');
      expect(keyFile(out), 'the volume keeps the old set').toBe(before);
      expect(logsIn(pg, role, before), 'app locked out: files say A, role has B').toBe(true);
      expect(logsIn(pg, role, after)).toBe(false);
    }, 30_000);
  }
});
