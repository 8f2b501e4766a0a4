/**
 * One complete pass: fetch every folder → merge into one snapshot → check required keys → derive →
 * lint → render every output → write them all at once. No timers here; `loop.ts` schedules passes.
 *
 * The pass is all-or-nothing: if any folder fails, a required key is missing or a template cannot
 * be rendered (or, with SIDECAR_LINT=error, a value will break its consumer), nothing is written and
 * the last good files stay exactly as they were.
 */
import type { CacheFallback } from '../cache/fallback.js';
import type { Config } from '../config/schema.js';
import { RenderError, SidecarError, toSidecarError } from '../errors.js';
import type { FolderResult, InfisicalClient } from '../infisical/client.js';
import { lintSnapshot, type Finding } from '../lint/index.js';
import type { RepairScope, SetWriter } from '../output/atomic-dir.js';
import type { RoleSync } from '../postgres/role-sync.js';
import { applyDerived, parseTemplate, renderOutputs, type SkippedKey, type Snapshot, type Template } from '../render/index.js';
import { renderWithSecrets, WITH_SECRETS_PATH } from '../render/with-secrets.js';
import { printable } from '../text.js';
import { changedKeys, decodeManifest, digestSnapshot, encodeManifest, type KeyDigests } from './manifest.js';

export interface FolderReport {
  readonly path: string;
  readonly ok: boolean;
  /** Number of secrets the folder returned (imports included), undefined when it failed. */
  readonly secretCount: number | undefined;
  readonly error: SidecarError | undefined;
}

export interface SyncOutcome {
  readonly ok: boolean;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly folders: readonly FolderReport[];
  /** Why the pass failed; undefined on success. */
  readonly error: SidecarError | undefined;
  /**
   * The new set is live (`..data` points to it) but a later step of the write failed, e.g. a
   * top-level link (src/output/atomic-dir.ts, step 3). The pass still counts as a success; the next
   * pass retries the missing step.
   */
  readonly publishError?: SidecarError | undefined;
  readonly missingKeys: readonly string[];
  /** Number of keys in the merged snapshot (derived included). */
  readonly keyCount: number;
  /** Names (never values) of every key in the snapshot, derived included, sorted. Empty on failure. */
  readonly keys: readonly string[];
  /** Whether files were rewritten (false when the content was unchanged, or on failure). */
  readonly changed: boolean;
  readonly revision: number;
  /** The revision the volume held before this pass (0: it never held a set). */
  readonly previousRevision: number;
  /** Names (never values) of keys added, changed or removed since the last good pass. */
  readonly changedKeys: readonly string[];
  readonly bytesWritten: number;
  readonly filesWritten: number;
  /** Keys left out of some output (not an env name, NUL in value, unsafe file name). */
  readonly skipped: readonly SkippedKey[];
  /**
   * Keys whose `NAME=value` exceeds Linux's 128 KiB limit for one environment string: they are in
   * the env file, but a consumer that exports it cannot exec anything. Logged as a warning.
   */
  readonly oversizedForEnv?: readonly string[];
  /** Lint findings for the snapshot (docs/lint-rules.md); empty with SIDECAR_LINT=off. */
  readonly findings?: readonly Finding[];
  /** Keys defined in more than one folder, with the folder that won. */
  readonly overridden: readonly { key: string; from: string; winner: string }[];
  /**
   * Set when Infisical could not be reached at start and the files were written from the
   * last-known-good cache (src/cache/): when its content was last confirmed, its age, and the
   * failure that led there. The loop keeps retrying Infisical as after a failed pass.
   */
  readonly fromCache?: { readonly confirmedAt: number; readonly ageMs: number; readonly fetchError: SidecarError } | undefined;
  /** The cache was refused (e.g. SIDECAR_CACHE_KEY_MISMATCH) or could not be written: a warning, never a failed pass. */
  readonly cacheError?: SidecarError | undefined;
  /**
   * PostgreSQL role sync (src/postgres/role-sync.ts) on a pass that wrote: `pending` — the role is
   * not known to accept the live password yet (the loop retries with backoff, /healthz is
   * `degraded`); `finding` — published, with something to report (trust authentication).
   */
  readonly roleSync?: RoleSyncReport | undefined;
}

