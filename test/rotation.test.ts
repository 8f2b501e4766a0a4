/**
 * Rotation reaches the app: reload actions, webhook push, self-healing files, rotated credentials,
 * config hot reload, and the Docker API restart path against a fake Engine API on a unix socket.
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
import { reloadReceiver } from './helpers/reload-receiver.js';
import { FAST, glitchtipEnv, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

/** FAST, with room for the reload actions' debounce and cooldown inside the staleness bound. */
const FAST_RELOADS = { ...FAST, SIDECAR_MAX_STALENESS: '10s', SIDECAR_RELOAD_DEBOUNCE: '100ms', SIDECAR_RELOAD_COOLDOWN: '200ms' };
const LIST = '/api/v3/secrets/raw';
/** The refresh loop's minimum gap between triggered passes (src/sync/loop.ts). */
const MIN_TRIGGER_GAP_MS = 1_000;

async function startApp(env: Record<string, string>) {
  const { log, logs } = testLogger();
  const app = createApp(loadConfig(env), log, { reloadConfig: () => loadConfig(env) });
  await app.start();
  onTestFinished(() => app.stop());
  await waitFor(async () => (await app.server.inject('/healthz')).statusCode === 200, 'the first sync');
  return { app, logs };
}

/** Waits until the app has finished one more pass than when called (the interval is 1 s here). */
async function nextPass(app: App): Promise<void> {
  const lastAttemptAt = async () => (await app.server.inject('/healthz')).json().lastAttemptAt as string | null;
  const before = await lastAttemptAt();
  await waitFor(async () => (await lastAttemptAt()) !== before, 'one more pass');
}

describe('reload actions', () => {
  it('run exactly once per change, after the files are written, and not for the first fill of an empty volume', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const marker = path.join(makeTempDir(), 'command.log');
    const { app } = await startApp(
      glitchtipEnv(fake, dir, {
        ...FAST_RELOADS,
        SIDECAR_RELOAD_URL: receiver.url,
        SIDECAR_RELOAD_COMMAND: JSON.stringify(['/bin/sh', '-c', `printf '%s %s %s\\n' "$SIDECAR_REVISION" "$SIDECAR_CHANGED_KEYS" "$(cat ${dir}/keys/SECRET_KEY)" >> ${marker}`]),
      }),
    );
    // Another pass, and still no action: the first fill of an empty volume restarts nobody.
    await nextPass(app);
    expect(receiver.calls).toEqual([]);

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'rotated-1');
    await waitFor(() => receiver.calls.length === 1, 'the reload notification for revision 2', 5_000);
    expect(receiver.calls[0]).toEqual({ event: 'secrets.changed', revision: 2, changedKeys: ['SECRET_KEY'] });
    // The command saw the new value already on disk: actions run after all files are written.
    expect(readFileSync(marker, 'utf8')).toBe('2 SECRET_KEY rotated-1\n');

    // A pass with nothing changed runs no action.
    await nextPass(app);
    expect(receiver.calls).toHaveLength(1);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', 'rotated-2');
    await waitFor(() => receiver.calls.length === 2, 'the reload notification for revision 3', 5_000);
    expect(receiver.calls[1]).toEqual({ event: 'secrets.changed', revision: 3, changedKeys: ['DATABASE_URL', 'POSTGRES_PASSWORD'] });
  }, 20_000);

  it('run on the first sync after a restart when a secret changed while the sidecar was down', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const env = glitchtipEnv(fake, dir, { ...FAST_RELOADS, SIDECAR_RELOAD_URL: receiver.url });

    const first = await startApp(env);
    await first.app.stop();
    // Restart with nothing changed: no reload.
    const second = await startApp(env);
    await nextPass(second.app);
    expect(receiver.calls).toEqual([]);
    await second.app.stop();

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', 'smtp://changed-while-down@example.test');
    await startApp(env);
    await waitFor(() => receiver.calls.length === 1, 'the reload notification after the restart', 5_000);
    expect(receiver.calls[0]).toMatchObject({ revision: 2, changedKeys: ['EMAIL_URL'] });
  }, 20_000);
});

