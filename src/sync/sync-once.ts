/**
 * One complete pass: fetch every folder → merge into one snapshot → check required keys → derive →
 * render every output → write them all at once. No timers here; `loop.ts` schedules passes.
 *
 * The pass is all-or-nothing: if any folder fails, a required key is missing or a template cannot
 * be rendered, nothing is written and the last good files stay exactly as they were.
 */
import type { Config } from '../config/schema.js';
import { SidecarError, toSidecarError } from '../errors.js';
import type { FolderResult, InfisicalClient } from '../infisical/client.js';
import type { AtomicDirWriter } from '../output/atomic-dir.js';
import { applyDerived, renderOutputs, type SkippedKey, type Snapshot, type Template } from '../render/index.js';
import { renderWithSecrets, WITH_SECRETS_PATH } from '../render/with-secrets.js';

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
  readonly missingKeys: readonly string[];
  /** Number of keys in the merged snapshot (derived included). */
  readonly keyCount: number;
  /** Whether files were rewritten (false when the content was unchanged, or on failure). */
  readonly changed: boolean;
  readonly revision: number;
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
  /** Keys defined in more than one folder, with the folder that won. */
  readonly overridden: readonly { key: string; from: string; winner: string }[];
}

export interface SyncDeps {
  readonly config: Pick<Config, 'secretPaths' | 'requiredKeys' | 'outputs' | 'fileMode' | 'fileUid' | 'fileGid'>;
  readonly client: Pick<InfisicalClient, 'fetchFolders'>;
  readonly writer: Pick<AtomicDirWriter, 'write' | 'revision'>;
  readonly derived: ReadonlyMap<string, Template>;
  /**
   * The snapshot an earlier run left on the volume, so the first pass after a restart reports
   * only the keys that really changed while the sidecar was down.
   */
  readonly previousSnapshot?: () => Promise<Snapshot | undefined>;
  readonly now?: () => number;
}

export interface Syncer {
  /** Runs one pass; never throws (the outcome carries the error). */
  syncOnce(signal?: AbortSignal): Promise<SyncOutcome>;
  /** The merged snapshot of the last good pass (for `check` and self-healing); never logged. */
  readonly lastGoodSnapshot: Snapshot | undefined;
}

export function createSyncer(deps: SyncDeps): Syncer {
  const now = deps.now ?? Date.now;
  let lastGood: Snapshot | undefined;

  async function syncOnce(signal?: AbortSignal): Promise<SyncOutcome> {
    const startedAt = now();
    const base = { startedAt, revision: deps.writer.revision, missingKeys: [] as string[], skipped: [] as SkippedKey[], overridden: [] as SyncOutcome['overridden'], oversizedForEnv: [] as string[] };
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
      results = await deps.client.fetchFolders(deps.config.secretPaths, signal);
    } catch (error) {
      return fail(error, []);
    }
    const folders = results.map(toFolderReport);
    const failed = results.find((result) => !result.ok);
    if (failed && !failed.ok) return fail(mostSevere(results), folders);

    const { snapshot: fetched, overridden } = mergeFolders(results);
    const missingKeys = deps.config.requiredKeys.filter((key) => !fetched.has(key));
    if (missingKeys.length > 0) {
      const error = new SidecarError(
        'SIDECAR_MISSING_REQUIRED_KEYS',
        `required key${missingKeys.length === 1 ? '' : 's'} missing from ${deps.config.secretPaths.join(', ')}: ${missingKeys.join(', ')}`,
      );
      return fail(error, folders, { missingKeys, overridden });
    }

    let snapshot: Snapshot;
    let rendered: ReturnType<typeof renderOutputs>;
    try {
      snapshot = applyDerived(fetched, deps.derived);
      rendered = renderOutputs(snapshot, deps.config.outputs);
      // Consumers start through the wrapper that sits next to the env file (docs/rotation.md).
      const envOutput = deps.config.outputs.find((output) => output.format === 'env');
      if (envOutput) rendered = { ...rendered, files: [...rendered.files, { path: WITH_SECRETS_PATH, content: renderWithSecrets(envOutput.path) }] };
    } catch (error) {
      return fail(error, folders, { overridden });
    }

    try {
      lastGood ??= await deps.previousSnapshot?.().catch(() => undefined);
      const written = await deps.writer.write(rendered.files, { mode: deps.config.fileMode, uid: deps.config.fileUid, gid: deps.config.fileGid });
      const changedKeys = diffKeys(lastGood, snapshot);
      lastGood = snapshot;
      return {
        ...base,
        ok: true,
        finishedAt: now(),
        folders,
        error: undefined,
        keyCount: snapshot.size,
        changed: written.changed,
        revision: written.revision,
        changedKeys: written.changed ? changedKeys : [],
        bytesWritten: written.bytesWritten,
        filesWritten: written.filesWritten,
        skipped: rendered.skipped,
        overridden,
        oversizedForEnv: deps.config.outputs.some((output) => output.format === 'env') ? oversizedForEnv(snapshot) : [],
      };
    } catch (error) {
      return fail(error, folders, { overridden, skipped: rendered.skipped });
    }
  }

  return {
    syncOnce,
    get lastGoodSnapshot() {
      return lastGood;
    },
  };
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

function diffKeys(previous: Snapshot | undefined, next: Snapshot): string[] {
  const changed: string[] = [];
  for (const [key, value] of next) if (previous?.get(key) !== value) changed.push(key);
  for (const key of previous?.keys() ?? []) if (!next.has(key)) changed.push(key);
  return changed.sort();
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
