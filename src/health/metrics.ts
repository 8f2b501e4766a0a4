/**
 * Prometheus metrics, served as `GET /metrics` on the health port (prom-client, its own Registry,
 * with the default process metrics).
 *
 * Every label value is one of: a configured folder path, an error code from the catalogue
 * (src/errors.ts), a reload action name (`command`, `http`, `docker`), a fixed outcome/status word,
 * or an HTTP status code. No label or sample is ever derived from a secret, a key name, a URL with
 * credentials, or a request body. Key *names* are not labels either: they are not secret, but they
 * are unbounded.
 *
 * Gauges that describe state (ages, revision, status) are computed at scrape time from the same
 * `HealthReport` that `/healthz` serves, so the two never disagree. Counters are fed by the
 * composition root (`recordSync`, `recordReload`) and by the Infisical client's own `stats`.
 *
 * docs/operations.md lists every metric; a test fails when a name here is missing there.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClientStats } from '../infisical/client.js';
import type { ReloadOutcome } from '../reload/scheduler.js';
import type { SyncOutcome } from '../sync/sync-once.js';
import type { HeartbeatCounts } from './heartbeat.js';
import type { HealthReport, HealthStatus } from './state.js';

/** Every metric this module defines (the process/nodejs defaults from prom-client come on top). */
export const METRIC_NAMES = [
  'infisical_sidecar_syncs_total',
  'infisical_sidecar_postgres_role_checks_total',
  'infisical_sidecar_webhook_refused_total',
  'infisical_sidecar_sync_duration_seconds',
  'infisical_sidecar_fetch_duration_seconds',
  'infisical_sidecar_folder_errors_total',
  'infisical_sidecar_healthy',
  'infisical_sidecar_cache_mode',
  'infisical_sidecar_status',
  'infisical_sidecar_revision',
  'infisical_sidecar_keys',
  'infisical_sidecar_missing_required_keys',
  'infisical_sidecar_lint_warnings',
  'infisical_sidecar_consecutive_failures',
  'infisical_sidecar_last_success_timestamp_seconds',
  'infisical_sidecar_last_success_age_seconds',
  'infisical_sidecar_max_staleness_seconds',
  'infisical_sidecar_next_refresh_timestamp_seconds',
  'infisical_sidecar_folder_last_success_timestamp_seconds',
  'infisical_sidecar_folder_last_success_age_seconds',
  'infisical_sidecar_folder_secrets',
  'infisical_sidecar_bytes_written_total',
  'infisical_sidecar_files_written_total',
  'infisical_sidecar_infisical_requests_total',
  'infisical_sidecar_infisical_logins_total',
  'infisical_sidecar_infisical_relogins_total',
  'infisical_sidecar_infisical_rate_limited_total',
  'infisical_sidecar_reload_actions_total',
  'infisical_sidecar_reload_action_duration_seconds',
  'infisical_sidecar_webhook_requests_total',
  'infisical_sidecar_health_connections_dropped_total',
  'infisical_sidecar_health_max_connections',
  'infisical_sidecar_heartbeats_total',
] as const;

export type MetricName = (typeof METRIC_NAMES)[number];

const STATUSES: readonly HealthStatus[] = ['ok', 'degraded', 'cache', 'starting', 'failing', 'stale', 'missing_keys', 'lint_breaks'];
const LATENCY_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsSources {
  /** What /healthz would answer now. */
  readonly health: () => HealthReport;
  /** The Infisical client's counters (requests, logins, re-logins, 429s). */
  readonly clientStats: () => Readonly<ClientStats>;
  /** Heartbeat pings by form and result; without SIDECAR_HEARTBEAT_URL the metric has no samples. */
  readonly heartbeatCounts?: () => HeartbeatCounts;
  /** PostgreSQL role checks by result; without SIDECAR_POSTGRES_PASSWORD_KEY the metric has no samples. */
  readonly roleCheckCounts?: () => Readonly<Record<string, number>>;
  /** Refused POST /webhook requests by reason; without SIDECAR_WEBHOOK_SECRET the metric has no samples. */
  readonly webhookRefusals?: () => Readonly<Record<string, number>>;
  /** The health server's connection cap (0 before it listens). */
  readonly maxConnections?: () => number;
  readonly now?: () => number;
  /** prom-client's process_* and nodejs_* metrics; on unless a test turns them off. */
  readonly defaultMetrics?: boolean;
}

