/**
 * The promises of SECURITY.md that no other suite enforces, each as a test:
 *  - TLS: a server certificate from an unknown CA is refused (no silent fallback), and a custom CA
 *    given through NODE_EXTRA_CA_CERTS is trusted (the real CLI, since Node reads it at start);
 *  - /healthz binds where SIDECAR_HEALTH_HOST says (127.0.0.1 is unreachable from other addresses),
 *    and exposes exactly the documented fields;
 *  - written files and directories get the configured mode, uid and gid;
 *  - a reload command gets PATH, SIDECAR_REVISION and SIDECAR_CHANGED_KEYS, and nothing else.
 *
 * The in-process sidecars run on a manual clock (test/helpers/clock.ts): their deadlines and refresh
 * passes happen when the test moves it. The CLI processes run on the wall clock; the test waits for
 * them to exit.
 */
import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { connect, createConnection } from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEMO_CLIENT_ID, DEMO_CLIENT_SECRET } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { health, scenario } from './helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand } from './helpers/sidecar.js';
import type { OnFinished } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(1_000);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const IS_ROOT = process.getuid?.() === 0;
const HAS_OPENSSL = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();
const OTHER_ADDRESS = Object.values(networkInterfaces())
  .flat()
  .find((address) => address && address.family === 'IPv4' && !address.internal)?.address;

/** A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI. */
function makeCertificates(dir: string): { ca: string; key: string; cert: string } {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', '-new', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=infisical-sidecar survive test CA');
  run('req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
  return { ca: path.join(dir, 'ca.pem'), key: path.join(dir, 'server.key'), cert: path.join(dir, 'server.pem') };
}

