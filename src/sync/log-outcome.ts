/**
 * The log lines a pass leaves: names, counts and error codes, never a value.
 */
import type { Logger } from '../log.js';
import { printable } from '../text.js';
import type { SyncOutcome } from './sync-once.js';

export function logOutcome(log: Logger, outcome: SyncOutcome, nextAttemptAt: number | undefined): void {
  const next = nextAttemptAt === undefined ? undefined : new Date(nextAttemptAt).toISOString();
  const ms = outcome.finishedAt - outcome.startedAt;
  if (!outcome.ok) {
    const error = outcome.error;
    const failedFolders = outcome.folders.filter((f) => !f.ok).map((f) => ({ path: f.path, code: f.error?.code, status: f.error?.status }));
    log.warn({ code: error?.code, err: error?.message, hint: error?.hint, status: error?.status, failedFolders, missingKeys: outcome.missingKeys, next }, 'sync failed; last good files kept');
    return;
  }
  if (!outcome.changed) {
    log.debug({ revision: outcome.revision, keyCount: outcome.keyCount, ms, next }, 'secrets unchanged');
    return;
  }
  log.info(
    { revision: outcome.revision, keyCount: outcome.keyCount, changedKeys: outcome.changedKeys, files: outcome.filesWritten, bytes: outcome.bytesWritten, ms, next },
    'secrets written',
  );
  if (outcome.publishError) {
    const { code, message, hint } = outcome.publishError;
    log.error({ code, err: message, hint }, 'new secrets are live, but a step after the swap failed; retrying at the next refresh');
  }
  for (const { key, from, winner } of outcome.overridden) log.warn({ key, from, winner }, 'key defined in more than one folder; the later folder wins');
  for (const { key, output, reason } of outcome.skipped) log.warn({ key: printable(key), output, reason }, 'key left out of an output');
  for (const key of outcome.oversizedForEnv ?? []) {
    log.warn({ key: printable(key) }, 'value longer than the 128 KiB a single environment variable may hold: exporting secrets.env will make exec fail; read it from its keys/ file instead');
  }
}
