/**
 * What `/healthz` reports, derived from the sync outcomes. Holds names, counts, times and error
 * codes only: never a value, nor a hash of one.
 */
import type { SidecarError } from '../errors.js';
import type { SyncOutcome } from '../sync/sync-once.js';

export type HealthStatus = 'ok' | 'degraded' | 'starting' | 'failing' | 'stale' | 'missing_keys';

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
  readonly lastError: ErrorView | null;
  readonly folders: readonly FolderView[];
  readonly consecutiveFailures: number;
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
  private revision = 0;
  private keyCount = 0;
  private consecutiveFailures = 0;
  private readonly folders = new Map<string, FolderState>();

  constructor(
    private readonly options: { readonly maxStalenessMs: number; readonly secretPaths: readonly string[] },
    private readonly now: () => number = Date.now,
  ) {
    for (const path of options.secretPaths) this.folders.set(path, { lastSuccessAt: undefined, secretCount: undefined, lastError: undefined });
  }

  record(outcome: SyncOutcome, nextAttemptAt?: number): void {
    this.lastAttemptAt = outcome.finishedAt;
    this.nextRefreshAt = nextAttemptAt;
    for (const folder of outcome.folders) {
      const state = this.folders.get(folder.path);
      if (!state) continue;
      if (folder.ok) {
        // A folder counts as fresh only when its data reached the files, i.e. the pass succeeded.
        if (outcome.ok) {
          state.lastSuccessAt = outcome.finishedAt;
          state.lastError = undefined;
        }
        state.secretCount = folder.secretCount;
      } else if (folder.error) {
        state.lastError = { error: folder.error, at: outcome.finishedAt };
      }
    }
    if (outcome.ok) {
      this.lastSuccessAt = outcome.finishedAt;
      // A set that is live but not fully published (a top-level link failed) is degraded until a
      // later pass repairs it.
      this.lastError = outcome.publishError ? { error: outcome.publishError, at: outcome.finishedAt } : undefined;
      this.missingKeys = [];
      this.consecutiveFailures = 0;
      this.keyCount = outcome.keyCount;
      this.revision = outcome.revision;
      if (outcome.changed) {
        this.lastChangeAt = outcome.finishedAt;
        this.changedKeys = outcome.changedKeys;
      }
    } else {
      this.consecutiveFailures++;
      this.lastError = outcome.error ? { error: outcome.error, at: outcome.finishedAt } : undefined;
      this.missingKeys = outcome.missingKeys;
    }
  }

  report(): HealthReport {
    const now = this.now();
    const age = this.lastSuccessAt === undefined ? undefined : now - this.lastSuccessAt;
    const status = this.status(age);
    return {
      status,
      healthy: status === 'ok' || status === 'degraded',
      ready: this.lastSuccessAt !== undefined,
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
      lastError: errorView(this.lastError),
      consecutiveFailures: this.consecutiveFailures,
      folders: [...this.folders].map(([path, folder]) => ({
        path,
        lastSuccessAt: iso(folder.lastSuccessAt),
        ageSeconds: folder.lastSuccessAt === undefined ? null : Math.floor((now - folder.lastSuccessAt) / 1000),
        secretCount: folder.secretCount ?? null,
        lastError: errorView(folder.lastError),
      })),
    };
  }

  private status(age: number | undefined): HealthStatus {
    if (this.missingKeys.length > 0) return 'missing_keys';
    if (age === undefined) return this.lastError ? 'failing' : 'starting';
    if (age > this.options.maxStalenessMs) return 'stale';
    return this.lastError ? 'degraded' : 'ok';
  }
}

function iso(time: number | undefined): string | null {
  return time === undefined ? null : new Date(time).toISOString();
}

function errorView(entry: { error: SidecarError; at: number } | undefined): ErrorView | null {
  return entry ? { code: entry.error.code, message: entry.error.message, hint: entry.error.hint, at: new Date(entry.at).toISOString() } : null;
}