/**
 * What role sync adds to a pass. `pending` (a pass that wrote): the role is not known to accept the
 * live password yet; the loop retries with backoff, /healthz is `degraded`. `finding`: something to
 * report (trust authentication; a role that could not be set back after a failed write). `held` (a
 * failed pass): the set an earlier run left on the volume stays live for a role change that waits,
 * so /healthz is `degraded`, not `failing` — PostgreSQL waits for this sidecar's health.
 */
export interface RoleSyncReport {
  readonly pending?: SidecarError | undefined;
  readonly finding?: SidecarError | undefined;
  readonly held?: boolean | undefined;
}

/** What a pass reads from the configuration; `reconfigure` swaps it (config file hot reload). */
export type SyncSettings = Pick<Config, 'secretPaths' | 'requiredKeys' | 'outputs' | 'derived' | 'fileMode' | 'fileUid' | 'fileGid' | 'consumer' | 'lint'>;

export interface SyncDeps {
  readonly settings: SyncSettings;
  readonly client: Pick<InfisicalClient, 'fetchFolders'>;
  readonly writer: SetWriter;
  /** The last-known-good cache (SIDECAR_CACHE_DIR); without it a failed pass is only a failure. */
  readonly cache?: CacheFallback | undefined;
  /** SIDECAR_POSTGRES_PASSWORD_KEY: asked before a set from Infisical is written. */
  readonly roleSync?: RoleSync | undefined;
  readonly now?: () => number;
}

export interface Syncer {
  /** Runs one pass; never throws (the outcome carries the error). `cacheFallback: false` keeps the cache out of it (`once` with SIDECAR_ONCE_ALLOW_CACHE=false). */
  syncOnce(signal?: AbortSignal, options?: { readonly cacheFallback?: boolean }): Promise<SyncOutcome>;
  /** Applies new outputs and derived values from the next pass on; throws (and keeps the old ones) if a template is invalid. */
  reconfigure(settings: SyncSettings): void;
  /** Restores files someone deleted or edited from the last written set; returns what was damaged. */
  repair(scope?: RepairScope): Promise<string[]>;
}

/** What one pass carries from its start into `publish`. */
interface Pass {
  readonly signal: AbortSignal | undefined;
  readonly base: Pick<SyncOutcome, 'startedAt' | 'revision' | 'previousRevision' | 'keys' | 'missingKeys' | 'skipped' | 'overridden' | 'oversizedForEnv' | 'findings'>;
  readonly fail: (error: unknown, folders: readonly FolderReport[], extra?: Partial<SyncOutcome>) => SyncOutcome;
}

