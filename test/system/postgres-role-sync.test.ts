/**
 * PostgreSQL role sync against a real PostgreSQL and the fake Infisical: a rotated
 * POSTGRES_PASSWORD becomes the role's password before the files change; a role changed by hand is
 * found in place; a role that refuses both passwords keeps the old set and says so; a PostgreSQL that
 * does not answer holds the set (or publishes with SIDECAR_POSTGRES_UNREACHABLE=publish); a reboot
 * after a rotation made while the stack was down comes up from the cache, or names the manual fix.
 * No password reaches the sidecar's logs, /healthz, /metrics, or PostgreSQL's log (log_statement=all).
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { leakGuard } from '../helpers/canaries.js';
import * as shared from '../helpers/pg-faults.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { freePort, health, scenario } from '../helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/wait.js';

const guard = leakGuard(5_000);
let pg: TestPostgres;
let roles = 0;

beforeAll(async () => {
  pg = await startPostgres({ logStatements: true });
}, 60_000);
afterAll(async () => {
  // Every password the tests used, in every form a careless path would write, is absent from the server's log.
  const serverLog = await pg.logText();
  guard.observe(serverLog);
  expect(serverLog).toContain("ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256$4096:");
  await pg.stop();
});

/** A new role whose password is set from a verifier built here: the plaintext never reaches the server. */
async function newRole(password: string): Promise<string> {
  const role = `app_${++roles}_${guard.tag}`;
  await shared.newRole(pg, role, password);
  return role;
}

const setByVerifier = (role: string, password: string) => shared.setByVerifier(pg, role, password);

/** Logs in as `role` with `password` through libpq (psql), as GlitchTip's psycopg does. */
const logsIn = (role: string, password: string) => shared.logsIn(pg, role, password);

/**
 * A TCP door in front of PostgreSQL: closed, nothing listens on its port (ECONNREFUSED, as while
 * the postgres container is not started yet); open, it forwards to the server.
 */
