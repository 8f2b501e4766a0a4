/**
 * Composition root: builds every stage from the config and connects them. Each function here only
 * constructs parts and wires their inputs to outputs; what a part does lives in its own stage.
 */
import type { FastifyInstance } from 'fastify';
import { readCredentials } from './config/credentials.js';
import type { Config } from './config/schema.js';
import { createMetrics, type SidecarMetrics } from './health/metrics.js';
import { buildHealthServer } from './health/server.js';
import { HealthState } from './health/state.js';
import { registerWebhook } from './health/webhook.js';
import { installSdkFetchFence } from './infisical/call-context.js';
import { createInfisicalClient, type InfisicalClient } from './infisical/client.js';
import type { Logger } from './log.js';
import { AtomicDirWriter, assertWritableDir } from './output/atomic-dir.js';
import { DryRunWriter } from './output/dry-run.js';
import type { RenderedFile } from './render/index.js';
import { createReloads } from './reload/index.js';
import { logOutcome } from './sync/log-outcome.js';
import { startRefreshLoop, syncUntilDone, type RefreshLoop } from './sync/loop.js';
import { createSyncer, type SyncOutcome } from './sync/sync-once.js';
import { startWatching, type Watcher } from './sync/watch.js';

export interface App {
  readonly config: Config;
  readonly health: HealthState;
  readonly server: FastifyInstance;
  readonly client: InfisicalClient;
  /** Prometheus metrics, served as GET /metrics. */
  readonly metrics: SidecarMetrics;
  /** `run`: probe the volume, serve /healthz, refresh until `stop()`. */
  start(): Promise<void>;
  /** Ends whatever runs (loop, watcher, reloads, server) and releases the SDK fence; safe after `once` and `check` too. */
  stop(): Promise<void>;
  /** Asks the running loop for an immediate, coalesced refresh. */
  trigger(reason: string): void;
  /** Applies a changed config file (outputs, derived values) from the next pass on; throws if it is invalid. */
  reconfigure(next: Config): void;
  /** `once`: sync until success, an error that needs an operator, or the deadline. */
  once(): Promise<SyncOutcome>;
  /** `check`: everything but the write; returns the files that would be written. */
  check(): Promise<{ outcome: SyncOutcome; files: readonly RenderedFile[] }>;
}

export interface AppOptions {
  readonly fetchClient?: InfisicalClient;
  /** Re-reads the configuration (same environment, new SIDECAR_CONFIG_FILE content) for hot reload. */
  readonly reloadConfig?: () => Config;
}

export function createApp(config: Config, log: Logger, options: AppOptions = {}): App {
  const removeFence = installSdkFetchFence(config.siteUrl);
  const client = options.fetchClient ?? createInfisicalClient({ ...config, credentials: () => readCredentials(config) });
  const writer = new AtomicDirWriter(config.outputDir);
  const health = new HealthState(config);
  const metrics = createMetrics({ health: () => health.report(), clientStats: () => client.stats });
  const timedClient = metrics.instrumentClient(client);
  const syncer = createSyncer({ settings: config, client: timedClient, writer });
  const reloads = createReloads(config, log.child({ component: 'reload' }), (action, outcome, ms) => metrics.recordReload(action, outcome, ms));
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
    reloads.onSynced(outcome);
  };

  const reconfigure = (next: Config) => {
    syncer.reconfigure(next);
    trigger('config changed');
  };

  const watchInputs = (): Watcher =>
    startWatching({
      outputDir: config.outputDir,
      credentialFiles: [config.clientIdFile, config.clientSecretFile].filter((file): file is string => file !== undefined),
      configFile: config.configFile,
      log: log.child({ component: 'watch' }),
      repairOutputs: () => syncer.repair(),
      onCredentialsChanged() {
        client.invalidate();
        trigger('credentials changed');
      },
      onConfigChanged() {
        if (!options.reloadConfig) return {};
        const next = options.reloadConfig();
        reconfigure(next);
        return { outputs: next.outputs.map((o) => `${o.format}:${o.path}`), derivedKeys: [...next.derived.keys()] };
      },
    });

  const prepareOutputDir = async () => {
    await assertWritableDir(config.outputDir);
    await writer.cleanUp();
  };

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
      loop = startRefreshLoop({ policy: config, signal: stopping.signal, syncOnce: (signal) => syncer.syncOnce(signal), onOutcome: record });
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
      removeFence();
    },
    trigger,
    reconfigure,
    async once() {
      await prepareOutputDir();
      return syncUntilDone({ policy: config, deadlineMs: config.onceDeadlineMs, syncOnce: (signal) => syncer.syncOnce(signal), onOutcome: (o) => record(o), signal: stopping.signal });
    },
    async check() {
      const dryWriter = new DryRunWriter();
      const outcome = await createSyncer({ settings: config, client: timedClient, writer: dryWriter }).syncOnce(stopping.signal);
      return { outcome, files: dryWriter.files };
    },
  };
}
