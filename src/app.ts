/**
 * Composition root: builds every stage from the config and connects them. Each function here only
 * constructs parts and wires their inputs to outputs; what a part does lives in its own stage.
 */
import type { FastifyInstance } from 'fastify';
import { createCacheFor, prepareCacheDirFor } from './cache/index.js';
import { readCredentials } from './config/credentials.js';
import type { Config } from './config/schema.js';
import type { SidecarError } from './errors.js';
import { heartbeatFor } from './health/heartbeat.js';
import { deferMetrics, type DeferredMetrics } from './health/deferred-metrics.js';
import { buildHealthServer, listenHealthServer } from './health/server.js';
import { HealthState } from './health/state.js';
import { registerWebhook, webhookRefusals } from './health/webhook.js';
import { installSdkFetchFence } from './infisical/call-context.js';
import { createInfisicalClient, type InfisicalClient } from './infisical/client.js';
import type { Logger } from './log.js';
import { AtomicDirWriter, stopsTheWriter } from './output/atomic-dir.js';
import { claimOutputDir } from './output/claim.js';
import { DryRunWriter } from './output/dry-run.js';
import { OutputLease } from './output/lease.js';
import { reloadLedger } from './output/reload-ledger.js';
import { createRoleSyncFor } from './postgres/index.js';
import type { RenderedFile } from './render/index.js';
import { createReloads } from './reload/index.js';
import { logOutcome } from './sync/log-outcome.js';
import { startRefreshLoop, syncUntilDone, type RefreshLoop } from './sync/loop.js';
import { createSyncer, type SyncOutcome } from './sync/sync-once.js';
import type { Watcher } from './sync/watch.js';
import { systemClock, type Clock } from './timers.js';

export interface App {
  readonly config: Config;
  readonly health: HealthState;
  readonly server: FastifyInstance;
  readonly client: InfisicalClient;
  /** Prometheus metrics, served as GET /metrics; prom-client loads after the first pass (`load()`). */
  readonly metrics: DeferredMetrics;
  /**
   * `run`: probe the volume, take its lease (waiting as SIDECAR_LEASE_MODE says; `signal` ends the
   * wait with an AbortError), serve /healthz, refresh until `stop()`.
   */
  start(signal?: AbortSignal): Promise<void>;
  /** Settles when `run` must stop without being asked: the lease was lost, or another tool's files hold the output names. */
  readonly halted: Promise<SidecarError>;
  /** Ends whatever runs (loop, watcher, reloads, server), releases the lease and the SDK fence; safe after `once` and `check` too. */
  stop(): Promise<void>;
  /** Asks the running loop for an immediate, coalesced refresh. */
  trigger(reason: string): void;
  /** Applies a changed config file (outputs, derived values) from the next pass on; throws if it is invalid. */
  reconfigure(next: Config): void;
  /** `once`: sync until success, an error that needs an operator, the deadline, or `signal` (SIGTERM: a write in progress is abandoned). */
  once(signal?: AbortSignal): Promise<SyncOutcome>;
  /** `check`: everything but the write; returns the files that would be written. `signal` cancels it. */
  check(signal?: AbortSignal): Promise<{ outcome: SyncOutcome; files: readonly RenderedFile[] }>;
}

export interface AppOptions {
  readonly fetchClient?: InfisicalClient;
  /** Re-reads the configuration (same environment, new SIDECAR_CONFIG_FILE content) for hot reload. */
  readonly reloadConfig?: () => Config;
  /** What every stage reads the time from and waits on; tests pass one they move themselves. */
  readonly clock?: Clock;
}