/** Runs the real CLI as its own process; resolves with the exit code and its output. Killed if the test ends first. */
function runCliProcess(args: string[], env: Record<string, string>, onFinished: OnFinished): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    onFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// One test at a time: several start real CLI processes, and concurrent tests share each one's time budget.
describe('security promises', () => {
  it.skipIf(!HAS_OPENSSL)('TLS: an unknown CA is refused; the same server is trusted once its CA is in NODE_EXTRA_CA_CERTS', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const certs = makeCertificates(s.tempDir('tls-'));
    // A TLS front for the fake (which speaks plain HTTP), as a reverse proxy would be.
    const front = createTlsServer({ key: readFileSync(certs.key), cert: readFileSync(certs.cert) }, (socket) => {
      const upstream = connect(Number(new URL(fake.url).port), '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => front.close(() => resolve())));
    const port = (front.address() as { port: number }).port;

    const base = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: s.tempDir('home-'),
      ...glitchtipEnv(fake, s.tempDir(), { ...FAST, SIDECAR_ONCE_DEADLINE: '1s', SIDECAR_LOG_LEVEL: 'info' }),
      INFISICAL_SITE_URL: `https://127.0.0.1:${port}`,
    };
    // Refused: `once` in-process (this process does not trust the test CA either), on a manual clock:
    // every pass fails at the certificate, retried until the 1 s deadline the test moves the clock to.
    const clock = new ManualClock();
    const refusing = runCommand(['once'], base, undefined, clock);
    await clock.whenPending((dueIn) => dueIn < 1_000); // the first pass failed: a backoff of at most 200 ms
    await clock.advance(1_000);
    const refused = await refusing;
    guard.observe(refused.stdout, refused.stderr);
    expect(refused.code).toBe(75);
    expect(refused.logs.text()).toMatch(/SIDECAR_ONCE_DEADLINE/);
    expect(refused.logs.text()).toMatch(/request failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|DEPTH_ZERO_SELF_SIGNED_CERT)\)/);
    expect(fake.requests).toEqual([]); // nothing reached the server: the credentials were never sent

    // Trusted: the real CLI, since Node reads NODE_EXTRA_CA_CERTS at start. It succeeds at its first
    // pass; its deadline (wall clock) only bounds a hang, and a cold start plus a TLS login on a machine
    // ten times slower than a loaded CI runner stays far inside 15 s.
    const trusted = await runCliProcess(['once'], { ...base, NODE_EXTRA_CA_CERTS: certs.ca, SIDECAR_ONCE_DEADLINE: '15s' }, onTestFinished);
    guard.observe(trusted.stdout, trusted.stderr);
    expect(trusted.code, trusted.stdout.slice(-1_000)).toBe(0);
    expect(fake.requests.map((r) => r.path)).toContain('/api/v1/auth/universal-auth/login');
  }, 60_000);

  it.skipIf(OTHER_ADDRESS === undefined)('/healthz on SIDECAR_HEALTH_HOST=127.0.0.1 is unreachable from any other address; 0.0.0.0 is reachable', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    const reach = (host: string, port: number) =>
      new Promise<string>((resolve) => {
        const socket = createConnection({ host, port, timeout: 2_000 }, () => {
          socket.destroy();
          resolve('connected');
        });
        socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
        socket.on('timeout', () => {
          socket.destroy();
          resolve('timeout');
        });
      });
    for (const [host, expected] of [
      ['127.0.0.1', 'ECONNREFUSED'],
      ['0.0.0.0', 'connected'],
    ] as const) {
      const { app } = s.app(glitchtipEnv(fake, s.tempDir(), { ...FAST, SIDECAR_HEALTH_HOST: host, SIDECAR_WATCH: 'false' }), {}, { clock: new ManualClock() });
      await s.start(app);
      const { port } = app.server.server.address() as { port: number };
      expect(await reach('127.0.0.1', port)).toBe('connected');
      expect(await reach(OTHER_ADDRESS!, port), `${host} seen from ${OTHER_ADDRESS}`).toBe(expected);
      await app.stop();
    }
  });

  it('/healthz exposes exactly the documented fields: names, counts, times, error codes and messages', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const clock = new ManualClock();
    const { app } = s.app(glitchtipEnv(fake, s.tempDir(), FAST), {}, { clock });
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    fake.faults.add({ route: 'list', kind: 'status', status: 500 });
    await clock.advance(1_000); // the next refresh
    const failing = await waitFor(async () => {
      const h = await health(app);
      return h.body.lastError ? h : undefined;
    }, 'a failed pass');
    // When this list changes, update SECURITY.md ("What /healthz exposes") with it.
    expect(Object.keys(failing.body).sort()).toEqual(
      ['ageSeconds', 'cache', 'changedKeys', 'consecutiveFailures', 'folders', 'healthy', 'keyCount', 'lastAttemptAt', 'lastChangeAt', 'lastError', 'lastSuccessAt', 'maxStalenessSeconds', 'missingKeys', 'nextRefreshAt', 'ready', 'revision', 'source', 'status', 'warnings'].sort(),
    );
    expect(Object.keys(failing.body.lastError!).sort()).toEqual(['at', 'code', 'hint', 'message']);
    expect(Object.keys(failing.body.folders[0]!).sort()).toEqual(['ageSeconds', 'lastError', 'lastSuccessAt', 'path', 'secretCount']);
    expect(failing.body.changedKeys.every((key) => /^[A-Z_]+$/.test(key))).toBe(true);
  });

  it.skipIf(!IS_ROOT)('files get the configured mode, uid and gid before they are visible; directories the matching 0750', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = s.tempDir();
    // On a manual clock nobody moves, FAST's deadlines cannot cut the pass short however slow the machine.
    const { app } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_FILE_MODE: '0440', SIDECAR_FILE_UID: '65532', SIDECAR_FILE_GID: '5000' }), {}, { clock: new ManualClock() });
    const outcome = await app.once();
    expect(outcome.ok).toBe(true);
    const version = path.join(dir, readlinkSync(path.join(dir, '..data')));
    const seen: string[] = [];
    const walk = (current: string) => {
      for (const entry of readdirSync(current)) {
        const full = path.join(current, entry);
        const info = lstatSync(full);
        seen.push(`${path.relative(version, full)} ${(info.mode & 0o777).toString(8)} ${info.uid}:${info.gid}`);
        if (info.isDirectory()) walk(full);
      }
    };
    const top = statSync(version);
    expect(`${(top.mode & 0o777).toString(8)} ${top.uid}:${top.gid}`).toBe('750 65532:5000');
    walk(version);
    expect(seen.length).toBeGreaterThan(5);
    // The manifest is the sidecar's own (src/sync/manifest.ts): 0400, never chowned to the consumers.
    const own = `${process.getuid?.()}:${process.getgid?.()}`;
    for (const line of seen) expect(line).toMatch(line.startsWith('keys ') ? /^keys 750 65532:5000$/ : line.startsWith('..manifest ') ? new RegExp(`^\\.\\.manifest 400 ${own}$`) : / 440 65532:5000$/);
    expect(seen.some((line) => line.startsWith('keys/SECRET_KEY '))).toBe(true);
  });

  it('a reload command gets PATH, SIDECAR_REVISION and SIDECAR_CHANGED_KEYS, not the sidecar’s environment or credentials', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const work = s.tempDir('reload-');
    const marker = path.join(work, 'env');
    // The reload command's output is discarded by design (a script could print a secret), so it writes a file.
    const recorder = path.join(work, 'record.sh');
    writeFileSync(recorder, `#!/bin/sh\nenv > '${marker}'\n`, { mode: 0o755 });
    const env = glitchtipEnv(fake, s.tempDir(), {
      ...FAST,
      SIDECAR_RELOAD_COMMAND: JSON.stringify([recorder]),
      SIDECAR_RELOAD_ON_FIRST_WRITE: 'true',
      SIDECAR_RELOAD_DEBOUNCE: '0s',
      SIDECAR_RELOAD_COOLDOWN: '0s',
    });
    const clock = new ManualClock();
    const { app: recording } = s.app(env, {}, { clock });
    await s.start(recording);
    await clock.whenPending((dueIn) => dueIn === 0); // the first write scheduled its reload (no debounce, no cooldown)
    await clock.advance(0);
    const dumped = await waitFor(() => readFileSync(marker, 'utf8'), 'the reload command ran');
    guard.observe(dumped);
    const names = dumped
      .trim()
      .split('\n')
      .map((line) => line.split('=')[0]);
    expect(names.filter((name) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(name!)).sort()).toEqual(['PATH', 'SIDECAR_CHANGED_KEYS', 'SIDECAR_REVISION']);
    expect(dumped).not.toContain(DEMO_CLIENT_SECRET);
    expect(dumped).not.toContain(DEMO_CLIENT_ID);
    expect(dumped).toMatch(/^SIDECAR_REVISION=1$/m);
    expect(dumped).toMatch(/^SIDECAR_CHANGED_KEYS=DATABASE_URL,DEFAULT_FROM_EMAIL,EMAIL_URL,POSTGRES_PASSWORD,SECRET_KEY$/m);
  });
});
