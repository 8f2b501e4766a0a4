/**
 * GET /metrics: every sidecar metric is served (own registry, process metrics included), the
 * counters follow what really happened against the fake Infisical server (syncs, 429s, re-logins,
 * writes, reload actions, webhook calls), state gauges agree with /healthz, no label or sample
 * carries a secret, and docs/operations.md documents exactly the metrics the code defines. The
 * sidecar runs on a manual clock: each refresh is a pass the test asks for, and durations are exact.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { ERROR_CATALOGUE, SidecarError } from '../src/errors.js';
import { deferMetrics } from '../src/health/deferred-metrics.js';
import { METRIC_NAMES, createMetrics } from '../src/health/metrics.js';
import { HealthState, type HealthReport } from '../src/health/state.js';
import { WEBHOOK_REFUSAL_REASONS } from '../src/health/webhook.js';
import type { InfisicalClient } from '../src/infisical/client.js';
import type { SyncOutcome } from '../src/sync/sync-once.js';
import { sleep } from '../src/timers.js';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { glitchtipEnv, startFake, testLogger, type CapturedLogs } from './helpers/sidecar.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text format (enough of it for these assertions). */
function parse(body: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    const raw = match[3]!;
    samples.push({ name: match[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.length === 0 ? undefined : found.reduce((sum, s) => sum + s.value, 0);
}

/** The leak check over everything this file's sidecars logged and served, after the last test. */
const guard = leakGuard(1_000);

/** The one line logOutcome leaves for every pass (with its `next`). */
const PASS_LINES = new Set(['secrets written', 'secrets unchanged', 'sync failed; last good files kept']);

/** Passes the refresh loop has finished (and then gone to sleep: it schedules its next pass as it records one). */
const passes = (logs: CapturedLogs) => logs.lines().filter((line) => PASS_LINES.has(line.msg as string)).length;

/** Moves the clock to the next pass the loop has scheduled, and returns the health report once that pass is recorded. */
async function nextPass(app: App, clock: ManualClock, logs: CapturedLogs): Promise<HealthReport> {
  const before = passes(logs);
  const { nextRefreshAt } = (await app.server.inject('/healthz')).json() as HealthReport;
  await clock.advance(Date.parse(nextRefreshAt!) - clock.now());
  await waitFor(() => passes(logs) > before, `pass ${before + 1}`);
  return (await app.server.inject('/healthz')).json() as HealthReport;
}

describe('GET /metrics', () => {
  it('counts syncs, 429s, re-logins, writes, reloads and webhooks, agrees with /healthz, and carries no secret', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    guard.seed(fake);
    const webhookSecret = guard.canary('webhook', 'plain');
    const env = glitchtipEnv(fake, makeTempDir(), {
      SIDECAR_REFRESH_INTERVAL: '1s',
      SIDECAR_REFRESH_JITTER: '0',
      SIDECAR_MAX_STALENESS: '10s',
      SIDECAR_RELOAD_COMMAND: '["true"]',
      SIDECAR_RELOAD_ON_FIRST_WRITE: 'true',
      SIDECAR_RELOAD_DEBOUNCE: '0s',
      SIDECAR_RELOAD_COOLDOWN: '0s',
      SIDECAR_WEBHOOK_SECRET: webhookSecret,
      SIDECAR_WATCH: 'false',
    });
    const { log, logs } = testLogger('debug');
    const app = createApp(loadConfig(env), log, { clock });
    await app.start();
    const scrape = async () => {
      const response = await app.server.inject('/metrics');
      expect(response.statusCode).toBe(200);
      guard.observe(response.body);
      return { body: response.body, headers: response.headers, samples: parse(response.body) };
    };
    const reloads = async () => value((await scrape()).samples, 'infisical_sidecar_reload_actions_total', { action: 'command', outcome: 'success' }) ?? 0;
    try {
      await waitFor(() => passes(logs) === 1, 'the first sync');
      expect((await app.server.inject('/healthz')).statusCode).toBe(200);
      // The reload after the first write: no debounce, no cooldown, so it is due now.
      await clock.whenPending((dueIn) => dueIn === 0);
      await clock.advance(0);
      await waitFor(async () => (await reloads()) >= 1, 'the reload command after the first write');

      // A 429 on one folder: the pass fails with the rate-limit code and is counted.
      fake.faults.add({ route: 'list', path: DEMO_DATABASE_PATH, kind: 'rateLimit', retryAfterSeconds: 1, times: 1 });
      expect((await nextPass(app, clock, logs)).lastError?.code).toBe('SIDECAR_FETCH_RATE_LIMITED');
      expect(value((await scrape()).samples, 'infisical_sidecar_syncs_total', { outcome: 'failure', code: 'SIDECAR_FETCH_RATE_LIMITED' })).toBe(1);

      // Every token expires: the next fetch is refused once, the client logs in again.
      fake.expireTokens();
      expect((await nextPass(app, clock, logs)).status).toBe('ok');
      expect(value((await scrape()).samples, 'infisical_sidecar_infisical_relogins_total')).toBeGreaterThanOrEqual(1);

      // A rotation writes revision 2 and runs the reload command again.
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated'));
      expect((await nextPass(app, clock, logs)).revision, 'the rotation written as revision 2').toBe(2);
      await clock.whenPending((dueIn) => dueIn === 0);
      await clock.advance(0);
      await waitFor(async () => (await reloads()) >= 2, 'the reload command after the rotation');

      // One signed webhook (202) and one forged (401).
      const port = (app.server.server.address() as AddressInfo).port;
      const delivery = await fake.sendWebhook(`http://127.0.0.1:${port}/webhook`, webhookSecret, { environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH });
      expect(delivery.status).toBe(202);
      const forged = await app.server.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-infisical-signature': `t=${clock.now()};${'0'.repeat(64)}` }, payload: '{}' });
      expect(forged.statusCode).toBe(401);

      const { body, headers, samples } = await scrape();
      const health = (await app.server.inject('/healthz')).json();
      expect(headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);

      // Every metric the module declares is served, and nothing undeclared with our prefix.
      for (const name of METRIC_NAMES) expect(body, name).toContain(`# HELP ${name} `);
      const served = new Set((await app.metrics.load()).registry.getMetricsAsArray().map((metric) => metric.name));
      expect([...served].filter((name) => name.startsWith('infisical_sidecar_')).sort()).toEqual([...METRIC_NAMES].sort());
      // prom-client's default process metrics come along.
      expect(value(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(value(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

      expect(value(samples, 'infisical_sidecar_syncs_total', { outcome: 'success' })).toBeGreaterThanOrEqual(2);
      expect(value(samples, 'infisical_sidecar_syncs_total', { outcome: 'failure', code: 'SIDECAR_FETCH_RATE_LIMITED' })).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'infisical_sidecar_folder_errors_total', { path: DEMO_DATABASE_PATH, code: 'SIDECAR_FETCH_RATE_LIMITED' })).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'infisical_sidecar_infisical_rate_limited_total')).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'infisical_sidecar_infisical_relogins_total')).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'infisical_sidecar_infisical_logins_total')).toBeGreaterThanOrEqual(2);
      expect(value(samples, 'infisical_sidecar_infisical_requests_total')).toBe(app.client.stats.requests);
      expect(value(samples, 'infisical_sidecar_bytes_written_total')).toBeGreaterThan(100);
      expect(value(samples, 'infisical_sidecar_files_written_total')).toBeGreaterThanOrEqual(2 * 4);
      expect(value(samples, 'infisical_sidecar_reload_action_duration_seconds_count', { action: 'command', outcome: 'success' })).toBeGreaterThanOrEqual(2);
      expect(value(samples, 'infisical_sidecar_webhook_requests_total', { status: '202' })).toBe(1);
      expect(value(samples, 'infisical_sidecar_webhook_requests_total', { status: '401' })).toBe(1);
      for (const path of [DEMO_DATABASE_PATH, DEMO_APPLICATION_PATH]) {
        expect(value(samples, 'infisical_sidecar_fetch_duration_seconds_count', { path, outcome: 'success' }), path).toBeGreaterThanOrEqual(2);
        expect(value(samples, 'infisical_sidecar_fetch_duration_seconds_bucket', { path, outcome: 'success', le: '+Inf' }), path).toBeGreaterThanOrEqual(2);
        expect(value(samples, 'infisical_sidecar_folder_last_success_timestamp_seconds', { path })).toBe(Date.parse(health.lastSuccessAt) / 1000);
        expect(value(samples, 'infisical_sidecar_folder_last_success_age_seconds', { path })).toBe((clock.now() - Date.parse(health.lastSuccessAt)) / 1000);
        expect(value(samples, 'infisical_sidecar_folder_secrets', { path })).toBe(health.folders.find((f: { path: string }) => f.path === path).secretCount);
      }
      expect(value(samples, 'infisical_sidecar_sync_duration_seconds_count', { outcome: 'failure' })).toBeGreaterThanOrEqual(1);

      // State gauges agree with /healthz.
      expect(value(samples, 'infisical_sidecar_revision')).toBe(health.revision);
      expect(value(samples, 'infisical_sidecar_keys')).toBe(health.keyCount);
      expect(value(samples, 'infisical_sidecar_healthy')).toBe(health.healthy ? 1 : 0);
      expect(value(samples, 'infisical_sidecar_status', { status: health.status })).toBe(1);
      expect(value(samples, 'infisical_sidecar_status')).toBe(1);
      expect(value(samples, 'infisical_sidecar_max_staleness_seconds')).toBe(10);
      expect(value(samples, 'infisical_sidecar_last_success_age_seconds')).toBe((clock.now() - Date.parse(health.lastSuccessAt)) / 1000);
      expect(value(samples, 'infisical_sidecar_next_refresh_timestamp_seconds')).toBe(Date.parse(health.nextRefreshAt) / 1000);

      // Labels: only folder paths, catalogue codes and fixed words; never a value.
      const allowed: Record<string, (v: string) => boolean> = {
        path: (v) => [DEMO_DATABASE_PATH, DEMO_APPLICATION_PATH].includes(v),
        code: (v) => v in ERROR_CATALOGUE,
        outcome: (v) => v === 'success' || v === 'failure',
        action: (v) => ['command', 'http', 'docker'].includes(v),
        status: (v) => /^\d{3}$/.test(v) || ['ok', 'degraded', 'cache', 'starting', 'failing', 'stale', 'missing_keys', 'lint_breaks'].includes(v),
        le: (v) => v === '+Inf' || Number.isFinite(Number(v)),
        severity: (v) => v === 'breaks' || v === 'advice',
        reason: (v) => (WEBHOOK_REFUSAL_REASONS as readonly string[]).includes(v),
      };
      const ours = samples.filter((s) => s.name.startsWith('infisical_sidecar_'));
      expect(ours.length).toBeGreaterThan(50);
      for (const sample of ours) {
        for (const [label, labelValue] of Object.entries(sample.labels)) {
          expect(Object.keys(allowed), `${sample.name} label ${label}`).toContain(label);
          expect(allowed[label]!(labelValue), `${sample.name}{${label}="${labelValue}"}`).toBe(true);
        }
      }

      // The canary grep, over the whole body and headers (process metrics included).
      expect(guard.leaksIn(body + JSON.stringify(headers)), 'secret values in /metrics').toEqual([]);
      for (const key of ['POSTGRES_PASSWORD', 'SECRET_KEY', 'EMAIL_URL', 'DEFAULT_FROM_EMAIL']) expect(body).not.toContain(key);
    } finally {
      await app.stop();
    }
  });

  it('before any sync: status starting, unhealthy, timestamps 0 and ages +Inf, so `age > bound` alerts fire', async () => {
    const health = new HealthState({ maxStalenessMs: 60_000, secretPaths: ['/a', '/b'] });
    const metrics = createMetrics({ health: () => health.report(), clientStats: () => ({ requests: 0, logins: 0, relogins: 0, rateLimited: 0 }), defaultMetrics: false });
    const samples = parse(await metrics.registry.metrics());
    expect(value(samples, 'infisical_sidecar_status', { status: 'starting' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_status', { status: 'ok' })).toBe(0);
    expect(value(samples, 'infisical_sidecar_healthy')).toBe(0);
    expect(value(samples, 'infisical_sidecar_last_success_timestamp_seconds')).toBe(0);
    expect(value(samples, 'infisical_sidecar_last_success_age_seconds')).toBe(Infinity);
    expect(value(samples, 'infisical_sidecar_folder_last_success_age_seconds', { path: '/a' })).toBe(Infinity);
    expect(value(samples, 'infisical_sidecar_folder_secrets', { path: '/a' })).toBeUndefined();
    expect(value(samples, 'infisical_sidecar_next_refresh_timestamp_seconds')).toBe(0);
    expect(value(samples, 'process_cpu_user_seconds_total')).toBeUndefined();
  });

  it('records a failed pass by code, per folder, and ages it from the last success', async () => {
    let now = 1_700_000_000_000;
    const health = new HealthState({ maxStalenessMs: 60_000, secretPaths: ['/a', '/b'] }, () => now);
    const metrics = createMetrics({ health: () => health.report(), clientStats: () => ({ requests: 7, logins: 2, relogins: 1, rateLimited: 3 }), now: () => now, defaultMetrics: false });
    const base: SyncOutcome = {
      ok: true, startedAt: now - 250, finishedAt: now, error: undefined, missingKeys: [], keyCount: 3, keys: ['V', 'W', 'X'], changed: true, revision: 1, previousRevision: 0, changedKeys: ['X'],
      bytesWritten: 300, filesWritten: 6, skipped: [], overridden: [],
      folders: [{ path: '/a', ok: true, secretCount: 2, error: undefined }, { path: '/b', ok: true, secretCount: 1, error: undefined }],
    };
    health.record(base);
    metrics.recordSync(base);
    now += 90_000;
    const error = new SidecarError('SIDECAR_FETCH_NOT_FOUND', 'GET /api/v3/secrets/raw (folder /b): 404', { status: 404 });
    const failed: SyncOutcome = { ...base, ok: false, startedAt: now - 50, finishedAt: now, error, changed: false, bytesWritten: 0, filesWritten: 0, folders: [base.folders[0]!, { path: '/b', ok: false, secretCount: undefined, error }] };
    health.record(failed);
    metrics.recordSync(failed);
    metrics.recordReload('docker', 'failure', 1_500);

    const samples = parse(await metrics.registry.metrics());
    expect(value(samples, 'infisical_sidecar_syncs_total', { outcome: 'success' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_syncs_total', { outcome: 'failure', code: 'SIDECAR_FETCH_NOT_FOUND' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_folder_errors_total', { path: '/b', code: 'SIDECAR_FETCH_NOT_FOUND' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_folder_errors_total', { path: '/a' })).toBeUndefined();
    expect(value(samples, 'infisical_sidecar_status', { status: 'stale' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_last_success_age_seconds')).toBe(90);
    expect(value(samples, 'infisical_sidecar_folder_last_success_age_seconds', { path: '/b' })).toBe(90);
    expect(value(samples, 'infisical_sidecar_folder_last_success_timestamp_seconds', { path: '/a' })).toBe((now - 90_000) / 1000);
    expect(value(samples, 'infisical_sidecar_consecutive_failures')).toBe(1);
    expect(value(samples, 'infisical_sidecar_bytes_written_total')).toBe(300);
    expect(value(samples, 'infisical_sidecar_files_written_total')).toBe(6);
    expect(value(samples, 'infisical_sidecar_sync_duration_seconds_sum', { outcome: 'success' })).toBeCloseTo(0.25);
    expect(value(samples, 'infisical_sidecar_infisical_requests_total')).toBe(7);
    expect(value(samples, 'infisical_sidecar_infisical_rate_limited_total')).toBe(3);
    expect(value(samples, 'infisical_sidecar_reload_actions_total', { action: 'docker', outcome: 'failure' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_reload_action_duration_seconds_sum', { action: 'docker' })).toBe(1.5);
  });

  it('times each folder fetch without changing what the client returns', async () => {
    const clock = new ManualClock();
    const calls: string[][] = [];
    const client: InfisicalClient = {
      stats: { requests: 0, logins: 0, relogins: 0, rateLimited: 0 },
      credentialsChanged() {},
      loggedInClientSecret: () => undefined,
      async fetchFolders(paths) {
        calls.push([...paths]);
        await sleep(clock, paths[0] === '/slow' ? 60 : 1);
        return paths.map((path) => (path === '/bad' ? { path, ok: false, error: new SidecarError('SIDECAR_FETCH_UNAVAILABLE', 'down', { retryable: true }) } : { path, ok: true, secrets: [{ key: 'K', value: 'v' }] }));
      },
    };
    const health = new HealthState({ maxStalenessMs: 60_000, secretPaths: [] });
    // Deferred (src/health/deferred-metrics.ts): the fetches are timed before prom-client loads, and replayed into it.
    const deferred = deferMetrics({ health: () => health.report(), clientStats: () => client.stats, defaultMetrics: false }, { clock });
    const timed = deferred.instrumentClient(client);
    const fetching = timed.fetchFolders(['/slow', '/bad', '/fast']);
    await clock.advance(60);
    const results = await fetching;
    expect(results.map((r) => [r.path, r.ok])).toEqual([['/slow', true], ['/bad', false], ['/fast', true]]);
    expect(calls.sort()).toEqual([['/bad'], ['/fast'], ['/slow']]);
    expect(timed.stats).toBe(client.stats);
    const metrics = await deferred.load();
    const samples = parse(await metrics.registry.metrics());
    expect(value(samples, 'infisical_sidecar_fetch_duration_seconds_count', { path: '/bad', outcome: 'failure' })).toBe(1);
    expect(value(samples, 'infisical_sidecar_fetch_duration_seconds_sum', { path: '/slow', outcome: 'success' })).toBe(0.06);
    expect(value(samples, 'infisical_sidecar_fetch_duration_seconds_sum', { path: '/fast', outcome: 'success' })).toBe(0.001);
  });
});

describe('docs/operations.md documents the metrics', () => {
  const read = (file: string) => readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');

  it('names every metric defined in src/health/metrics.ts', () => {
    const [guide, source] = [read('docs/operations.md'), read('src/health/metrics.ts')];
    const inSource = new Set([...source.matchAll(/'(infisical_sidecar_[a-z_]+)'/g)].map((m) => m[1]!));
    expect(inSource.size).toBe(METRIC_NAMES.length);
    for (const name of inSource) expect(guide, `${name} is not in docs/operations.md`).toContain(`\`${name}\``);
  });

  it('names no metric the code does not define', () => {
    const guide = read('docs/operations.md');
    const known = new Set<string>(METRIC_NAMES);
    const mentioned = [...guide.matchAll(/infisical_sidecar_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''));
    for (const name of mentioned) expect(known.has(name), `docs/operations.md mentions ${name}, which src/health/metrics.ts does not define`).toBe(true);
  });
});