export function createApp(config: Config, log: Logger, options: AppOptions = {}): App {
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const removeFence = installSdkFetchFence(config.siteUrl);
  const client = options.fetchClient ?? createInfisicalClient({ ...config, credentials: () => readCredentials(config), clock });
  const lease = new OutputLease(config.outputDir, { ttlMs: config.leaseTtlMs, clock });
  const writer = new AtomicDirWriter(config.outputDir, { fence: lease });
  const health = new HealthState(config, now);
  const heartbeat = heartbeatFor(config, health, log.child({ component: 'heartbeat' }), clock);
  const cache = createCacheFor(config, { configuredClientSecret: () => readCredentials(config).clientSecret, loggedInClientSecret: () => client.loggedInClientSecret() }, clock);
  const roleSync = createRoleSyncFor(config, cache, clock);
  const refusedWebhooks = config.webhookSecret === undefined ? undefined : webhookRefusals();
  const metrics = deferMetrics({
    now,
    health: () => health.report(),
    clientStats: () => client.stats,
    heartbeatCounts: heartbeat && (() => heartbeat.counts()),
    roleCheckCounts: roleSync && (() => roleSync.counts()),
    webhookRefusals: refusedWebhooks && (() => refusedWebhooks.counts()),
  });
  const timedClient = metrics.instrumentClient(client);
  if (roleSync) health.showRoleSync(() => roleSync.view());
  const syncer = createSyncer({ settings: config, client: timedClient, writer, cache, roleSync, now });
  const reloads = createReloads(config, log.child({ component: 'reload' }), (action, outcome, ms) => metrics.recordReload(action, outcome, ms), reloadLedger(config.outputDir), clock);
  const syncLog = log.child({ component: 'sync' });
  const stopping = new AbortController();
  const stopOr = (signal: AbortSignal | undefined) => (signal ? AbortSignal.any([stopping.signal, signal]) : stopping.signal);
  let halt: (error: SidecarError) => void = () => undefined;
  const halted = new Promise<SidecarError>((resolve) => (halt = resolve));
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
        now,
        ...(refusedWebhooks ? { refusals: refusedWebhooks } : {}),
      });
    },
  });

  const record = (outcome: SyncOutcome, nextAttemptAt?: number) => {
    health.record(outcome, nextAttemptAt);
    metrics.recordSync(outcome);
    logOutcome(syncLog, outcome, nextAttemptAt);
    reloads.onSynced(outcome);
    heartbeat?.observe(outcome.ok);
    if (outcome.error && stopsTheWriter(outcome.error)) halt(outcome.error);
  };

  const reconfigure = (next: Config) => {
    syncer.reconfigure(next);
    trigger('config changed');
  };

  // Loaded once the first pass is under way (chokidar is not needed to get the first set out).
  const watchInputs = async (): Promise<Watcher> =>
    (await import('./sync/watch.js')).startWatching({
      outputDir: config.outputDir,
      credentialFiles: [config.clientIdFile, config.clientSecretFile].filter((file): file is string => file !== undefined),
      configFile: config.configFile,
      log: log.child({ component: 'watch' }),
      clock,
      repairOutputs: (scope) => syncer.repair(scope),
      onCredentialsChanged() {
        client.credentialsChanged();
        trigger('credentials changed');
      },
      onConfigChanged() {
        if (!options.reloadConfig) return {};
        const next = options.reloadConfig();
        reconfigure(next);
        return { outputs: next.outputs.map((o) => `${o.format}:${o.path}`), derivedKeys: [...next.derived.keys()] };
      },
    });

  const prepareOutputDir = async (leaseWaitMs: number, signal: AbortSignal) => {
    const { fileUid: uid, fileGid: gid, outputDir: dir } = config;
    await claimOutputDir({ dir, uid, gid, lease, writer, waitMs: leaseWaitMs, signal, log: log.child({ component: 'output' }), onLost: halt });
    await prepareCacheDirFor(config, log.child({ component: 'cache' }));
  };

  return {
    config,
    health,
    server,
    client,
    metrics,
    halted,
    async start(signal) {
      await prepareOutputDir(config.leaseMode === 'standby' ? Number.POSITIVE_INFINITY : config.leaseTtlMs, stopOr(signal));
      await reloads.resume(await writer.revisionOnVolume());
      const { address, maxConnections } = await listenHealthServer(server, config);
      log.child({ component: 'health' }).info({ address, maxConnections }, 'health server listening');
      loop = startRefreshLoop({ policy: config, signal: stopping.signal, syncOnce: (pass) => syncer.syncOnce(pass), onOutcome: record, clock });
      if (config.watch) {
        const started = await watchInputs();
        // stop() may have run while the module loaded: it found no watcher to close.
        if (stopping.signal.aborted) await started.close();
        else {
          watcher = started;
          await watcher.ready;
        }
      }
    },
    async stop() {
      stopping.abort();
      await loop?.done;
      await watcher?.close();
      await reloads.stop();
      await heartbeat?.stop();
      await server.close();
      await lease.release();
      removeFence();
    },
    trigger,
    reconfigure,
    async once(signal) {
      // An init container waits, within its own deadline, for a `run` sidecar still holding the
      // directory, and lets go as soon as its set is written: the `run` sidecar after it takes over at once.
      const deadline = now() + config.onceDeadlineMs;
      await prepareOutputDir(config.onceDeadlineMs, stopOr(signal));
      try {
        const syncOnce = (pass: AbortSignal) => syncer.syncOnce(pass, { cacheFallback: config.onceAllowCache });
        return await syncUntilDone({
          policy: config,
          deadlineMs: Math.max(1, deadline - now()),
          configuredDeadlineMs: config.onceDeadlineMs,
          syncOnce,
          onOutcome: (o) => record(o),
          signal: stopOr(signal),
          clock,
        });
      } finally {
        await lease.release();
      }
    },
    async check(signal) {
      const dryWriter = new DryRunWriter();
      const outcome = await createSyncer({ settings: config, client: timedClient, writer: dryWriter, now }).syncOnce(stopOr(signal));
      return { outcome, files: dryWriter.files };
    },
  };
}
