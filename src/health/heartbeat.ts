/**
 * Push heartbeats (issue 18): a request to SIDECAR_HEARTBEAT_URL after every successful sync, so a
 * receiver off the host (healthchecks.io, Uptime Kuma, GlitchTip's heartbeat monitors) alerts when
 * they stop: a dead host, a sidecar that never started, a pull check nobody runs. When the sidecar
 * turns unhealthy or serves from a cache, the failure form (SIDECAR_HEARTBEAT_FAIL_URL or _SUFFIX)
 * is sent once, and again only after a recovery and a new failure.
 *
 * A ping never delays a sync: it is fired and forgotten, bounded by SIDECAR_HEARTBEAT_TIMEOUT, never
 * retried, and at most one is in flight — one due while another still waits is skipped (counted),
 * not queued, so a hanging receiver costs one socket, not one per refresh. Redirects are not
 * followed (`redirect: 'manual'`; a 3xx counts as failed): the URL carries a token, and a receiver
 * that moved must be reconfigured rather than have the token sent wherever it points. The body is
 * empty, so it cannot carry a key name. The URL is a secret: logs, `/healthz` and metrics show its
 * origin only (as `urlOrigin` in config/load.ts shows it at start), and failure reasons are built from status codes and error codes,
 * never from an error message that might quote the URL.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { requestFailureReason, trimEndOf } from '../text.js';
import { systemClock, timeoutSignal, type Clock } from '../timers.js';
import type { HealthReport, HealthState, HealthStatus } from './state.js';

/** `success` after a good sync; `failure` once when the sidecar turns unhealthy or serves from a cache. */
/** How long `stop()` lets a ping in flight finish. */
const STOP_GRACE_MS = 3_000;

export type HeartbeatForm = 'success' | 'failure';

/** What became of a ping: answered 2xx, failed (other status, redirect, timeout, network), or skipped because one was in flight. */
export type PingOutcome = 'ok' | 'failed' | 'skipped';

/** The statuses a receiver hears about as a failure; `starting` (no attempt yet) and `degraded` (fresh files) are not. */
const FAILING: ReadonlySet<HealthStatus> = new Set<HealthStatus>(['failing', 'stale', 'missing_keys', 'lint_breaks']);

/** What the heartbeat reads from the health report. `source` is issue 15's cache marker (`"cache"`); absent, the files came from Infisical. */
export type HealthSnapshot = Pick<HealthReport, 'status' | 'lastSuccessAt' | 'maxStalenessSeconds' | 'source'>;

export interface HeartbeatObservation {
  readonly status: HealthStatus;
  /** The files on the volume came from the last-known-good cache, not from Infisical. */
  readonly fromCache: boolean;
  /** This observation follows a sync that succeeded against Infisical. */
  readonly synced: boolean;
}

/**
 * The form to send now, given the last form sent (undefined: none yet). Pure, so the state changes
 * are tested without timers: ok → failing/stale/cache sends `failure` once; while it lasts nothing
 * more; a successful sync sends `success` (every time, and so the recovery too); a failed attempt
 * while the files are still fresh sends nothing.
 */
export function heartbeatToSend(lastSent: HeartbeatForm | undefined, observation: HeartbeatObservation): HeartbeatForm | undefined {
  if (FAILING.has(observation.status) || observation.fromCache) return lastSent === 'failure' ? undefined : 'failure';
  return observation.synced ? 'success' : undefined;
}

/**
 * The failure form's URL: SIDECAR_HEARTBEAT_FAIL_URL as given, or SIDECAR_HEARTBEAT_URL with the
 * suffix applied — `/fail` appended to the path (healthchecks.io), `?status=down&msg=stale` setting
 * those query parameters and replacing the same names (Uptime Kuma's `status=up`). Undefined: no
 * failure form is configured.
 */