describe('webhook push', () => {
  const SECRET = 'webhook-signing-secret';

  it('refreshes at once on a valid signature, refuses bad ones, ignores other environments', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const { app } = await startApp(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_WEBHOOK_SECRET: SECRET }));
    const url = `http://127.0.0.1:${(app.server.server.address() as AddressInfo).port}/webhook`;
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'pushed');
    fake.clearRequests();

    const post = (body: string, signature?: string) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(signature ? { 'x-infisical-signature': signature } : {}) }, body });
    const event = (overrides: Record<string, unknown> = {}, timestamp = Date.now()) => ({
      event: 'secrets.modified',
      project: { workspaceId: DEMO_PROJECT_ID, projectId: DEMO_PROJECT_ID, projectName: 'glitchtip', environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH, ...overrides },
      timestamp,
    });

    // Refused: no signature, wrong key, tampered body, stale timestamp.
    const valid = signWebhook(SECRET, event());
    expect((await post(valid.body)).status).toBe(401);
    expect((await post(valid.body, signWebhook('wrong', event()).signature)).status).toBe(401);
    expect((await post(valid.body.replace('prod', 'dev'), valid.signature)).status).toBe(401);
    const old = signWebhook(SECRET, event({}, Date.now() - 10 * 60_000), Date.now() - 10 * 60_000);
    expect((await post(old.body, old.signature)).status).toBe(401);
    // Acknowledged but ignored: another environment or folder.
    const dev = signWebhook(SECRET, event({ environment: 'dev' }));
    expect(await (await post(dev.body, dev.signature)).json()).toEqual({ triggered: false, reason: 'other environment' });
    const other = signWebhook(SECRET, event({ secretPath: '/other/app' }));
    expect(await (await post(other.body, other.signature)).json()).toEqual({ triggered: false, reason: 'other folder' });
    // Nothing to wait for: a triggered pass would have started within the minimum gap after the first.
    await new Promise((resolve) => setTimeout(resolve, MIN_TRIGGER_GAP_MS + 200));
    expect(fake.requests.filter((r) => r.path.startsWith('/api/v3/secrets'))).toHaveLength(0);
    expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).not.toBe('pushed');

    // Accepted: the new value appears without waiting for the 1 h interval.
    const sent = Date.now();
    const response = await fake.sendWebhook(url, SECRET, { environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH, projectId: DEMO_PROJECT_ID });
    expect(response.status).toBe(202);
    await waitFor(() => readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8') === 'pushed', 'the pushed value in keys/SECRET_KEY', 3_000);
    expect(Date.now() - sent).toBeLessThan(2_500);
  }, 20_000);

  it('coalesces a burst of webhooks that arrives during a pass into exactly one more pass', async () => {
    const fake = await startFake();
    const { app } = await startApp(glitchtipEnv(fake, makeTempDir(), { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_REQUEST_TIMEOUT: '10s', SIDECAR_WEBHOOK_SECRET: SECRET }));
    const url = `http://127.0.0.1:${(app.server.server.address() as AddressInfo).port}/webhook`;
    const push = () => fake.sendWebhook(url, SECRET, { environment: DEMO_ENVIRONMENT, secretPath: DEMO_DATABASE_PATH, projectId: DEMO_PROJECT_ID });
    const lists = () => fake.requests.filter((r) => r.path === LIST);
    fake.clearRequests();

    // One webhook starts a pass, held in flight by a slow answer to both of its list requests.
    fake.faults.add({ route: 'list', kind: 'latency', ms: 2_000, times: 2 });
    expect((await push()).status).toBe(202);
    await waitFor(() => lists().length === 2, "the triggered pass's list requests");

    // The burst lands while that pass is still waiting for its answers.
    const burst = await Promise.all(Array.from({ length: 30 }, push));
    expect(burst.every((delivery) => delivery.status === 202)).toBe(true);
    expect(lists().map((r) => r.status), 'the burst arrived while the first pass was in flight').toEqual([0, 0]);

    // Thirty triggers during one pass make one more pass, not thirty.
    await waitFor(() => lists().length === 4 && lists().every((r) => r.status === 200), 'the one pass for the whole burst', 8_000);
    const lastAnswered = Math.max(...lists().map((r) => r.at + r.ms));
    // A trigger left over would start a pass one minimum gap after the last one: none may come.
    await new Promise((resolve) => setTimeout(resolve, lastAnswered + MIN_TRIGGER_GAP_MS + 500 - Date.now()));
    expect(lists()).toHaveLength(4);
  }, 20_000);
});

describe('self-healing', () => {
  it('restores a deleted or edited output file without bumping the revision', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const { app, logs } = await startApp(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h' }));
    const original = readFileSync(path.join(dir, 'secrets.env'), 'utf8');

    rmSync(path.join(dir, 'secrets.env'));
    await waitFor(() => existsSync(path.join(dir, 'secrets.env')) && readFileSync(path.join(dir, 'secrets.env'), 'utf8') === original, 'secrets.env restored', 5_000);
    appendFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'tampered');
    await waitFor(() => !readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8').endsWith('tampered'), 'keys/SECRET_KEY restored', 5_000);

    expect((await app.server.inject('/healthz')).json().revision).toBe(1);
    expect(logs.text()).toContain('restored from the last good set');
  }, 20_000);

  it('logs in again with a rotated client secret file', async () => {
    const fake = await startFake();
    const secretFile = path.join(makeTempDir(), 'client-secret');
    writeFileSync(secretFile, 'first-secret\n');
    fake.addIdentity(DEMO_CLIENT_ID, 'first-secret');
    const env = glitchtipEnv(fake, makeTempDir(), { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h' });
    delete env.INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET;
    const { app } = await startApp({ ...env, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: secretFile });

    // The operator creates a new client secret, revokes the old one, and updates the file.
    fake.addIdentity(DEMO_CLIENT_ID, 'second-secret');
    fake.expireTokens();
    fake.clearRequests();
    writeFileSync(secretFile, 'second-secret\n');
    await waitFor(() => fake.requests.some((r) => r.path.includes('universal-auth/login') && r.status === 200), 'a login with the new client secret', 5_000);
    await waitFor(async () => (await app.server.inject('/healthz')).json().lastAttemptAt !== null && app.client.stats.logins === 2, 'a pass after the second login', 5_000);
    expect((await app.server.inject('/healthz')).statusCode).toBe(200);
  }, 20_000);

  it('applies a valid config file change and rejects an invalid one, keeping the old config', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const configFile = path.join(makeTempDir(), 'sidecar.json');
    writeFileSync(configFile, JSON.stringify({ outputs: [{ format: 'env', path: 'glitchtip.env' }] }));
    const { logs } = await startApp(glitchtipEnv(fake, dir, { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', SIDECAR_CONFIG_FILE: configFile }));
    expect(existsSync(path.join(dir, 'glitchtip.env'))).toBe(true);

    writeFileSync(configFile, '{ "outputs": [ broken');
    await waitFor(() => logs.text().includes('config file changed but is invalid; keeping the previous config'), 'the invalid config reported', 5_000);
    writeFileSync(configFile, JSON.stringify({ outputs: [{ format: 'json', path: 'glitchtip.json' }] }));
    await waitFor(() => existsSync(path.join(dir, 'glitchtip.json')), 'the output of the new config', 5_000);
    expect(existsSync(path.join(dir, 'glitchtip.env'))).toBe(false);
  }, 20_000);
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
