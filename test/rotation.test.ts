/**
 * Rotation reaches the app: reload actions, webhook push, self-healing files, rotated credentials,
 * config hot reload, and the Docker API restart path against a fake Engine API on a unix socket.
 * The sidecars run on a manual clock: a pass, a reload debounce or a triggered refresh happens when
 * the test moves the clock to it, so "no reload" and "no extra pass" are checked exactly.
 */
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { dockerRestartAction } from '../src/reload/docker.js';
import { signWebhook } from './fake-infisical/webhook.js';
import { DEMO_APPLICATION_PATH, DEMO_CLIENT_ID, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT, DEMO_PROJECT_ID } from './fake-infisical/seed.js';
import { ManualClock } from './helpers/clock.js';
import { nextPass, passAfter } from './helpers/passes.js';
import { reloadReceiver } from './helpers/reload-receiver.js';
import { FAST, glitchtipEnv, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

/** FAST, with room for the reload actions' debounce and cooldown inside the staleness bound. */
const FAST_RELOADS = { ...FAST, SIDECAR_MAX_STALENESS: '10s', SIDECAR_RELOAD_DEBOUNCE: '100ms', SIDECAR_RELOAD_COOLDOWN: '200ms' };
const RELOAD_DEBOUNCE_MS = 100;
const LIST = '/api/v3/secrets/raw';
/** The refresh loop's minimum gap between triggered passes (src/sync/loop.ts). */
const MIN_TRIGGER_GAP_MS = 1_000;
/** The file watcher's debounce (src/sync/watch.ts): its longest wait after an event. */
const WATCH_DEBOUNCE_MS = 200;

async function startApp(env: Record<string, string>, clock: ManualClock) {
  const { log, logs } = testLogger();
  const app = createApp(loadConfig(env), log, { reloadConfig: () => loadConfig(env), clock });
  await app.start();
  onTestFinished(() => app.stop());
  expect(await passAfter(clock, app, null)).toMatchObject({ status: 'ok' });
  return { app, logs };
}

/** Whether the loop still sleeps until its next interval: a trigger would have cancelled that timer for an earlier one. */
function sleepsUntilNextRefresh(clock: ManualClock, app: App): boolean {
  return clock.pending().includes(Date.parse(app.health.report().nextRefreshAt!) - clock.now());
}

/**
 * Waits until `done()` holds, moving the clock to the earliest timer whenever one no longer than
 * `maxDelayMs` is pending: for what real file events start (the watcher's debounce on the clock,
 * then the refresh it triggers).
 */
async function driveUntil(clock: ManualClock, done: () => boolean | Promise<boolean>, what: string, maxDelayMs: number): Promise<void> {
  await waitFor(async () => {
    if (await done()) return true;
    const next = clock.pending()[0];
    if (next !== undefined && next <= maxDelayMs) await clock.advance(next);
    return done();
  }, what);
}

describe('reload actions', () => {
  it('run exactly once per change, after the files are written, and not for the first fill of an empty volume', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const marker = path.join(makeTempDir(), 'command.log');
    const { app } = await startApp(
      glitchtipEnv(fake, dir, {
        ...FAST_RELOADS,
        SIDECAR_RELOAD_URL: receiver.url,
        SIDECAR_RELOAD_COMMAND: JSON.stringify(['/bin/sh', '-c', `printf '%s %s %s\\n' "$SIDECAR_REVISION" "$SIDECAR_CHANGED_KEYS" "$(cat ${dir}/keys/SECRET_KEY)" >> ${marker}`]),
      }),
      clock,
    );
    // A reload is scheduled one debounce after a change: no timer that long was ever scheduled.
    const reloadsScheduled = () => clock.scheduled.filter((delay) => delay === RELOAD_DEBOUNCE_MS).length;
    // Another pass, and still no action: the first fill of an empty volume restarts nobody.
    await nextPass(clock, app);
    expect(reloadsScheduled()).toBe(0);
    expect(receiver.calls).toEqual([]);

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'rotated-1');
    expect(await nextPass(clock, app)).toMatchObject({ revision: 2 });
    expect(reloadsScheduled()).toBe(1);
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 1, 'the reload notification for revision 2');
    expect(receiver.calls[0]).toEqual({ event: 'secrets.changed', revision: 2, changedKeys: ['SECRET_KEY'] });
    // The command saw the new value already on disk: actions run after all files are written.
    expect(readFileSync(marker, 'utf8')).toBe('2 SECRET_KEY rotated-1\n');

    // A pass with nothing changed runs no action.
    expect(await nextPass(clock, app)).toMatchObject({ revision: 2 });
    expect(reloadsScheduled()).toBe(1);
    expect(receiver.calls).toHaveLength(1);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', 'rotated-2');
    expect(await nextPass(clock, app)).toMatchObject({ revision: 3 });
    expect(reloadsScheduled()).toBe(2);
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 2, 'the reload notification for revision 3');
    expect(receiver.calls[1]).toEqual({ event: 'secrets.changed', revision: 3, changedKeys: ['DATABASE_URL', 'POSTGRES_PASSWORD'] });
  });

  it('run on the first sync after a restart when a secret changed while the sidecar was down', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const env = glitchtipEnv(fake, dir, { ...FAST_RELOADS, SIDECAR_RELOAD_URL: receiver.url });
    const reloadsScheduled = () => clock.scheduled.filter((delay) => delay === RELOAD_DEBOUNCE_MS).length;

    const first = await startApp(env, clock);
    await first.app.stop();
    // Restart with nothing changed: no reload.
    const second = await startApp(env, clock);
    await nextPass(clock, second.app);
    expect(reloadsScheduled()).toBe(0);
    expect(receiver.calls).toEqual([]);
    await second.app.stop();

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', 'smtp://changed-while-down@example.test');
    await startApp(env, clock);
    expect(reloadsScheduled()).toBe(1);
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 1, 'the reload notification after the restart');
    expect(receiver.calls[0]).toMatchObject({ revision: 2, changedKeys: ['EMAIL_URL'] });
  });
});

