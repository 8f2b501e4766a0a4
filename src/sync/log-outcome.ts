/**
 * The log lines a pass leaves: names, counts and error codes, never a value. Every key name goes
 * through `printable` here, where it is shown: a name with a newline or a bidi override could
 * otherwise split or reorder the line a person reads. Error messages are already display-safe where
 * they are made (server text in src/infisical/server-text.ts, key names where a message quotes them),
 * because /healthz serves them too; they are not escaped twice.
 */
import type { Logger } from '../log.js';
import { ROLE_SYNC_CODES } from '../postgres/codes.js';
import { formatDuration, printable } from '../text.js';
import type { SyncOutcome } from './sync-once.js';

export function logOutcome(log: Logger, outcome: SyncOutcome, nextAttemptAt: number | undefined): void {
  // Full findings (key, rule, severity, where in the value): they never hold the value.
  for (const { key, ruleId, severity, message, fix } of outcome.findings ?? []) log.warn({ key: printable(key), rule: ruleId, severity, message, fix }, 'lint finding');
  const next = nextAttemptAt === undefined ? undefined : new Date(nextAttemptAt).toISOString();
  const ms = outcome.finishedAt - outcome.startedAt;
  if (outcome.cacheError) {
    const { code, message, hint } = outcome.cacheError;
    log.warn({ code, err: message, hint }, code === 'SIDECAR_CACHE_UNWRITABLE' ? 'last-known-good cache not updated' : 'last-known-good cache not used');
  }
  if (outcome.ok && outcome.fromCache) {
    const { confirmedAt, ageMs, fetchError } = outcome.fromCache;
    log.warn(
      { revision: outcome.revision, keyCount: outcome.keyCount, confirmedAt: new Date(confirmedAt).toISOString(), ageSeconds: Math.floor(ageMs / 1000), code: fetchError.code, err: fetchError.message, next },
      ROLE_SYNC_CODES.has(fetchError.code)
        ? `new database password not yet taken by PostgreSQL and the volume was empty: files written from the last-known-good cache (the password the role had), confirmed ${formatDuration(ageMs)} ago; retrying the role change`
        : `Infisical unreachable at start: files written from the last-known-good cache, confirmed ${formatDuration(ageMs)} ago; still trying Infisical`,
    );
  }
  if (outcome.ok && outcome.roleSync?.pending) {
    const { code, message, hint } = outcome.roleSync.pending;
    log.warn({ code, err: message, hint, next }, 'files written, but PostgreSQL has not been seen to accept the database password in them; retrying');
  }
  if (outcome.roleSync?.finding) {
    const { code, message, hint } = outcome.roleSync.finding;
    log.warn({ code, err: message, hint }, 'PostgreSQL role sync finding');
  }
  if (!outcome.ok) {
    const error = outcome.error;
    const failedFolders = outcome.folders.filter((f) => !f.ok).map((f) => ({ path: f.path, code: f.error?.code, status: f.error?.status }));
    log.warn({ code: error?.code, err: error?.message, hint: error?.hint, status: error?.status, failedFolders, missingKeys: outcome.missingKeys.map(printable), next }, 'sync failed; last good files kept');
    return;
  }
  if (!outcome.changed) {
    log.debug({ revision: outcome.revision, keyCount: outcome.keyCount, ms, next }, 'secrets unchanged');
    return;
  }
  log.info(
    { revision: outcome.revision, keyCount: outcome.keyCount, changedKeys: outcome.changedKeys.map(printable), files: outcome.filesWritten, bytes: outcome.bytesWritten, ms, next },
    'secrets written',
  );
  if (outcome.publishError) {
    const { code, message, hint } = outcome.publishError;
    log.error({ code, err: message, hint }, 'new secrets are live, but a step after the swap failed; retrying at the next refresh');
  }
  for (const { key, from, winner } of outcome.overridden) log.warn({ key: printable(key), from, winner }, 'key defined in more than one folder; the later folder wins');
  for (const { key, output, reason } of outcome.skipped) log.warn({ key: printable(key), output, reason }, 'key left out of an output');
  for (const key of outcome.oversizedForEnv ?? []) {
    log.warn({ key: printable(key) }, 'value longer than the 128 KiB a single environment variable may hold: exporting secrets.env will make exec fail; read it from its keys/ file instead');
  }
}
