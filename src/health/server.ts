/**
 * The health server, built without listening so tests drive it with `inject()`.
 *
 *   GET /healthz  200 while the last complete sync is younger than SIDECAR_MAX_STALENESS, else 503;
 *                 JSON body with per-folder ages, counts and the last error (never a value)
 *   GET /readyz   200 once a complete set of files has been written
 *   GET /livez    200 while the process is serving
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { HealthState } from './state.js';

export interface HealthServerOptions {
  readonly state: Pick<HealthState, 'report'>;
  /** Extra routes (metrics, webhook) registered by later stages. */
  readonly register?: (app: FastifyInstance) => void;
}

export function buildHealthServer(options: HealthServerOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, return503OnClosing: true });

  app.get('/healthz', async (_request, reply) => {
    const report = options.state.report();
    return reply.code(report.healthy ? 200 : 503).header('cache-control', 'no-store').send(report);
  });

  app.get('/readyz', async (_request, reply) => {
    const report = options.state.report();
    return reply.code(report.ready ? 200 : 503).send({ ready: report.ready, revision: report.revision });
  });

  app.get('/livez', async () => ({ live: true }));

  // Fastify's default 404/500 bodies echo the URL; keep them, but never include request bodies.
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    return reply.code(status).send({ error: status >= 500 ? 'internal error' : error.message });
  });

  options.register?.(app);
  return app;
}