describe('webhook push', () => {
  const SECRET = 'webhook-signing-secret';

  it('refreshes one minimum gap after the last pass on a valid signature, refuses bad ones, ignores other environments', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const { app } = await startApp(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_WEBHOOK_SECRET: SECRET }), clock);
    const firstPassAt = clock.now();
    const url = `http://127.0.0.1:${(app.server.server.address() as AddressInfo).port}/webhook`;
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'pushed');
    fake.clearRequests();

    const post = (body: string, signature?: string) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(signature ? { 'x-infisical-signature': signature } : {}) }, body });
    const event = (overrides: Record<string, unknown> = {}) => ({
      event: 'secrets.modified',
      project: { workspaceId: DEMO_PROJECT_ID, projectId: DEMO_PROJECT_ID, projectName: 'glitchtip', environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH, ...overrides },
    });

    // Refused: no signature, wrong key, tampered body, stale timestamp.
    const valid = signWebhook(SECRET, event(), clock.now());
    expect((await post(valid.body)).status).toBe(401);
    expect((await post(valid.body, signWebhook('wrong', event(), clock.now()).signature)).status).toBe(401);
    expect((await post(valid.body.replace('prod', 'dev'), valid.signature)).status).toBe(401);
    const old = signWebhook(SECRET, event(), clock.now() - 10 * 60_000);
    expect((await post(old.body, old.signature)).status).toBe(401);
    // Acknowledged but ignored: another environment or folder.
    const dev = signWebhook(SECRET, event({ environment: 'dev' }), clock.now());
    expect(await (await post(dev.body, dev.signature)).json()).toEqual({ triggered: false, reason: 'other environment' });
    const other = signWebhook(SECRET, event({ secretPath: '/other/app' }), clock.now());
    expect(await (await post(other.body, other.signature)).json()).toEqual({ triggered: false, reason: 'other folder' });
    // None of them triggered a pass: the loop still sleeps until its 1 h interval, and a pass they
    // could have triggered would have come within the minimum gap.
    expect(sleepsUntilNextRefresh(clock, app)).toBe(true);
    await clock.advance(MIN_TRIGGER_GAP_MS);
    expect(sleepsUntilNextRefresh(clock, app)).toBe(true);
    expect(fake.requests.filter((r) => r.path.startsWith('/api/v3/secrets'))).toHaveLength(0);
    expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).not.toBe('pushed');

    // Accepted: the pass runs at once (the minimum gap is over), not at the 1 h interval.
    const { lastAttemptAt } = app.health.report();
    const response = await fake.sendWebhook(url, SECRET, { environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH, projectId: DEMO_PROJECT_ID });
    expect(response.status).toBe(202);
    expect(sleepsUntilNextRefresh(clock, app)).toBe(false);
    await clock.whenPending((dueIn) => dueIn === 0);
    await clock.advance(0);
    const pushed = await passAfter(clock, app, lastAttemptAt);
    expect(pushed).toMatchObject({ status: 'ok', revision: 2 });
    expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).toBe('pushed');
    expect(fake.requests.filter((r) => r.path === LIST).map((r) => r.at - firstPassAt)).toEqual([MIN_TRIGGER_GAP_MS, MIN_TRIGGER_GAP_MS]);
  });

  it('coalesces a burst of webhooks that arrives during a pass into exactly one more pass', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const { app } = await startApp(glitchtipEnv(fake, makeTempDir(), { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_REQUEST_TIMEOUT: '10s', SIDECAR_WEBHOOK_SECRET: SECRET }), clock);
    const url = `http://127.0.0.1:${(app.server.server.address() as AddressInfo).port}/webhook`;
    const push = () => fake.sendWebhook(url, SECRET, { environment: DEMO_ENVIRONMENT, secretPath: DEMO_DATABASE_PATH, projectId: DEMO_PROJECT_ID });
    const lists = () => fake.requests.filter((r) => r.path === LIST);
    fake.clearRequests();

    // One webhook starts a pass (one minimum gap after the first), held in flight by a 2 s answer to both of its list requests.
    fake.faults.add({ route: 'list', kind: 'latency', ms: 2_000, times: 2 });
    const first = app.health.report();
    expect((await push()).status).toBe(202);
    await clock.advance(MIN_TRIGGER_GAP_MS);
    await fake.whenRequests((requests) => requests.filter((r) => r.path === LIST).length === 2);

    // The burst lands while that pass is still waiting for its answers (the clock stands still).
    const burst = await Promise.all(Array.from({ length: 30 }, push));
    expect(burst.every((delivery) => delivery.status === 202)).toBe(true);
    expect(lists().map((r) => r.status), 'the burst arrived while the first pass was in flight').toEqual([0, 0]);

    // Thirty triggers during one pass make one more pass, one minimum gap after it, not thirty.
    await clock.advance(2_000);
    const triggered = await passAfter(clock, app, first.lastAttemptAt);
    expect(lists().map((r) => r.status)).toEqual([200, 200]);
    expect(sleepsUntilNextRefresh(clock, app)).toBe(false); // the burst's pass is due first
    await clock.advance(MIN_TRIGGER_GAP_MS);
    await passAfter(clock, app, triggered.lastAttemptAt);
    expect(lists().map((r) => [r.at - Date.parse(first.lastAttemptAt!), r.status])).toEqual([
      [1_000, 200],
      [1_000, 200],
      [4_000, 200],
      [4_000, 200],
    ]);
    // No trigger is left over: the loop sleeps until its interval, and no pass comes within the minimum gap.
    expect(sleepsUntilNextRefresh(clock, app)).toBe(true);
    await clock.advance(MIN_TRIGGER_GAP_MS + 500);
    expect(sleepsUntilNextRefresh(clock, app)).toBe(true);
    expect(lists()).toHaveLength(4);
  });
});

