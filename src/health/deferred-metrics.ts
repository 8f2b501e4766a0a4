/**
 * The metrics as the composition root wires them (issue 19): prom-client and its registry are loaded
 * after the first write, off the path to the first healthy answer, or by the first scrape if that
 * comes sooner. What happens before (the first pass, its folder fetches, webhook answers, dropped
 * connections) is kept and replayed, so the counters miss nothing.
 *
 * The parts that must exist before the health server listens live here and need no prom-client: the
 * `GET /metrics` route (Fastify takes no routes once it listens), the response hook, and the client
 * wrapper that times each folder fetch.
 */
import type { FastifyInstance } from 'fastify';
import { SidecarError } from '../errors.js';
import type { FolderResult, InfisicalClient } from '../infisical/client.js';
import type { ReloadOutcome } from '../reload/scheduler.js';
import type { SyncOutcome } from '../sync/sync-once.js';
import type { Clock } from '../timers.js';
import type { MetricsSources, SidecarMetrics } from './metrics.js';

export interface DeferredMetrics {
  /** Loads prom-client and replays what was recorded so far; the same promise every time. */
  load(): Promise<SidecarMetrics>;
  recordSync(outcome: SyncOutcome): void;
  recordReload(action: string, outcome: ReloadOutcome, ms: number): void;
  /** Wraps a client so each folder fetch is timed; the client itself stays SDK-only. */
  instrumentClient(client: InfisicalClient): InfisicalClient;
  /** Adds `GET /metrics`, the webhook counter and the dropped-connection counter to the health server. */
  register(app: FastifyInstance): void;
}

/** `clock`: what folder fetches are timed on; default `performance.now` (a test passes a manual clock to time them exactly). */
export function deferMetrics(sources: Omit<MetricsSources, 'maxConnections'>, options: { readonly clock?: Clock } = {}): DeferredMetrics {
  const { clock } = options;
  const elapsedNow = clock ? () => clock.now() : () => performance.now();
  let loaded: SidecarMetrics | undefined;
  let loading: Promise<SidecarMetrics> | undefined;
  let queue: ((metrics: SidecarMetrics) => void)[] = [];
  let server: FastifyInstance | undefined;
  const record = (event: (metrics: SidecarMetrics) => void) => {
    if (loaded) event(loaded);
    else queue.push(event);
  };
  const load = () =>
    (loading ??= import('./metrics.js').then(({ createMetrics }) => {
      const metrics = createMetrics({ ...sources, maxConnections: () => server?.server.maxConnections ?? 0 });
      for (const event of queue) event(metrics);
      queue = [];
      loaded = metrics;
      return metrics;
    }));

  return {
    load,
    recordSync(outcome) {
      record((metrics) => metrics.recordSync(outcome));
      // After the first pass, whatever its outcome: the files (or the failure) are what start-up is for.
      if (!loading) setImmediate(() => void load());
    },
    recordReload: (action, outcome, ms) => record((metrics) => metrics.recordReload(action, outcome, ms)),
    instrumentClient: (client) => ({
      get stats() {
        return client.stats;
      },
      credentialsChanged: () => client.credentialsChanged(),
      loggedInClientSecret: () => client.loggedInClientSecret(),
      // One call per folder, all at once: the same concurrency (and the same shared login) as a
      // single call with every path, since the client fetches each path independently anyway.
      fetchFolders: (paths, signal) =>
        Promise.all(
          paths.map(async (path): Promise<FolderResult> => {
            const started = elapsedNow();
            const [result] = await client.fetchFolders([path], signal);
            const outcome: FolderResult = result ?? { path, ok: false, error: missingResult(path) };
            const seconds = (elapsedNow() - started) / 1000;
            record((metrics) => metrics.recordFetch(path, outcome.ok, seconds));
            return outcome;
          }),
        ),
    }),
    register(app) {
      server = app;
      app.server.on('drop', () => record((metrics) => metrics.recordDrop()));
      app.get('/metrics', async (_request, reply) => {
        const { registry } = await load();
        const body = await registry.metrics();
        return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(body);
      });
      // A callback hook, not an async one: it runs on every response (/healthz included), and an
      // async hook costs a promise and a microtask per request (bench row 5).
      app.addHook('onResponse', (request, reply, done) => {
        if (request.method === 'POST' && request.routeOptions.url === '/webhook') record((metrics) => metrics.recordWebhook(reply.statusCode));
        done();
      });
    },
  };
}

function missingResult(path: string): SidecarError {
  // Only a broken client returns fewer results than paths; report it as the catch-all code.
  return new SidecarError('SIDECAR_UNEXPECTED', `the Infisical client returned no result for folder ${path}`, { retryable: true });
}