/** Throws before the first pass on an invalid template, so `run` and `once` exit with the config code. */
export function createSyncer(deps: SyncDeps): Syncer {
  const now = deps.now ?? Date.now;
  let settings = deps.settings;
  let derived = parseDerivedTemplates(settings.derived);
  /** Digests of the last good snapshot; loaded from the version on disk before the first write. */
  let lastGood: KeyDigests | undefined;
  let loadedFromDisk = false;
  const writeOptions = () => ({ mode: settings.fileMode, uid: settings.fileUid, gid: settings.fileGid });
  const lint = (snapshot: Snapshot) =>
    settings.lint === 'off' ? [] : lintSnapshot(snapshot, { consumer: settings.consumer, requiredKeys: settings.requiredKeys, derivedKeys: [...settings.derived.keys()] });

  async function syncOnce(signal?: AbortSignal, options: { readonly cacheFallback?: boolean } = {}): Promise<SyncOutcome> {
    const startedAt = now();
    const revision = deps.writer.revision;
    const base = { startedAt, revision, previousRevision: revision, keys: [] as string[], missingKeys: [] as string[], skipped: [] as SkippedKey[], overridden: [] as SyncOutcome['overridden'], oversizedForEnv: [] as string[], findings: [] as Finding[] };
    const fail = (error: unknown, folders: readonly FolderReport[], extra: Partial<SyncOutcome> = {}): SyncOutcome => ({
      ...base,
      ok: false,
      finishedAt: now(),
      folders,
      error: toSidecarError(error),
      keyCount: 0,
      changed: false,
      changedKeys: [],
      bytesWritten: 0,
      filesWritten: 0,
      ...extra,
    });

    let results: FolderResult[];
    try {
      results = await deps.client.fetchFolders(settings.secretPaths, signal);
    } catch (error) {
      return fail(error, []);
    }
    const folders = results.map(toFolderReport);
    let fromCache: SyncOutcome['fromCache'];
    const failed = results.find((result) => !result.ok);
    if (failed && !failed.ok) {
      // The folder reports keep Infisical's errors; the files come from the cache when src/cache/policy.ts allows it.
      const error = mostSevere(results);
      const answer = options.cacheFallback === false ? undefined : await deps.cache?.instead(error, signal);
      if (answer?.cache === undefined) return fail(error, folders, { cacheError: answer?.refusal });
      results = answer.cache.folders.map((folder) => ({ ...folder, ok: true }));
      fromCache = { confirmedAt: answer.cache.confirmedAt, ageMs: answer.cache.ageMs, fetchError: error };
    }

    return publish(results, folders, fromCache, { signal, base, fail });
  }

  /**
   * Merge → required keys → derive → lint → render → (role sync) → write. A set from Infisical
   * passes role sync first; a set from the cache does not: it was published before, so its
   * password is one PostgreSQL had.
   */
  async function publish(results: readonly FolderResult[], folders: readonly FolderReport[], fromCache: SyncOutcome['fromCache'], pass: Pass): Promise<SyncOutcome> {
    const { signal, base, fail } = pass;
    const { snapshot: fetched, overridden } = mergeFolders(results);
    const missingKeys = settings.requiredKeys.filter((key) => !fetched.has(key));
    if (missingKeys.length > 0) {
      const error = new SidecarError(
        'SIDECAR_MISSING_REQUIRED_KEYS',
        `required key${missingKeys.length === 1 ? '' : 's'} missing from ${settings.secretPaths.join(', ')}: ${missingKeys.map(printable).join(', ')}`,
      );
      // The near-miss rule names a key spelled almost like the missing one.
      return fail(error, folders, { missingKeys, overridden, findings: lint(fetched) });
    }

    let snapshot: Snapshot;
    let findings: Finding[];
    let rendered: ReturnType<typeof renderOutputs>;
    try {
      snapshot = applyDerived(fetched, derived);
      findings = lint(snapshot);
      const breaking = findings.filter((finding) => finding.severity === 'breaks');
      if (settings.lint === 'error' && breaking.length > 0) {
        const keys = [...new Set(breaking.map((finding) => printable(finding.key)))];
        const error = new SidecarError('SIDECAR_LINT_BREAKS', `value${keys.length === 1 ? '' : 's'} the consumer would misread (SIDECAR_LINT=error): ${keys.join(', ')}`);
        return fail(error, folders, { overridden, findings });
      }
      rendered = renderOutputs(snapshot, settings.outputs);
      // Consumers start through the wrapper that sits next to the env file (docs/rotation.md).
      const envOutput = settings.outputs.find((output) => output.format === 'env');
      if (envOutput) rendered = { ...rendered, files: [...rendered.files, { path: WITH_SECRETS_PATH, content: renderWithSecrets(envOutput.path) }] };
    } catch (error) {
      return fail(error, folders, { overridden });
    }

    try {
      if (!loadedFromDisk) {
        lastGood = decodeManifest(await deps.writer.readManifest());
        loadedFromDisk = true;
      }
      const digests = digestSnapshot(snapshot, await deps.writer.digestKey());
      let roleSync: SyncOutcome['roleSync'];
      if (deps.roleSync && !fromCache) {
        const changed = lastGood === undefined || changedKeys(lastGood, digests).includes(deps.roleSync.key);
        const decision = await deps.roleSync.beforePublish(snapshot, changed, signal);
        if (decision.publish) roleSync = { pending: decision.pending, finding: decision.finding };
        else if (deps.writer.revision > 0) return fail(decision.error, folders, { overridden, skipped: rendered.skipped, findings, roleSync: { held: true } });
        else {
          // Nothing on the volume (a reboot emptied the tmpfs): holding would keep PostgreSQL, which
          // waits for this sidecar's health, down for good. The cache's set carries the password the
          // role had before; without one, the new set goes out and the change is retried.
          const latest = decision.previousKnown ? await deps.cache?.latest() : undefined;
          if (latest) {
            const cached = latest.folders.map((folder) => ({ ...folder, ok: true as const }));
            return publish(cached, folders, { confirmedAt: latest.confirmedAt, ageMs: latest.ageMs, fetchError: decision.error }, pass);
          }
          roleSync = { pending: decision.error };
        }
      }
      let written: Awaited<ReturnType<SetWriter['write']>>;
      try {
        written = await deps.writer.write(rendered.files, writeOptions(), encodeManifest(digests), signal);
      } catch (error) {
        // The volume still serves the old password: the role must have it again. Not cut short by a
        // stop (bounded by SIDECAR_POSTGRES_TIMEOUT): a role left on the new one would lock the app out.
        const rollbackError = await deps.roleSync?.rollback();
        return fail(error, folders, { overridden, skipped: rendered.skipped, findings, roleSync: rollbackError ? { finding: rollbackError } : undefined });
      }
      const changed = changedKeys(lastGood, digests);
      lastGood = digests;
      deps.roleSync?.published(snapshot);
      let cacheError: SidecarError | undefined;
      if (fromCache) deps.cache?.served();
      // A password the role is not known to accept is not kept as "last known good": after a reboot
      // the cache must still hold one the role had.
      else if (roleSync?.pending === undefined) cacheError = await deps.cache?.confirmed(results.flatMap((result) => (result.ok ? [{ path: result.path, secrets: result.secrets }] : [])), pass.base.startedAt);
      return {
        ...base,
        ok: true,
        finishedAt: now(),
        folders,
        error: undefined,
        keys: [...snapshot.keys()].sort(),
        keyCount: snapshot.size,
        changed: written.changed,
        revision: written.revision,
        previousRevision: written.previousRevision,
        changedKeys: written.changed ? changed : [],
        bytesWritten: written.bytesWritten,
        filesWritten: written.filesWritten,
        skipped: rendered.skipped,
        findings,
        overridden,
        oversizedForEnv: settings.outputs.some((output) => output.format === 'env') ? oversizedForEnv(snapshot) : [],
        publishError: written.publishError,
        fromCache,
        cacheError,
        roleSync,
      };
    } catch (error) {
      return fail(error, folders, { overridden, skipped: rendered.skipped, findings });
    }
  }

  return {
    syncOnce,
    reconfigure(next) {
      derived = parseDerivedTemplates(next.derived);
      settings = next;
    },
    repair: (scope) => deps.writer.repair(writeOptions(), scope),
  };
}

