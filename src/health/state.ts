/**
 * What `/healthz` reports, derived from the sync outcomes. Holds names, counts, times and error
 * codes only: never a value, nor a hash of one.
 */
import { REFUSAL_CODES } from '../cache/policy.js';
import type { SidecarError } from '../errors.js';
import { toWarnings, type Severity } from '../lint/index.js';
import type { RoleSyncView } from '../postgres/index.js';
import type { HeartbeatView } from './heartbeat.js';
import type { SyncOutcome } from '../sync/sync-once.js';

export type HealthStatus = 'ok' | 'degraded' | 'cache' | 'starting' | 'failing' | 'stale' | 'missing_keys' | 'lint_breaks';

interface ErrorView {
  readonly code: string;
  readonly message: string;
  readonly hint: string;
  readonly at: string;
}

export interface FolderView {
  readonly path: string;
  readonly lastSuccessAt: string | null;
  readonly ageSeconds: number | null;
  readonly secretCount: number | null;
  readonly lastError: ErrorView | null;
}

export interface HealthReport {
  /** ok: fresh; degraded: fresh but the last attempt failed; the rest are 503. */
  readonly status: HealthStatus;
  readonly healthy: boolean;
  /** Files exist from at least one complete sync (what /readyz reports). */
  readonly ready: boolean;
  readonly revision: number;
  readonly lastSuccessAt: string | null;
  readonly ageSeconds: number | null;
  readonly maxStalenessSeconds: number;
  readonly lastAttemptAt: string | null;
  readonly nextRefreshAt: string | null;
  readonly lastChangeAt: string | null;
  readonly changedKeys: readonly string[];
  readonly keyCount: number;
  readonly missingKeys: readonly string[];
  /** Keys with lint findings and their worst severity; the rules are in the logs and `check` only. Absent from older sidecars. */
  readonly warnings?: readonly { key: string; severity: Severity }[];
  readonly lastError: ErrorView | null;
  readonly folders: readonly FolderView[];
  readonly consecutiveFailures: number;
  /** Where the files on the volume came from: Infisical, or the last-known-good cache while Infisical is unreachable since start; null before any write. */
  readonly source: 'infisical' | 'cache' | null;
  /** In cache mode: when the cached content was last confirmed against Infisical, and its age now. */
  readonly cache: { readonly confirmedAt: string; readonly ageSeconds: number } | null;
  /** The last heartbeat ping (SIDECAR_HEARTBEAT_URL), absent when none is configured. */
  readonly heartbeat?: HeartbeatView;
  /** PostgreSQL role sync (SIDECAR_POSTGRES_PASSWORD_KEY): role, key name, state; absent when off. */
  readonly postgres?: RoleSyncView;
}

interface FolderState {
  lastSuccessAt: number | undefined;
  secretCount: number | undefined;
  lastError: { error: SidecarError; at: number } | undefined;
}

export class HealthState {
  private lastSuccessAt: number | undefined;
  private lastAttemptAt: number | undefined;
  private nextRefreshAt: number | undefined;
  private lastChangeAt: number | undefined;
  private changedKeys: readonly string[] = [];
  private lastError: { error: SidecarError; at: number } | undefined;
  private missingKeys: readonly string[] = [];
  private warnings: readonly { key: string; severity: Severity }[] = [];
  private revision = 0;
  private keyCount = 0;
  private consecutiveFailures = 0;
  /** Set while the files come from the cache: when that content was last confirmed against Infisical. */
  private cacheConfirmedAt: number | undefined;
  private readonly folders = new Map<string, FolderState>();
  private heartbeat: (() => HeartbeatView) | undefined;
  private roleSync: (() => RoleSyncView) | undefined;
  /** A failed pass kept the set an earlier run left on the volume for a role change that waits (role sync). */
  private heldForRoleSync = false;
  /** Bumped by every change a report reads; with the clock's second it keys the serialized report. */
  private version = 0;
  private serialized: { version: number; second: number; report: HealthReport; body: string } | undefined;