export function failureUrl(settings: Pick<Config, 'heartbeatUrl' | 'heartbeatFailUrl' | 'heartbeatFailSuffix'>): string | undefined {
  if (settings.heartbeatFailUrl !== undefined) return settings.heartbeatFailUrl;
  if (settings.heartbeatUrl === undefined || settings.heartbeatFailSuffix === undefined) return undefined;
  const url = new URL(settings.heartbeatUrl);
  const suffix = settings.heartbeatFailSuffix;
  if (suffix.startsWith('?')) {
    for (const [name, value] of new URLSearchParams(suffix)) url.searchParams.set(name, value);
  } else {
    url.pathname = trimEndOf(url.pathname, '/') + suffix;
  }
  return url.toString();
}

/** The heartbeat part of `/healthz`: the receiver's origin and the last ping, never the URL. */
export interface HeartbeatView {
  readonly target: string;
  readonly lastForm: HeartbeatForm | null;
  readonly lastPingAt: string | null;
  readonly lastOutcome: PingOutcome | null;
  /** Why the last ping failed: an HTTP status, "no answer within …", or a network error code. */
  readonly lastError: string | null;
  /** Pings that failed since start (skipped ones not included). */
  readonly failures: number;
}

/** Pings by form and outcome since start, for `infisical_sidecar_heartbeats_total`. */
export type HeartbeatCounts = Readonly<Record<HeartbeatForm, Readonly<Record<PingOutcome, number>>>>;

export interface Heartbeat {
  /** Called after every recorded sync outcome (`synced`: it succeeded); decides and fires a ping without waiting for it. */
  observe(synced: boolean): void;
  view(): HeartbeatView;
  counts(): HeartbeatCounts;
  /** Aborts a ping in flight and the staleness timer; resolves when the ping has settled. */
  stop(): Promise<void>;
}

export type HeartbeatSettings = Pick<Config, 'heartbeatUrl' | 'heartbeatMethod' | 'heartbeatFailUrl' | 'heartbeatFailSuffix' | 'heartbeatTimeoutMs'>;

export interface HeartbeatOptions {
  /** heartbeatUrl must be set. */
  readonly settings: HeartbeatSettings & { readonly heartbeatUrl: string };
  readonly health: () => HealthSnapshot;
  readonly log: Logger;
  readonly clock?: Clock;
}

/** A target as fetch needs it: userinfo moved into a basic authorization header (fetch refuses URLs that carry it). */
interface Target {
  readonly url: string;
  readonly origin: string;
  readonly authorization: string | undefined;
}