export interface SidecarMetrics {
  readonly registry: Registry;
  /** Counts one sync pass (run, once). */
  recordSync(outcome: SyncOutcome): void;
  /** The reload scheduler's `onResult`. */
  recordReload(action: string, outcome: ReloadOutcome, ms: number): void;
  /** One folder fetch (a login or re-login included when it happened), timed by `instrumentClient`. */
  recordFetch(path: string, ok: boolean, seconds: number): void;
  /** A `POST /webhook` answered with `status`. */
  recordWebhook(status: number): void;
  /** A connection to the health port closed at once: it held SIDECAR_HEALTH_MAX_CONNECTIONS already. */
  recordDrop(): void;
}

export function createMetrics(sources: MetricsSources): SidecarMetrics {
  const now = sources.now ?? Date.now;
  const registry = new Registry();
  if (sources.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  // ---- counters fed by events -------------------------------------------------------------
  const syncs = new Counter({
    name: 'infisical_sidecar_syncs_total',
    help: 'Sync passes by outcome; failures carry the error code (docs/errors.md).',
    labelNames: ['outcome', 'code'] as const,
    registers,
  });
  const syncDuration = new Histogram({
    name: 'infisical_sidecar_sync_duration_seconds',
    help: 'Duration of a whole sync pass (fetch every folder, render, write), by outcome.',
    labelNames: ['outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const fetchDuration = new Histogram({
    name: 'infisical_sidecar_fetch_duration_seconds',
    help: 'Duration of fetching one folder from Infisical (a login or re-login included when it happened), by folder and outcome.',
    labelNames: ['path', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const folderErrors = new Counter({
    name: 'infisical_sidecar_folder_errors_total',
    help: 'Failed folder fetches, by folder and error code.',
    labelNames: ['path', 'code'] as const,
    registers,
  });
  const bytesWritten = new Counter({
    name: 'infisical_sidecar_bytes_written_total',
    help: 'Bytes written to the output directory (only passes whose content changed write anything).',
    registers,
  });
  const filesWritten = new Counter({
    name: 'infisical_sidecar_files_written_total',
    help: 'Files written to the output directory.',
    registers,
  });
  const reloads = new Counter({
    name: 'infisical_sidecar_reload_actions_total',
    help: 'Reload actions run after the files changed, by action (command, http, docker) and outcome.',
    labelNames: ['action', 'outcome'] as const,
    registers,
  });
  const reloadDuration = new Histogram({
    name: 'infisical_sidecar_reload_action_duration_seconds',
    help: 'Duration of one reload action, by action and outcome.',
    labelNames: ['action', 'outcome'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300],
    registers,
  });
  const webhooks = new Counter({
    name: 'infisical_sidecar_webhook_requests_total',
    help: 'POST /webhook requests by HTTP status: 202 accepted (a refresh was triggered or the event was ignored), 401 bad signature, 409 replayed delivery, 400 malformed.',
    labelNames: ['status'] as const,
    registers,
  });

  // Present from the start, so `increase()` and absence alerts work before the first pass ends.
  syncs.inc({ outcome: 'success' }, 0);

  // ---- counters mirrored from the client's own stats at scrape time -----------------------
  const mirror = (name: MetricName, help: string, read: (stats: Readonly<ClientStats>) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(sources.clientStats()));
      },
    });
  mirror('infisical_sidecar_infisical_requests_total', 'HTTP requests sent to Infisical (logins and folder lists).', (s) => s.requests);
  mirror('infisical_sidecar_infisical_logins_total', 'Universal Auth logins (the first one, re-logins, and those after a credential file changed).', (s) => s.logins);
  mirror('infisical_sidecar_infisical_relogins_total', 'Logins forced by a 401 or 403 on a folder fetch (expired or revoked token).', (s) => s.relogins);
  mirror('infisical_sidecar_infisical_rate_limited_total', 'Responses with HTTP 429 from Infisical.', (s) => s.rateLimited);

  new Counter({
    name: 'infisical_sidecar_heartbeats_total',
    help: 'Heartbeat pings (SIDECAR_HEARTBEAT_URL) by form (success, failure) and result (ok, failed, skipped).',
    labelNames: ['form', 'result'],
    registers,
    collect() {
      this.reset();
      const counts = sources.heartbeatCounts?.();
      if (counts === undefined) return;
      for (const [form, results] of Object.entries(counts)) for (const [result, value] of Object.entries(results)) this.inc({ form, result }, value);
    },
  });

  new Counter({
    name: 'infisical_sidecar_postgres_role_checks_total',
    help: 'PostgreSQL role sync checks of a new or unconfirmed database password, by result: set (the sidecar changed the role), already (the role had it), trust (a wrong password got in too), refused, unknown, unreachable, failed (docs/postgres-role-sync.md).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      for (const [result, value] of Object.entries(sources.roleCheckCounts?.() ?? {})) this.inc({ result }, value);
    },
  });

  new Counter({
    name: 'infisical_sidecar_webhook_refused_total',
    help: 'POST /webhook requests refused, by reason: missing_signature, malformed_signature, stale_timestamp, bad_signature, timestamp_mismatch, replayed, not_json. Only one warning a minute is logged.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, value] of Object.entries(sources.webhookRefusals?.() ?? {})) this.inc({ reason }, value);
    },
  });

  // ---- state gauges, computed from the health report at scrape time -----------------------
  // One report per scrape: the first gauge collected takes it, the others reuse it.
  let scrape: { at: number; report: HealthReport } | undefined;
  const report = (): HealthReport => {
    const at = now();
    if (scrape === undefined || scrape.at !== at) scrape = { at, report: sources.health() };
    return scrape.report;
  };
  const seconds = (iso: string | null) => (iso === null ? undefined : Date.parse(iso) / 1000);
  /** Never = timestamp 0 and age +Inf, so `age > bound` alerts fire for a sidecar that never synced. */
  const age = (iso: string | null) => (iso === null ? Number.POSITIVE_INFINITY : Math.max(0, (now() - Date.parse(iso)) / 1000));

  const gauge = (name: MetricName, help: string, value: (r: HealthReport) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(value(report()));
      },
    });
  gauge('infisical_sidecar_healthy', '1 while /healthz answers 200 (status ok or degraded), else 0.', (r) => (r.healthy ? 1 : 0));
  gauge('infisical_sidecar_cache_mode', '1 while the files come from the last-known-good cache (Infisical unreachable since start), else 0.', (r) => (r.source === 'cache' ? 1 : 0));
  gauge('infisical_sidecar_revision', 'Revision of the files on the volume (increments on every change).', (r) => r.revision);
  gauge('infisical_sidecar_keys', 'Number of keys in the last complete set (derived keys included).', (r) => r.keyCount);
  gauge('infisical_sidecar_missing_required_keys', 'Number of SIDECAR_REQUIRED_KEYS missing from the last fetch (names are in /healthz).', (r) => r.missingKeys.length);
  gauge('infisical_sidecar_consecutive_failures', 'Failed passes since the last success.', (r) => r.consecutiveFailures);
  gauge('infisical_sidecar_last_success_timestamp_seconds', 'Unix time of the last complete sync; 0 when none yet.', (r) => seconds(r.lastSuccessAt) ?? 0);
  gauge('infisical_sidecar_last_success_age_seconds', 'Seconds since the last complete sync, at scrape time; +Inf when none yet.', (r) => age(r.lastSuccessAt));
  gauge('infisical_sidecar_max_staleness_seconds', 'SIDECAR_MAX_STALENESS: /healthz turns 503 past this age.', (r) => r.maxStalenessSeconds);
  gauge('infisical_sidecar_next_refresh_timestamp_seconds', 'Unix time of the next scheduled pass; 0 when none is scheduled.', (r) => seconds(r.nextRefreshAt) ?? 0);

  new Gauge({
    name: 'infisical_sidecar_lint_warnings',
    help: 'Keys with lint findings in the last pass, by their worst severity (breaks, advice); the keys are in /healthz, the rules in the logs.',
    labelNames: ['severity'] as const,
    registers,
    collect() {
      const warnings = report().warnings ?? [];
      for (const severity of ['breaks', 'advice'] as const) this.set({ severity }, warnings.filter((warning) => warning.severity === severity).length);
    },
  });

  new Gauge({
    name: 'infisical_sidecar_status',
    help: 'The /healthz status: 1 for the current one (ok, degraded, cache, starting, failing, stale, missing_keys, lint_breaks), 0 for the others.',
    labelNames: ['status'] as const,
    registers,
    collect() {
      const current = report().status;
      for (const status of STATUSES) this.set({ status }, status === current ? 1 : 0);
    },
  });

  const perFolder = (name: MetricName, help: string, value: (folder: HealthReport['folders'][number]) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['path'] as const,
      registers,
      collect() {
        this.reset();
        for (const folder of report().folders) {
          const v = value(folder);
          if (v !== undefined) this.set({ path: folder.path }, v);
        }
      },
    });
  perFolder('infisical_sidecar_folder_last_success_timestamp_seconds', 'Unix time of the last complete sync that included this folder; 0 when none yet.', (f) => seconds(f.lastSuccessAt) ?? 0);
  perFolder('infisical_sidecar_folder_last_success_age_seconds', 'Seconds since this folder last reached the files, at scrape time; +Inf when never.', (f) => age(f.lastSuccessAt));
  perFolder('infisical_sidecar_folder_secrets', 'Secrets the folder returned on its last successful fetch (imports included); absent until one.', (f) => f.secretCount ?? undefined);

  const dropped = new Counter({
    name: 'infisical_sidecar_health_connections_dropped_total',
    help: 'Connections to the health port closed as soon as they were accepted, because it held infisical_sidecar_health_max_connections already.',
    registers,
  });
  new Gauge({
    name: 'infisical_sidecar_health_max_connections',
    help: 'Connections the health port holds at most: SIDECAR_HEALTH_MAX_CONNECTIONS, lowered to keep SIDECAR_HEALTH_FD_RESERVE descriptors free; 0 before it listens.',
    registers,
    collect() {
      this.set(sources.maxConnections?.() ?? 0);
    },
  });

  return {
    registry,

    recordSync(outcome) {
      const result = outcome.ok ? 'success' : 'failure';
      if (outcome.ok) syncs.inc({ outcome: result });
      else syncs.inc({ outcome: result, code: outcome.error?.code ?? 'SIDECAR_UNEXPECTED' });
      syncDuration.observe({ outcome: result }, Math.max(0, outcome.finishedAt - outcome.startedAt) / 1000);
      for (const folder of outcome.folders) {
        if (!folder.ok) folderErrors.inc({ path: folder.path, code: folder.error?.code ?? 'SIDECAR_UNEXPECTED' });
      }
      if (outcome.ok) {
        bytesWritten.inc(outcome.bytesWritten);
        filesWritten.inc(outcome.filesWritten);
      }
    },

    recordReload(action, outcome, ms) {
      reloads.inc({ action, outcome });
      reloadDuration.observe({ action, outcome }, ms / 1000);
    },

    recordFetch(path, ok, seconds) {
      fetchDuration.observe({ path, outcome: ok ? 'success' : 'failure' }, seconds);
    },

    recordWebhook(status) {
      webhooks.inc({ status: String(status) });
    },

    recordDrop() {
      dropped.inc();
    },
  };
}