  constructor(
    /** `cacheHealthy`: SIDECAR_CACHE_HEALTHY, whether cache mode answers 200 (default true). */
    private readonly options: { readonly maxStalenessMs: number; readonly secretPaths: readonly string[]; readonly cacheHealthy?: boolean; readonly cacheMaxAgeMs?: number },
    private readonly now: () => number = Date.now,
  ) {
    for (const path of options.secretPaths) this.folders.set(path, { lastSuccessAt: undefined, secretCount: undefined, lastError: undefined });
  }

  record(outcome: SyncOutcome, nextAttemptAt?: number): void {
    this.version++;
    this.lastAttemptAt = outcome.finishedAt;
    this.nextRefreshAt = nextAttemptAt;
    // Only a pass that got as far as the lint says anything about the values: a fetch failure keeps
    // the warnings of the set on the volume.
    if (outcome.ok || outcome.error?.code === 'SIDECAR_LINT_BREAKS' || outcome.error?.code === 'SIDECAR_MISSING_REQUIRED_KEYS') this.warnings = toWarnings(outcome.findings ?? []);
    // A refusal from Infisical ends cache mode: the copy is deleted (src/cache/fallback.ts), and the
    // identity's secrets must not look healthy any more.
    if (!outcome.ok && outcome.error && REFUSAL_CODES.has(outcome.error.code)) this.cacheConfirmedAt = undefined;
    for (const folder of outcome.folders) {
      const state = this.folders.get(folder.path);
      if (!state) continue;
      if (folder.ok) {
        // A folder counts as fresh only when its data reached the files, i.e. the pass succeeded.
        if (outcome.ok && !outcome.fromCache) {
          state.lastSuccessAt = outcome.finishedAt;
          state.lastError = undefined;
        }
        state.secretCount = folder.secretCount;
      } else if (folder.error) {
        state.lastError = { error: folder.error, at: outcome.finishedAt };
      }
    }
    if (outcome.ok) {
      this.keyCount = outcome.keyCount;
      this.revision = outcome.revision;
      // A rewrite of the same revision (self-healing, a publish retry) is not a change of content.
      if (outcome.revision !== outcome.previousRevision) {
        this.lastChangeAt = outcome.finishedAt;
        this.changedKeys = outcome.changedKeys;
      }
    }
    if (outcome.ok && outcome.fromCache) {
      // Files in place, but not from Infisical: lastSuccessAt stays the last sync with Infisical.
      this.cacheConfirmedAt = outcome.fromCache.confirmedAt;
      this.lastError = { error: outcome.fromCache.fetchError, at: outcome.finishedAt };
      this.consecutiveFailures++;
    } else if (outcome.ok) {
      this.cacheConfirmedAt = undefined;
      this.lastSuccessAt = outcome.finishedAt;
      // A set that is live but not fully published (a top-level link failed) is degraded until a
      // later pass repairs it.
      // So is one whose database password PostgreSQL has not been seen to accept (role sync).
      const problem = outcome.publishError ?? outcome.roleSync?.pending;
      this.lastError = problem ? { error: problem, at: outcome.finishedAt } : undefined;
      this.missingKeys = [];
      this.consecutiveFailures = 0;
    } else {
      this.consecutiveFailures++;
      this.lastError = outcome.error ? { error: outcome.error, at: outcome.finishedAt } : undefined;
      this.missingKeys = outcome.missingKeys;
    }
    if (outcome.ok) this.heldForRoleSync = false;
    else if (outcome.roleSync?.held) this.heldForRoleSync = true;
  }

