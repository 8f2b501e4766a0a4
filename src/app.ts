/**
 * Composition root: builds every stage from the config and wires them together. No business logic
 * lives here; each mode (`run`, `once`, `check`) is a few lines over the same parts.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/schema.js';
import { RenderError, type SidecarError } from './errors.js';
import { createMetrics, type SidecarMetrics } from './health/metrics.js';
import { buildHealthServer } from './health/server.js';
import { HealthState } from './health/state.js';
import { createInfisicalClient, type Credentials, type InfisicalClient } from './infisical/client.js';
import type { Logger } from './log.js';
import { AtomicDirWriter, assertWritableDir, type FileToWrite } from './output/atomic-dir.js';
import { parseTemplate, type Template } from './render/index.js';
import { registerWebhook } from './health/webhook.js';
import { commandAction, httpAction } from './reload/actions.js';
import { dockerRestartAction } from './reload/docker.js';
import { ReloadScheduler, type ReloadAction } from './reload/scheduler.js';
import { startRefreshLoop, syncUntilDone, type RefreshLoop } from './sync/loop.js';
import { startWatching, type Watcher } from './sync/watch.js';
import type { RetryPolicy } from './sync/retry.js';
import { createSyncer, type SyncOutcome } from './sync/sync-once.js';

export interface App {
  readonly config: Config;
  readonly health: HealthState;
  readonly server: FastifyInstance;
  readonly client: InfisicalClient;
  /** Prometheus metrics, served as GET /metrics. */
  readonly metrics: SidecarMetrics;
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

export interface AppOptions {
  readonly fetchClient?: InfisicalClient;
  /** Re-reads the configuration (same environment, new SIDECAR_CONFIG_FILE content) for hot reload. */
  readonly reloadConfig?: () => Config;
}