function target(text: string): Target {
  const url = new URL(text);
  const authorization = url.username || url.password ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}` : undefined;
  url.username = '';
  url.password = '';
  return { url: url.toString(), origin: url.origin, authorization };
}

export function createHeartbeat(options: HeartbeatOptions): Heartbeat {
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const { settings, log } = options;
  const targets: Readonly<Record<HeartbeatForm, Target | undefined>> = {
    success: target(settings.heartbeatUrl),
    failure: ((url) => (url === undefined ? undefined : target(url)))(failureUrl(settings)),
  };
  const counts: Record<HeartbeatForm, Record<PingOutcome, number>> = {
    success: { ok: 0, failed: 0, skipped: 0 },
    failure: { ok: 0, failed: 0, skipped: 0 },
  };
  const stopping = new AbortController();
  let lastSent: HeartbeatForm | undefined;
  let last: { form: HeartbeatForm; at: number; outcome: PingOutcome; error: string | undefined } | undefined;
  let inFlight: Promise<void> | undefined;
  let cancelStaleCheck = (): void => undefined;

  const settle = (form: HeartbeatForm, outcome: PingOutcome, error?: string) => {
    counts[form][outcome]++;
    last = { form, at: now(), outcome, error };
  };

  async function ping(form: HeartbeatForm, to: Target): Promise<void> {
    const started = now();
    try {
      const response = await fetch(to.url, {
        method: settings.heartbeatMethod,
        headers: { 'user-agent': 'infisical-sidecar', ...(to.authorization ? { authorization: to.authorization } : {}) },
        redirect: 'manual',
        signal: AbortSignal.any([stopping.signal, timeoutSignal(clock, settings.heartbeatTimeoutMs)]),
      });
      await response.body?.cancel();
      if (response.status >= 200 && response.status < 300) {
        settle(form, 'ok');
        log.debug({ form, target: to.origin, status: response.status, ms: now() - started }, 'heartbeat sent');
        return;
      }
      const error = response.status >= 300 && response.status < 400 ? `HTTP ${response.status}: redirect not followed` : `HTTP ${response.status}`;
      settle(form, 'failed', error);
      log.warn({ form, target: to.origin, reason: error }, 'heartbeat failed');
    } catch (error) {
      const reason = requestFailureReason(error, settings.heartbeatTimeoutMs);
      settle(form, 'failed', reason);
      if (!stopping.signal.aborted) log.warn({ form, target: to.origin, reason }, 'heartbeat failed');
    }
  }

  function evaluate(synced: boolean): void {
    if (stopping.signal.aborted) return;
    const report = options.health();
    armStalenessCheck(report);
    const form = heartbeatToSend(lastSent, { status: report.status, fromCache: report.source === 'cache', synced });
    if (form === undefined) return;
    const to = targets[form];
    if (to === undefined) {
      // No failure form configured: the receiver notices the missing success pings instead.
      lastSent = form;
      return;
    }
    if (inFlight) {
      // Not marked as sent, so a skipped failure ping is tried again at the next observation.
      settle(form, 'skipped');
      log.warn({ form, target: to.origin }, 'heartbeat skipped: the previous one is still waiting for an answer');
      return;
    }
    lastSent = form;
    inFlight = ping(form, to).finally(() => (inFlight = undefined));
  }

  /**
   * The files turn stale with time, not with an event: check again just after the bound passes, so
   * the failure ping goes out even while the sync itself hangs. Re-armed at every observation.
   */
  function armStalenessCheck(report: HealthSnapshot): void {
    cancelStaleCheck();
    if (report.lastSuccessAt === null) return;
    const staleAt = Date.parse(report.lastSuccessAt) + (report.maxStalenessSeconds + 1) * 1_000;
    if (staleAt <= now()) return; // already stale: the next sync outcome observes it again
    cancelStaleCheck = clock.schedule(staleAt - now(), () => evaluate(false), { unref: true });
  }

  return {
    observe: evaluate,
    view: () => ({
      target: targets.success!.origin,
      lastForm: last?.form ?? null,
      lastPingAt: last === undefined ? null : new Date(last.at).toISOString(),
      lastOutcome: last?.outcome ?? null,
      lastError: last?.error ?? null,
      failures: counts.success.failed + counts.failure.failed,
    }),
    counts: () => counts,
    async stop() {
      cancelStaleCheck();
      // The ping of the last pass (an init container's only one) gets its chance to arrive, within
      // a bound that leaves Docker's stop grace for the rest of the shutdown.
      if (inFlight) await Promise.race([inFlight, new Promise<void>((resolve) => clock.schedule(Math.min(settings.heartbeatTimeoutMs, STOP_GRACE_MS), resolve, { unref: true }))]);
      stopping.abort();
      await inFlight;
    },
  };
}

/** The heartbeat the configuration asks for, shown in `health`'s reports; undefined without SIDECAR_HEARTBEAT_URL. */
export function heartbeatFor(config: Config, health: HealthState, log: Logger, clock: Clock = systemClock): Heartbeat | undefined {
  const url = config.heartbeatUrl;
  if (url === undefined) return undefined;
  const heartbeat = createHeartbeat({ settings: { ...config, heartbeatUrl: url }, health: () => health.report(), log, clock });
  health.showHeartbeat(() => heartbeat.view());
  return heartbeat;
}