  report(): HealthReport {
    const now = this.now();
    const age = this.lastSuccessAt === undefined ? undefined : now - this.lastSuccessAt;
    const status = this.status(age);
    return {
      status,
      healthy: status === 'ok' || status === 'degraded' || (status === 'cache' && this.options.cacheHealthy !== false),
      ready: this.lastSuccessAt !== undefined || this.cacheConfirmedAt !== undefined || this.heldForRoleSync,
      revision: this.revision,
      lastSuccessAt: iso(this.lastSuccessAt),
      ageSeconds: age === undefined ? null : Math.floor(age / 1000),
      maxStalenessSeconds: Math.floor(this.options.maxStalenessMs / 1000),
      lastAttemptAt: iso(this.lastAttemptAt),
      nextRefreshAt: iso(this.nextRefreshAt),
      lastChangeAt: iso(this.lastChangeAt),
      changedKeys: this.changedKeys,
      keyCount: this.keyCount,
      missingKeys: this.missingKeys,
      warnings: this.warnings,
      lastError: errorView(this.lastError),
      consecutiveFailures: this.consecutiveFailures,
      folders: [...this.folders].map(([path, folder]) => ({
        path,
        lastSuccessAt: iso(folder.lastSuccessAt),
        ageSeconds: folder.lastSuccessAt === undefined ? null : Math.floor((now - folder.lastSuccessAt) / 1000),
        secretCount: folder.secretCount ?? null,
        lastError: errorView(folder.lastError),
      })),
      source: this.cacheConfirmedAt !== undefined ? 'cache' : this.lastSuccessAt !== undefined ? 'infisical' : null,
      cache: this.cacheConfirmedAt === undefined ? null : { confirmedAt: iso(this.cacheConfirmedAt)!, ageSeconds: Math.max(0, Math.floor((now - this.cacheConfirmedAt) / 1000)) },
      ...(this.heartbeat ? { heartbeat: this.heartbeat() } : {}),
      ...(this.roleSync ? { postgres: this.roleSync() } : {}),
    };
  }

  /** Adds role sync's state to every report. */
  showRoleSync(view: () => RoleSyncView): void {
    this.roleSync = view;
    this.version++;
  }

  /**
   * The report and its JSON, built once per state change and per second of the clock, not per
   * request: /healthz is polled by Docker, monitors and load balancers, and while a refresh runs it
   * should cost a lookup (issue 19). Every time-derived field is in whole seconds, so within one
   * second the text is what `report()` would build; `status` is checked at every call, so it turns
   * stale exactly at the bound. The heartbeat's last ping changes outside `record`; it shows up
   * within the same second.
   */
  serializedReport(): { readonly report: HealthReport; readonly body: string } {
    const now = this.now();
    const second = Math.floor(now / 1000);
    // The status is recomputed each time (a few comparisons), so it flips exactly at the bound.
    const status = this.status(this.lastSuccessAt === undefined ? undefined : now - this.lastSuccessAt);
    const cached = this.serialized;
    if (cached?.version !== this.version || cached.second !== second || cached.report.status !== status) {
      const report = this.report();
      this.serialized = { version: this.version, second, report, body: JSON.stringify(report) };
    }
    return this.serialized!;
  }

  /** Adds the heartbeat's last ping to every report (it reads the report itself, so it is attached after both exist). */
  showHeartbeat(view: () => HeartbeatView): void {
    this.heartbeat = view;
    this.version++;
  }

  private status(age: number | undefined): HealthStatus {
    if (this.missingKeys.length > 0) return 'missing_keys';
    // SIDECAR_LINT=error: a value the consumer would misread keeps the sidecar unhealthy, as a missing key does.
    if (this.lastError?.error.code === 'SIDECAR_LINT_BREAKS') return 'lint_breaks';
    // Whatever SIDECAR_MAX_STALENESS says: the cache's own age limit was checked when it was read.
    if (this.cacheConfirmedAt !== undefined) return this.now() - this.cacheConfirmedAt >= (this.options.cacheMaxAgeMs ?? Number.POSITIVE_INFINITY) ? 'stale' : 'cache';
    // A role change that waits keeps the set on the volume live: healthy (`degraded`), because
    // PostgreSQL starts only once this sidecar is — failing here would deadlock the stack.
    if (age === undefined) return this.heldForRoleSync ? 'degraded' : this.lastError ? 'failing' : 'starting';
    // "Younger than SIDECAR_MAX_STALENESS" is healthy: at the bound itself the files are stale.
    if (age >= this.options.maxStalenessMs) return 'stale';
    return this.lastError ? 'degraded' : 'ok';
  }
}

function iso(time: number | undefined): string | null {
  return time === undefined ? null : new Date(time).toISOString();
}

function errorView(entry: { error: SidecarError; at: number } | undefined): ErrorView | null {
  return entry ? { code: entry.error.code, message: entry.error.message, hint: entry.error.hint, at: new Date(entry.at).toISOString() } : null;
}
