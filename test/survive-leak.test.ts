/**
 * The leak guard, as other processes on the host see the sidecar.
 *
 * The real CLI (`node --import tsx src/main.ts run`) runs as its own process, with the client id,
 * client secret and webhook secret given as `_FILE` paths. While it syncs, rotates, fails and
 * answers bad requests, the test reads what any process of the same user can read:
 * `/proc/<pid>/cmdline` and `/proc/<pid>/environ` of the sidecar and of every process it started
 * (tsx's esbuild service), its stdout and stderr, every HTTP answer (including error bodies), and
 * the disk outside the output directory (HOME, TMPDIR, the output volume's non-secret entries).
 * No canary value, client secret, webhook secret or access token may appear in any of them.
 * (The in-process paths are covered by test/leak.test.ts and the leak checks closing every
 * survive-*.test.ts file.)
 *
 * The CLI is a real process on the wall clock: the test waits on what it answers (/healthz), never
 * for time to pass, and signs its webhook calls with the time the CLI itself last reported.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT, DEMO_PROJECT_ID } from './fake-infisical/seed.js';
import { canaries, forms, leakGuard } from './helpers/canaries.js';
import { freePort, scenario } from './helpers/scenario.js';

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(10_000);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

type LogLine = Record<string, unknown>;

/**
 * The JSON log lines a child prints, as its stdout brings them. `when(test)` resolves with the first
 * line, already printed or to come, that passes `test` (given the line and its index); it rejects if
 * the child exits first. Waits on what the child says, never on how long it takes to say it.
 */
function logEvents(child: ChildProcessByStdio<null, Readable, Readable>, stderr: () => string) {
  const seen: LogLine[] = [];
  const waiters = new Set<{ test: (line: LogLine, index: number) => boolean; resolve: (line: LogLine) => void; reject: (error: Error) => void }>();
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      seen.push(line);
      for (const waiter of [...waiters]) {
        if (!waiter.test(line, seen.length - 1)) continue;
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  });
  child.once('exit', (code) => {
    for (const waiter of waiters) waiter.reject(new Error(`the CLI exited with ${code}: ${stderr().slice(-2_000)}`));
    waiters.clear();
  });
  return {
    get count() {
      return seen.length;
    },
    when(test: (line: LogLine, index: number) => boolean): Promise<LogLine> {
      const found = seen.find(test);
      if (found) return Promise.resolve(found);
      if (child.exitCode !== null) return Promise.reject(new Error(`the CLI exited with ${child.exitCode}: ${stderr().slice(-2_000)}`));
      return new Promise((resolve, reject) => waiters.add({ test, resolve, reject }));
    },
  };
}

/** A pass that ended well: new files, or the same ones confirmed. */
const passSucceeded = (line: LogLine) => line.msg === 'secrets written' || line.msg === 'secrets unchanged';