describe('self-healing', () => {
  it('restores a deleted or edited output file without bumping the revision', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const { app, logs } = await startApp(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h' }), clock);
    const original = readFileSync(path.join(dir, 'secrets.env'), 'utf8');

    rmSync(path.join(dir, 'secrets.env'));
    await driveUntil(clock, () => existsSync(path.join(dir, 'secrets.env')) && readFileSync(path.join(dir, 'secrets.env'), 'utf8') === original, 'secrets.env restored', WATCH_DEBOUNCE_MS);
    appendFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'tampered');
    await driveUntil(clock, () => !readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8').endsWith('tampered'), 'keys/SECRET_KEY restored', WATCH_DEBOUNCE_MS);

    expect(app.health.report().revision).toBe(1);
    expect(sleepsUntilNextRefresh(clock, app)).toBe(true); // restored by the watcher, not by a pass
    expect(logs.text()).toContain('restored from the last good set');
  });

  it('logs in again with a rotated client secret file', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const secretFile = path.join(makeTempDir(), 'client-secret');
    writeFileSync(secretFile, 'first-secret\n');
    fake.addIdentity(DEMO_CLIENT_ID, 'first-secret');
    const env = glitchtipEnv(fake, makeTempDir(), { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h' });
    delete env.INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET;
    const { app } = await startApp({ ...env, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: secretFile }, clock);

    // The operator creates a new client secret, revokes the old one, and updates the file.
    fake.addIdentity(DEMO_CLIENT_ID, 'second-secret');
    fake.expireTokens();
    fake.clearRequests();
    const { lastAttemptAt } = app.health.report();
    writeFileSync(secretFile, 'second-secret\n');
    // The watcher's debounce, then the refresh it triggers (at most one minimum gap away).
    await driveUntil(clock, () => app.health.report().lastAttemptAt !== lastAttemptAt, 'a pass after the credential file changed', MIN_TRIGGER_GAP_MS);
    expect(fake.requests.filter((r) => r.path.includes('universal-auth/login')).map((r) => r.status)).toEqual([200]);
    expect(app.client.stats.logins).toBe(2);
    expect(app.health.report()).toMatchObject({ status: 'ok', lastError: null });
    expect((await app.server.inject('/healthz')).statusCode).toBe(200);
  });

  it('applies a valid config file change and rejects an invalid one, keeping the old config', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const configFile = path.join(makeTempDir(), 'sidecar.json');
    writeFileSync(configFile, JSON.stringify({ outputs: [{ format: 'env', path: 'glitchtip.env' }] }));
    const { logs } = await startApp(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_CONFIG_FILE: configFile }), clock);
    expect(existsSync(path.join(dir, 'glitchtip.env'))).toBe(true);

    writeFileSync(configFile, '{ "outputs": [ broken');
    await driveUntil(clock, () => logs.text().includes('config file changed but is invalid; keeping the previous config'), 'the invalid config reported', WATCH_DEBOUNCE_MS);
    writeFileSync(configFile, JSON.stringify({ outputs: [{ format: 'json', path: 'glitchtip.json' }] }));
    // The watcher's debounce, then the refresh the new config triggers (at most one minimum gap away).
    await driveUntil(clock, () => existsSync(path.join(dir, 'glitchtip.json')), 'the output of the new config', MIN_TRIGGER_GAP_MS);
    expect(existsSync(path.join(dir, 'glitchtip.env'))).toBe(false);
  });
});