/** Templates are checked before the first pass, so a typo fails with the config exit code, not at the first sync. */
function parseDerivedTemplates(sources: ReadonlyMap<string, string>): Map<string, Template> {
  const problems: string[] = [];
  const templates = new Map<string, Template>();
  for (const [key, source] of sources) {
    try {
      templates.set(key, parseTemplate(source));
    } catch (error) {
      problems.push(`derived ${key}: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) throw new RenderError('SIDECAR_TEMPLATE_INVALID', problems.join('; '));
  return templates;
}

/** Folders merge in the configured order: on a duplicate key the later folder wins. */
function mergeFolders(results: readonly FolderResult[]): { snapshot: Map<string, string>; overridden: SyncOutcome['overridden'] } {
  const snapshot = new Map<string, string>();
  const origin = new Map<string, string>();
  const overridden: { key: string; from: string; winner: string }[] = [];
  for (const result of results) {
    if (!result.ok) continue;
    for (const { key, value } of result.secrets) {
      const previous = origin.get(key);
      if (previous !== undefined) overridden.push({ key, from: previous, winner: result.path });
      snapshot.set(key, value);
      origin.set(key, result.path);
    }
  }
  return { snapshot, overridden };
}

/** MAX_ARG_STRLEN: one `NAME=value` string, NUL included, may not exceed 32 pages of 4 KiB. */
const MAX_ENV_STRING_BYTES = 131_072;

function oversizedForEnv(snapshot: Snapshot): string[] {
  return [...snapshot].filter(([key, value]) => Buffer.byteLength(`${key}=${value}`) + 1 > MAX_ENV_STRING_BYTES).map(([key]) => key);
}

function toFolderReport(result: FolderResult): FolderReport {
  return result.ok
    ? { path: result.path, ok: true, secretCount: result.secrets.length, error: undefined }
    : { path: result.path, ok: false, secretCount: undefined, error: result.error };
}

/**
 * The error that best explains a failed pass: one the operator must fix (auth, not found) before
 * one that will pass by itself (timeouts, 5xx), so `once` exits with the actionable code.
 */
function mostSevere(results: readonly FolderResult[]): SidecarError {
  const errors = results.flatMap((result) => (result.ok ? [] : [toSidecarError(result.error)]));
  return errors.find((error) => !error.retryable) ?? errors.find((error) => error.retryAfterMs !== undefined) ?? errors[0]!;
}