export function createApp(config: Config, log: Logger, options: AppOptions = {}): App {
  // Outputs and derived values can change at run time (config file hot reload); the rest cannot.
  const live = { config, derived: parseDerivedTemplates(config) };
  const client = options.fetchClient ?? createInfisicalClient({ ...config, credentials: () => readCredentials(config) });
  const writer = new AtomicDirWriter(config.outputDir);
  const health = new HealthState(config);
  const metrics = createMetrics({ health: () => health.report(), clientStats: () => client.stats });
  const timedClient = metrics.instrumentClient(client);
  const syncer = createSyncer({
    get config() {
      return live.config;
    },
    get derived() {
      return live.derived;
    },
    client: timedClient,
    writer,
    previousSnapshot: () => previousSnapshotOnDisk(writer, config),
  });
  const reloadLog = log.child({ component: 'reload' });
  const reloads = new ReloadScheduler({
    actions: reloadActions(config),
    debounceMs: config.reloadDebounceMs,
    cooldownMs: config.reloadCooldownMs,
    log: reloadLog,
    onResult: (action, outcome, ms) => metrics.recordReload(action, outcome, ms),
  });
  const policy: RetryPolicy = config;
  const syncLog = log.child({ component: 'sync' });
  const stopping = new AbortController();
  let loop: RefreshLoop | undefined;
  let watcher: Watcher | undefined;
  const trigger = (reason: string) => loop?.trigger(reason);

  const server = buildHealthServer({
    state: health,
    register: (app) => {
      metrics.register(app);
      if (config.webhookSecret === undefined) return;
      registerWebhook(app, {
        secret: config.webhookSecret,
        toleranceMs: config.webhookToleranceMs,
        projectId: config.projectId,
        environment: config.environment,
        secretPaths: config.secretPaths,
        onTrigger: trigger,
        log: log.child({ component: 'webhook' }),
      });
    },
  });

  const record = (outcome: SyncOutcome, nextAttemptAt?: number) => {
    health.record(outcome, nextAttemptAt);
    metrics.recordSync(outcome);
    logOutcome(syncLog, outcome, nextAttemptAt);
    // Revision 1 is the first content this volume ever held: nobody consumed an older value.
    if (outcome.ok && outcome.changed && (outcome.revision > 1 || config.reloadOnFirstWrite)) {
      reloads.notify({ revision: outcome.revision, changedKeys: outcome.changedKeys });
    }
  };

  const writeOptions = { mode: config.fileMode, uid: config.fileUid, gid: config.fileGid };
  function watchInputs(): Watcher {
    const watchLog = log.child({ component: 'watch' });
    return startWatching({
      outputDir: config.outputDir,
      credentialFiles: [config.clientIdFile, config.clientSecretFile].filter((file): file is string => file !== undefined),
      configFile: config.configFile,
      log: watchLog,
      async onOutputEvent() {
        const damaged = await writer.repair(writeOptions);
        if (damaged.length > 0) watchLog.warn({ damaged }, 'output files were deleted or modified by someone else; restored from the last good set');
      },
      onCredentialsChanged() {
        watchLog.info('credential file changed; logging in again');
        client.invalidate();
        trigger('credentials changed');
      },
      onConfigChanged() {
        if (!options.reloadConfig) return;
        try {
          const next = options.reloadConfig();
          live.derived = parseDerivedTemplates(next);
          live.config = next;
          watchLog.info({ outputs: next.outputs.map((o) => `${o.format}:${o.path}`), derivedKeys: [...next.derived.keys()] }, 'config file changed; applied');
          trigger('config changed');
        } catch (error) {
          watchLog.error({ code: (error as SidecarError).code, err: (error as Error).message }, 'config file changed but is invalid; keeping the previous config');
        }
      },
    });
  }

  async function prepareOutputDir(): Promise<void> {
    await assertWritableDir(config.outputDir);
    await writer.cleanUp();
  }

  return {
    config,
    health,
    server,
    client,
    metrics,
    async start() {
      await prepareOutputDir();
      const address = await server.listen({ host: config.healthHost, port: config.healthPort });
      log.child({ component: 'health' }).info({ address }, 'health server listening');
      loop = startRefreshLoop({ policy, signal: stopping.signal, syncOnce: (signal) => syncer.syncOnce(signal), onOutcome: record });
      if (config.watch) {
        watcher = watchInputs();
        await watcher.ready;
      }
    },
    async stop() {
      stopping.abort();
      await loop?.done;
      await watcher?.close();
      await reloads.stop();
      await server.close();
    },
    trigger,
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
      const dry = createSyncer({ config, client: timedClient, writer: dryWriter, derived: live.derived });
      const outcome = await dry.syncOnce(stopping.signal);
      return { outcome, files: captured };
    },
  };
}

/** Reads the JSON output an earlier run left (when JSON is among the outputs) back into a snapshot. */
async function previousSnapshotOnDisk(writer: AtomicDirWriter, config: Config): Promise<Map<string, string> | undefined> {
  const jsonOutput = config.outputs.find((output) => output.format === 'json');
  const content = jsonOutput && (await writer.readCurrent())?.get(jsonOutput.path);
  if (!content) return undefined;
  const parsed = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
  return new Map(Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

function reloadActions(config: Config): ReloadAction[] {
  const actions: ReloadAction[] = [];
  if (config.reloadCommand) actions.push(commandAction(config.reloadCommand, config.reloadTimeoutMs));
  if (config.reloadUrl) actions.push(httpAction(config.reloadUrl, config.reloadTimeoutMs));
  if (config.restartServices.length > 0) {
    actions.push(dockerRestartAction({ endpoint: config.dockerHost, services: config.restartServices, timeoutMs: config.reloadTimeoutMs }));
  }
  return actions;
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
    for (const key of outcome.oversizedForEnv ?? []) {
      log.warn({ key: printableKey(key) }, 'value longer than the 128 KiB a single environment variable may hold: exporting secrets.env will make exec fail; read it from its keys/ file instead');
    }
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