describe('Docker API restart', () => {
  it('restarts only the listed services of its own project, one at a time, waiting for health', async () => {
    const calls: string[] = [];
    const health = new Map<string, number>(); // container → inspections left until healthy
    const containers = [
      { Id: 'self', Labels: { 'com.docker.compose.project': 'gt', 'com.docker.compose.service': 'secrets' } },
      { Id: 'web1', Labels: { 'com.docker.compose.project': 'gt', 'com.docker.compose.service': 'web' } },
      { Id: 'worker1', Labels: { 'com.docker.compose.project': 'gt', 'com.docker.compose.service': 'worker' } },
      { Id: 'postgres1', Labels: { 'com.docker.compose.project': 'gt', 'com.docker.compose.service': 'postgres' } },
      { Id: 'otherweb', Labels: { 'com.docker.compose.project': 'other', 'com.docker.compose.service': 'web' } },
    ];
    const socket = path.join(makeTempDir(), 'docker.sock');
    const server = http.createServer((request, response) => {
      const url = request.url ?? '';
      calls.push(`${request.method} ${url.split('?')[0]}`);
      const inspect = /^\/v1\.41\/containers\/([^/]+)\/json$/.exec(url);
      if (request.method === 'GET' && url.startsWith('/v1.41/containers/json')) {
        const filters = JSON.parse(new URL(url, 'http://x').searchParams.get('filters') ?? '{}') as { label: string[] };
        const [, project] = filters.label[0]!.split('=');
        response.end(JSON.stringify(containers.filter((c) => c.Labels['com.docker.compose.project'] === project)));
      } else if (inspect) {
        const id = inspect[1]!;
        const left = health.get(id) ?? 0;
        health.set(id, left - 1);
        const container = containers.find((c) => c.Id === id);
        response.end(JSON.stringify({ Id: id, Config: { Labels: container?.Labels }, State: { Running: true, Health: { Status: left > 0 ? 'starting' : 'healthy' } } }));
      } else if (request.method === 'POST' && /\/restart$/.test(url.split('?')[0]!)) {
        health.set(url.split('/')[3]!, 2);
        response.statusCode = 204;
        response.end();
      } else {
        response.statusCode = 404;
        response.end('{"message":"not found"}');
      }
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const action = dockerRestartAction({ endpoint: `unix://${socket}`, services: ['web', 'worker'], timeoutMs: 5_000, selfId: 'self', pollMs: 10 });
    await action.run({ revision: 2, changedKeys: ['SECRET_KEY'] }, new AbortController().signal);
    expect(calls).toEqual([
      'GET /v1.41/containers/self/json',
      'GET /v1.41/containers/json',
      'POST /v1.41/containers/web1/restart',
      'GET /v1.41/containers/web1/json',
      'GET /v1.41/containers/web1/json',
      'GET /v1.41/containers/web1/json',
      'POST /v1.41/containers/worker1/restart',
      'GET /v1.41/containers/worker1/json',
      'GET /v1.41/containers/worker1/json',
      'GET /v1.41/containers/worker1/json',
    ]);
  });
});
