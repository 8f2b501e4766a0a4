/**
 * Composition root: builds every stage from the config and wires them together. No business logic
 * lives here; each mode (`run`, `once`, `check`) is a few lines over the same parts.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/schema.js';
import { RenderError, type SidecarError } from './errors.js';
import { buildHealthServer } from './health/server.js';
import { HealthState } from './health/state.js';
import { createInfisicalClient, type Credentials, type InfisicalClient } from './infisical/client.js';
import type { Logger } from './log.js';
import { AtomicDirWriter, assertWritableDir, type FileToWrite } from './output/atomic-dir.js';
import { parseTemplate, type Template } from './render/index.js';
import { startRefreshLoop, syncUntilDone, type RefreshLoop } from './sync/loop.js';
import type { RetryPolicy } from './sync/retry.js';
import { createSyncer, type SyncOutcome } from './sync/sync-once.js';

export interface App {
  readonly config: Config;
  readonly health: HealthState;
  readonly server: FastifyInstance;
  readonly client: InfisicalClient;
  /** `run`: probe the volume, serve /healthz, refresh until `stop()`. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Asks the running loop for an immediate, coalesced refresh. */
  trigger(reason: string): void;
  /** `once`: sync until success, an error that needs an operator, or the deadline. */
  once(): Promise<SyncOutcome>;
  /** `check`: everything but the write; returns the files that would be written. */
  check(): Promise<{ outcome: SyncOutcome; files: readonly FileToWrite[] }>;
}

export function createApp(config: Config, log: Logger, options: { readonly fetchClient?: InfisicalClient } = {}): App {
  const derived = parseDerivedTemplates(config);
  const client = options.fetchClient ?? createInfisicalClient({ ...config, credentials: () => readCredentials(config) });
  const writer = new AtomicDirWriter(config.outputDir);
  const syncer = createSyncer({ config, client, writer, derived });
  const health = new HealthState(config);
  const server = buildHealthServer({ state: health });
  const policy: RetryPolicy = config;
  const syncLog = log.child({ component: 'sync' });
  const stopping = new AbortController();
  let loop: RefreshLoop | undefined;

  const record = (outcome: SyncOutcome, nextAttemptAt?: number) => {
    health.record(outcome, nextAttemptAt);
    logOutcome(syncLog, outcome, nextAttemptAt);
  };

  async function prepareOutputDir(): Promise<void> {
    await assertWritableDir(config.outputDir);
    await writer.cleanUp();
  }

  return {
    config,
    health,
    server,
    client,
    async start() {
      await prepareOutputDir();
      const address = await server.listen({ host: config.healthHost, port: config.healthPort });
      log.child({ component: 'health' }).info({ address }, 'health server listening');
      loop = startRefreshLoop({ policy, signal: stopping.signal, syncOnce: (signal) => syncer.syncOnce(signal), onOutcome: record });
    },
    async stop() {
      stopping.abort();
      await loop?.done;
      await server.close();
    },
    trigger(reason) {
      loop?.trigger(reason);
    },
    async once() {
      await prepareOutputDir();
      return syncUntilDone({ policy, deadlineMs: config.onceDeadlineMs, syncOnce: (signal) => syncer.syncOnce(signal), onOutcome: (o) => record(o), signal: stopping.signal });
    },
    async check() {
      const captured: FileToWrite[] = [];
      const dryWriter = {
        revision: 0,
        async write(files: readonly FileToWrite[]) {
          captured.push(...files);
          return { changed: true, revision: 0, bytesWritten: 0, filesWritten: 0, changedPaths: [] };
        },
      };
      const dry = createSyncer({ config, client, writer: dryWriter, derived });
      const outcome = await dry.syncOnce(stopping.signal);
      return { outcome, files: captured };
    },
  };
}

/** Templates are checked once at start, so a typo fails with the config exit code, not at the first sync. */
function parseDerivedTemplates(config: Config): Map<string, Template> {
  const problems: string[] = [];
  const templates = new Map<string, Template>();
  for (const [key, source] of config.derived) {
    try {
      templates.set(key, parseTemplate(source));
    } catch (error) {
      problems.push(`derived ${key}: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) throw new RenderError('SIDECAR_TEMPLATE_INVALID', problems.join('; '));
  return templates;
}

/** Credentials are re-read from their files at every login, so a rotated client secret is used at once. */
function readCredentials(config: Config): Credentials {
  const read = (file: string | undefined, fallback: string) => {
    if (file === undefined) return fallback;
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '').trim() || fallback;
    } catch {
      return fallback;
    }
  };
  return { clientId: read(config.clientIdFile, config.clientId), clientSecret: read(config.clientSecretFile, config.clientSecret) };
}

function logOutcome(log: Logger, outcome: SyncOutcome, nextAttemptAt: number | undefined): void {
  const next = nextAttemptAt === undefined ? undefined : new Date(nextAttemptAt).toISOString();
  const ms = outcome.finishedAt - outcome.startedAt;
  if (outcome.ok) {
    if (!outcome.changed) {
      log.debug({ revision: outcome.revision, keyCount: outcome.keyCount, ms, next }, 'secrets unchanged');
      return;
    }
    log.info(
      { revision: outcome.revision, keyCount: outcome.keyCount, changedKeys: outcome.changedKeys, files: outcome.filesWritten, bytes: outcome.bytesWritten, ms, next },
      'secrets written',
    );
    for (const { key, from, winner } of outcome.overridden) log.warn({ key, from, winner }, 'key defined in more than one folder; the later folder wins');
    for (const { key, output, reason } of outcome.skipped) log.warn({ key: printableKey(key), output, reason }, 'key left out of an output');
    return;
  }
  const error = outcome.error as SidecarError;
  const failedFolders = outcome.folders.filter((f) => !f.ok).map((f) => ({ path: f.path, code: f.error?.code, status: f.error?.status }));
  log.warn({ code: error.code, err: error.message, hint: error.hint, status: error.status, failedFolders, missingKeys: outcome.missingKeys, next }, 'sync failed; last good files kept');
}

/** Key names go into logs; control characters in hostile names are escaped so a log line stays one line. */
function printableKey(key: string): string {
  return JSON.stringify(key).slice(1, -1);
}