async function door(): Promise<{ port: number; open(): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const api = {
    port,
    async open() {
      if (server) return;
      server = createServer((client) => {
        const upstream = createConnection(pg.port, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('error', () => undefined);
          s.on('close', () => sockets.delete(s));
        }
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    },
    async close() {
      const closing = server;
      server = undefined;
      for (const s of sockets) s.destroy();
      if (closing) await new Promise((resolve) => closing.close(resolve));
    },
  };
  onTestFinished(() => api.close());
  return api;
}

const roleSyncEnv = (role: string, port: number, extra: Record<string, string> = {}) => shared.roleSyncEnv(role, port, { SIDECAR_POSTGRES_TIMEOUT: '2s', ...extra });

describe('PostgreSQL role sync', () => {
  it('a rotation changes the role first, then the files; the old password stops working', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = shared.rotate(fake, guard.canary('pg-before'));
    const role = await newRole(before);
    const out = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', ...roleSyncEnv(role, pg.port) }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.revision === 1, 'first write');
    expect((await health(app)).body.postgres).toMatchObject({ state: 'in_step', lastResult: 'already' });

    // Non-ASCII (NFKC changes the ligature), quotes, a backslash: SASLprep and SQL quoting both get a say.
    const after = guard.canary('pg-rotated', 'plain') + ` Größe ﬁ \\ ✓ 'q' "d" \u00A0`;
    shared.rotate(fake, after);
    app.trigger('test');
    await waitFor(async () => (await health(app)).body.revision === 2, 'the rotated set written', 8000);
    expect(shared.keyFile(out)).toBe(after);
    expect(logsIn(role, after)).toBe(true);
    expect(logsIn(role, before)).toBe(false);
    const { body, statusCode } = await health(app);
    expect(statusCode).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.postgres).toMatchObject({ state: 'in_step', lastResult: 'set', key: 'POSTGRES_PASSWORD' });
    expect(body.postgres?.lastChangeAt).not.toBeNull();
    const metrics = (await app.server.inject('/metrics')).body;
    guard.observe(metrics);
    expect(metrics).toMatch(/infisical_sidecar_postgres_role_checks_total\{result="set"\} 1/);
    expect(logs.text()).not.toContain('SCRAM-SHA-256$');

    // A password libpq and node-postgres would hash differently (a newline beside non-ASCII letters)
    // cannot be checked: held, with the reason, and the role keeps the password that works.
    shared.rotate(fake, guard.canary('pg-unsendable') + ' ﬁ');
    app.trigger('test');
    await waitFor(async () => (await health(app)).body.lastError?.code === 'SIDECAR_POSTGRES_FAILED', 'an uncheckable password held');
    expect((await health(app)).body.lastError?.message).toContain('cannot be checked');
    expect(shared.keyFile(out)).toBe(after);
    expect(logsIn(role, after)).toBe(true);
  });

  it('a role already changed by hand is found in place and the set published', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const role = await newRole(shared.rotate(fake, guard.canary('pg-before')));
    const out = s.tempDir();
    const { app } = s.app(glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', ...roleSyncEnv(role, pg.port) }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.revision === 1, 'first write');

    const byHand = guard.canary('pg-by-hand');
    await setByVerifier(role, byHand);
    shared.rotate(fake, byHand);
    app.trigger('test');
    await waitFor(async () => (await health(app)).body.revision === 2, 'the new set written');
    expect(shared.keyFile(out)).toBe(byHand);
    expect((await health(app)).body.postgres).toMatchObject({ state: 'in_step', lastResult: 'already' });
  });

  it('a role that refuses both passwords keeps the old set, reports SIDECAR_POSTGRES_ROLE_REFUSED, and recovers once fixed by hand', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = shared.rotate(fake, guard.canary('pg-before'));
    const role = await newRole(before);
    const out = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_BACKOFF_MAX: '300ms', ...roleSyncEnv(role, pg.port) }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.revision === 1, 'first write');

    await setByVerifier(role, guard.canary('pg-someone-else'));
    const wanted = guard.canary('pg-wanted');
    shared.rotate(fake, wanted);
    app.trigger('test');
    await waitFor(async () => (await health(app)).body.lastError?.code === 'SIDECAR_POSTGRES_ROLE_REFUSED', 'the refusal reported');
    const { body, statusCode } = await health(app);
    expect(statusCode).toBe(200);
    expect(body.status).toBe('degraded');
    expect(body.revision).toBe(1);
    expect(body.postgres).toMatchObject({ state: 'pending', lastResult: 'refused' });
    expect(body.lastError?.message).toContain(role);
    expect(shared.keyFile(out)).toBe(before);
    const metrics = (await app.server.inject('/metrics')).body;
    guard.observe(metrics);
    expect(metrics).toMatch(/infisical_sidecar_postgres_role_checks_total\{result="refused"\} [1-9]/);
    expect(logs.lines().some((line) => line.code === 'SIDECAR_POSTGRES_ROLE_REFUSED')).toBe(true);

    // The operator follows the hint: the role gets the value from Infisical, by hand.
    await setByVerifier(role, wanted);
    await waitFor(async () => (await health(app)).body.revision === 2, 'published after the fix, by the retry');
    expect(shared.keyFile(out)).toBe(wanted);
    expect((await health(app)).body.status).toBe('ok');
  });

  it('PostgreSQL not answering holds the set (hold), or publishes and changes the role when it answers (publish)', async ({ onTestFinished }) => {
    for (const mode of ['hold', 'publish'] as const) {
      const s = scenario(onTestFinished);
      const fake = await s.fake();
      guard.seed(fake);
      const before = shared.rotate(fake, guard.canary('pg-before'));
      const role = await newRole(before);
      const gate = await door();
      await gate.open();
      const out = s.tempDir();
      const env = glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_BACKOFF_MAX: '300ms', ...roleSyncEnv(role, gate.port, { SIDECAR_POSTGRES_UNREACHABLE: mode }) });
      const { app } = s.app(env);
      await s.start(app);
      await waitFor(async () => (await health(app)).body.revision === 1, 'first write');

      await gate.close();
      const after = guard.canary(`pg-${mode}`);
      shared.rotate(fake, after);
      app.trigger('test');
      await waitFor(async () => (await health(app)).body.lastError?.code === 'SIDECAR_POSTGRES_UNREACHABLE', `${mode}: unreachable reported`);
      const held = await health(app);
      expect(held.statusCode).toBe(200);
      expect(held.body.status).toBe('degraded');
      expect(shared.keyFile(out)).toBe(mode === 'hold' ? before : after);
      expect(logsIn(role, before)).toBe(true);

      await gate.open();
      await waitFor(async () => (await health(app)).body.status === 'ok', `${mode}: in step once PostgreSQL answers`);
      expect(shared.keyFile(out)).toBe(after);
      expect(logsIn(role, after)).toBe(true);
      expect(logsIn(role, before)).toBe(false);
      await app.stop();
    }
  });

  it('once: a refused role change exits 76 at once and keeps the set; PostgreSQL not answering is waited for until the deadline (75)', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = shared.rotate(fake, guard.canary('pg-before'));
    const role = await newRole(before);
    const out = s.tempDir();
    const env = (port: number) => glitchtipEnv(fake, out, { SIDECAR_ONCE_DEADLINE: '3s', ...roleSyncEnv(role, port) });
    expect((await runCommand(['once'], env(pg.port))).code).toBe(0);

    await setByVerifier(role, guard.canary('pg-someone-else'));
    shared.rotate(fake, guard.canary('pg-wanted'));
    fake.clearRequests();
    const refused = await runCommand(['once'], env(pg.port));
    expect(refused.code, refused.logs.text()).toBe(76);
    // "At once": one pass (one list request per folder, no retry), not a wait for the deadline.
    expect(fake.requests.filter((request) => request.path.includes('/secrets')).map((request) => request.query['secretPath']).sort()).toEqual(['/glitchtip/application', '/glitchtip/database']);
    expect(shared.keyFile(out)).toBe(before);

    const unreachable = await runCommand(['once'], env(await freePort()));
    expect(unreachable.code).toBe(75);
    expect(unreachable.logs.text()).toContain('SIDECAR_POSTGRES_UNREACHABLE');
    expect(shared.keyFile(out)).toBe(before);
  });

  it('trust authentication: the role still gets the password, the set is published, and SIDECAR_POSTGRES_TRUST_AUTH is reported', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = shared.rotate(fake, guard.canary('pg-before'));
    const role = await newRole(before);
    // pg_hba.conf: trust for this role only, first line wins.
    const hbaFile = (await pg.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
    const original = readFileSync(hbaFile, 'utf8');
    writeFileSync(hbaFile, `host all ${role} 127.0.0.1/32 trust\n${original}`);
    await pg.query('SELECT pg_reload_conf()');
    onTestFinished(async () => {
      writeFileSync(hbaFile, original);
      await pg.query('SELECT pg_reload_conf()');
    });
    const out = s.tempDir();
    const { app, logs } = s.app(glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', ...roleSyncEnv(role, pg.port) }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.revision === 1, 'first write');
    const after = shared.rotate(fake, guard.canary('pg-under-trust'));
    app.trigger('test');
    await waitFor(async () => (await health(app)).body.revision === 2, 'published under trust');
    expect(shared.keyFile(out)).toBe(after);
    expect((await health(app)).body.postgres).toMatchObject({ lastResult: 'trust' });
    expect(logs.lines().some((line) => line.code === 'SIDECAR_POSTGRES_TRUST_AUTH')).toBe(true);
    // Once pg_hba.conf checks passwords again, the one the sidecar set is the one that works.
    writeFileSync(hbaFile, original);
    await pg.query('SELECT pg_reload_conf()');
    expect(logsIn(role, after)).toBe(true);
    expect(logsIn(role, before)).toBe(false);
  });

  it('a reboot after a rotation made while the stack was down: up from the cache, then the role changed; without a cache, the manual fix is named', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const before = shared.rotate(fake, guard.canary('pg-before'));
    const role = await newRole(before);
    const gate = await door();
    await gate.open();
    const cacheDir = s.tempDir('cache-');
    chmodSync(cacheDir, 0o700);
    const env = (out: string, extra: Record<string, string> = {}) =>
      glitchtipEnv(fake, out, { ...FAST, SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_BACKOFF_MAX: '300ms', ...roleSyncEnv(role, gate.port), ...extra });

    // Before the reboot: a normal run leaves the cache.
    const first = s.app(env(s.tempDir(), { SIDECAR_CACHE_DIR: cacheDir }));
    await s.start(first.app);
    await waitFor(async () => (await health(first.app)).body.revision === 1, 'first write');
    await first.app.stop();

    // While the stack is down, the password is rotated in Infisical. The reboot empties the tmpfs;
    // PostgreSQL waits for the sidecar's health before it starts (the door is closed).
    await gate.close();
    const after = guard.canary('pg-offline');
    shared.rotate(fake, after);
    const out = s.tempDir();
    const rebooted = s.app(env(out, { SIDECAR_CACHE_DIR: cacheDir }));
    await s.start(rebooted.app);
    await waitFor(async () => (await health(rebooted.app)).statusCode === 200, 'healthy on the cached set, so PostgreSQL may start');
    const interim = await health(rebooted.app);
    expect(interim.body.source).toBe('cache');
    expect(interim.body.lastError?.code).toBe('SIDECAR_POSTGRES_UNREACHABLE');
    expect(shared.keyFile(out)).toBe(before);

    await gate.open(); // PostgreSQL started
    await waitFor(async () => (await health(rebooted.app)).body.status === 'ok', 'role changed and the new set published');
    expect(shared.keyFile(out)).toBe(after);
    expect(logsIn(role, after)).toBe(true);
    expect((await health(rebooted.app)).body.postgres).toMatchObject({ state: 'in_step', lastResult: 'set' });
    await rebooted.app.stop();

    // The same without a cache: the new set goes out (the stack must come up), and the sidecar names the manual fix.
    await gate.close();
    const again = guard.canary('pg-offline-nocache');
    shared.rotate(fake, again);
    const bare = s.tempDir();
    const noCache = s.app(env(bare));
    await s.start(noCache.app);
    await waitFor(async () => (await health(noCache.app)).body.revision === 1, 'the new set written on the empty volume');
    expect(shared.keyFile(bare)).toBe(again);
    expect((await health(noCache.app)).statusCode).toBe(200);
    await gate.open();
    await waitFor(async () => (await health(noCache.app)).body.lastError?.code === 'SIDECAR_POSTGRES_PASSWORD_UNKNOWN', 'the manual fix named');
    const report = await health(noCache.app);
    expect(report.body.lastError?.hint).toContain('ALTER ROLE');
    expect(report.body.postgres).toMatchObject({ state: 'pending', lastResult: 'unknown' });
    expect(logsIn(role, after)).toBe(true);
  });
});