/** The pid and every descendant (by walking /proc/<pid>/task/<tid>/children). */
function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length && i < 100; i++) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${all[i]}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        for (const child of readFileSync(`/proc/${all[i]}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) all.push(Number(child));
      } catch {
        // the task ended meanwhile
      }
    }
  }
  return [...new Set(all)];
}

/** Every regular file under `dir` (not following links), for the on-disk scan. */
function filesUnder(dir: string, limit = 5_000): string[] {
  const out: string[] = [];
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      if (out.length >= limit) return;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push(full);
    }
  };
  walk(dir);
  return out;
}

const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;

/** Minimal valid settings for the config loader. */
const MINIMAL_ENV = { INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: 'id', INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: 'secret', INFISICAL_PROJECT_ID: 'p', INFISICAL_ENVIRONMENT: 'prod' };

describe('leaks as other processes see them', () => {
  it('the real CLI with _FILE credentials: no secret in /proc cmdline or environ, output, HTTP answers, or on disk', async ({ onTestFinished }) => {
    if (process.platform !== 'linux') return;
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const work = s.tempDir('leak-cli-');
    const [output, creds, home, tmp] = ['out', 'creds', 'home', 'tmp'].map((name) => {
      mkdirSync(path.join(work, name));
      return path.join(work, name);
    }) as [string, string, string, string];
    const clientId = `leak-test-${guard.tag}`;
    const clientSecret = guard.canary('client-secret', 'plain');
    const webhookSecret = guard.canary('webhook-secret', 'plain');
    fake.addIdentity(clientId, clientSecret);
    writeFileSync(path.join(creds, 'client_id'), `${clientId}\n`);
    writeFileSync(path.join(creds, 'client_secret'), `${clientSecret}\n`);
    writeFileSync(path.join(creds, 'webhook_secret'), webhookSecret);
    const port = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      TMPDIR: tmp,
      INFISICAL_SITE_URL: fake.url,
      INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE: path.join(creds, 'client_id'),
      INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: path.join(creds, 'client_secret'),
      INFISICAL_PROJECT_ID: DEMO_PROJECT_ID,
      INFISICAL_ENVIRONMENT: DEMO_ENVIRONMENT,
      INFISICAL_SECRET_PATHS: '/glitchtip/database,/glitchtip/application',
      SIDECAR_REQUIRED_KEYS: 'POSTGRES_PASSWORD,SECRET_KEY',
      SIDECAR_DERIVE_DATABASE_URL: 'postgres://glitchtip:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip',
      SIDECAR_OUTPUT_DIR: output,
      SIDECAR_HEALTH_HOST: '127.0.0.1',
      SIDECAR_HEALTH_PORT: String(port),
      SIDECAR_REFRESH_INTERVAL: '1s',
      SIDECAR_REFRESH_JITTER: '0',
      // Staleness is not what this test is about: a loaded machine must not turn a healthy child stale.
      SIDECAR_MAX_STALENESS: '1h',
      SIDECAR_BACKOFF_MAX: '200ms',
      SIDECAR_LOG_LEVEL: 'trace',
    };
    env.SIDECAR_WEBHOOK_SECRET_FILE = path.join(creds, 'webhook_secret');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'run'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const logs = logEvents(child, () => stderr);

    const base = `http://127.0.0.1:${port}`;
    const healthJson = async () => (await (await fetch(`${base}/healthz`)).json()) as { status: string; revision: number; lastAttemptAt: string };
    await logs.when((line) => line.msg === 'secrets written' && line.revision === 1);
    expect((await healthJson()).status).toBe('ok');

    // Rotate a secret, fail a pass, and poke every route with hostile requests.
    const rotated = guard.canary('cli-rotated');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    await logs.when((line) => line.msg === 'secrets written' && line.revision === 2);
    expect((await healthJson()).revision).toBe(2);
    const faultsFrom = logs.count;
    fake.faults.add({ route: 'list', kind: 'status', status: 500, times: 2 });
    fake.faults.add({ route: 'list', kind: 'malformed', times: 2 });
    fake.expireTokens();
    // A pass that failed on them, then one that succeeded once every fault was used up.
    let failedAt = -1;
    await logs.when((line, index) => index >= faultsFrom && line.msg === 'sync failed; last good files kept' && (failedAt = index) >= 0);
    await logs.when((line, index) => index > failedAt && passSucceeded(line) && fake.faults.list().length === 0);
    expect((await healthJson()).status).toBe('ok');

    // The requester's own data in request *bodies*: error answers must not echo it (Fastify's 404
    // echoes the URL by design, so the URL carries no probe; see SECURITY.md).
    const probe = `probe-${guard.tag}-in-a-request-body`;
    // The CLI's own clock, as its last pass reported it: well inside its 5 min webhook tolerance.
    const signedAt = Date.parse((await healthJson()).lastAttemptAt);
    const signed = (body: string, secret: string) => `t=${signedAt};${createHmac('sha256', secret).update(body).digest('hex')}`;
    const webhookBody = JSON.stringify({ event: 'secrets.modified', timestamp: signedAt, project: { projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath: '/', note: probe } });
    const validBody = JSON.stringify({ event: 'secrets.modified', timestamp: signedAt, project: { projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath: '/glitchtip/application' } });
    const valid = `t=${signedAt};${createHmac('sha256', webhookSecret).update(validBody).digest('hex')}`;
    const requests: [string, RequestInit?][] = [
      ['/webhook', { method: 'POST', body: validBody, headers: { 'content-type': 'application/json', 'x-infisical-signature': valid } }],
      ['/healthz'],
      ['/readyz'],
      ['/livez'],
      ['/metrics'],
      ['/nope'],
      ['/healthz', { method: 'POST', body: JSON.stringify({ secret: probe }), headers: { 'content-type': 'application/json' } }],
      ['/healthz', { method: 'POST', body: `{"broken": "${probe}`, headers: { 'content-type': 'application/json' } }],
      ['/webhook', { method: 'POST', body: webhookBody, headers: { 'content-type': 'application/json', 'x-infisical-signature': signed(webhookBody, 'wrong-secret') } }],
      ['/webhook', { method: 'POST', body: `not json ${probe}`, headers: { 'content-type': 'text/plain', 'x-infisical-signature': `t=${signedAt};${'0'.repeat(64)}` } }],
      ['/webhook', { method: 'POST', body: 'x'.repeat(200_000) + probe, headers: { 'content-type': 'application/json' } }],
    ];
    const statuses: number[] = [];
    const summary: string[] = [];
    for (const [url, init] of requests) {
      const response = await fetch(`${base}${url}`, init);
      const body = await response.text();
      statuses.push(response.status);
      summary.push(`${init?.method ?? 'GET'} ${url} → ${response.status}`);
      guard.observe(body, JSON.stringify([...response.headers]));
      expect(body.includes(probe), `${url} echoes the request body`).toBe(false);
    }

    // The webhook is on (the signed call is accepted) and refuses the rest: the probes went through it.
    expect(statuses[0]).toBeGreaterThanOrEqual(200);
    expect(statuses[0]).toBeLessThan(300);

    // What every process of this user can read about the sidecar and the processes it started.
    const tree = processTree(child.pid!);
    let environChars = 0;
    for (const pid of tree) {
      let cmdline = '';
      let environ = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ');
        environ = readFileSync(`/proc/${pid}/environ`, 'latin1').replaceAll('\0', '\n');
      } catch {
        continue; // exited meanwhile
      }
      environChars += environ.length;
      guard.observe(cmdline, environ);
      expect(JWT_SHAPED.test(environ) || JWT_SHAPED.test(cmdline), `pid ${pid}: a token in environ/cmdline`).toBe(false);
    }
    // The positive control: environ was really read, and it holds file *paths*.
    const sidecarEnviron = readFileSync(`/proc/${child.pid}/environ`, 'latin1').split('\0');
    expect(sidecarEnviron).toContain(`INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE=${path.join(creds, 'client_secret')}`);
    expect(sidecarEnviron.some((entry) => entry.startsWith('INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET='))).toBe(false);
    expect(environChars).toBeGreaterThan(500);

    // The access token is never written to disk: nothing token-shaped anywhere the process could write.
    const version = readlinkSync(path.join(output, '..data'));
    const diskFiles = [...filesUnder(home), ...filesUnder(tmp), ...filesUnder(output).filter((file) => !file.includes(`${version}/`) && !file.includes('/..rev-'))];
    for (const file of diskFiles) {
      const content = readFileSync(file, 'latin1');
      expect(JWT_SHAPED.test(content), `token-shaped string in ${file}`).toBe(false);
      guard.observe(content);
    }
    for (const file of filesUnder(path.join(output, version))) expect(JWT_SHAPED.test(readFileSync(file, 'latin1')), file).toBe(false);
    expect(statSync(path.join(output, 'keys', 'SECRET_KEY')).mode & 0o777).toBe(0o440);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    guard.observe(stdout, stderr);
    expect(stdout.split('\n').filter(Boolean).length).toBeGreaterThan(10);
    console.info(`[survive] /proc leak check: ${tree.length} process(es) (${tree.join(', ')}), ${environChars} environ bytes, ${diskFiles.length} files on disk scanned; HTTP: ${summary.join('; ')}`);
  }, 60_000);

  it('accepts SIDECAR_WEBHOOK_SECRET_FILE, so the webhook secret can stay out of the environment', ({ onTestFinished }) => {
    const dir = scenario(onTestFinished).tempDir('webhook-file-');
    writeFileSync(path.join(dir, 'webhook_secret'), 'from-a-file\n');
    const config = loadConfig({ ...MINIMAL_ENV, SIDECAR_WEBHOOK_SECRET_FILE: path.join(dir, 'webhook_secret') });
    expect(config.webhookSecret).toBe('from-a-file');
  });

  it("the leak guard's matcher finds a canary in each form it knows (plain, URL, JSON-escaped, base64, one line)", () => {
    for (const pick of [0, 1, 2, 3, 4]) {
      const check = canaries();
      const value = check.canary('sanity');
      expect(check.leaksIn(`…${forms(value)[pick]}…`), `form #${pick}`).toEqual(['sanity#1']);
    }
  });
});
