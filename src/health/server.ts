/**
 * The health server, built without listening so tests drive it with `inject()`.
 *
 *   GET /healthz  200 while the last complete sync is younger than SIDECAR_MAX_STALENESS, else 503;
 *                 JSON body with per-folder ages, counts and the last error (never a value)
 *   GET /readyz   200 once a complete set of files has been written
 *   GET /livez    200 while the process is serving
 *
 * Its limits keep slow or numerous clients from holding the port, or the process's descriptors
 * (issue 11): a request must arrive whole within SIDECAR_HEALTH_REQUEST_TIMEOUT, and at most
 * SIDECAR_HEALTH_MAX_CONNECTIONS are held at once (fewer when the open-file limit is small, see
 * descriptors.ts); a connection beyond the cap is closed as soon as it is accepted.
 */
import type { Server } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';
import { SidecarError } from '../errors.js';
import { connectionCap, MIN_HEALTH_CONNECTIONS, readDescriptorBudget } from './descriptors.js';
import type { HealthState } from './state.js';

/** Requests one connection may carry before it is closed, so a client that never pauses still gives up its slot now and then. */
const MAX_REQUESTS_PER_CONNECTION = 1_000;
/**
 * Node checks the request and header timeouts of open connections on an interval, 30 s by default:
 * a slow client would be cut up to 30 s late. A quarter second costs a walk over at most
 * SIDECAR_HEALTH_MAX_CONNECTIONS entries.
 */
const TIMEOUT_CHECK_INTERVAL_MS = 250;

export type HealthPortSettings = Pick<Config, 'healthHost' | 'healthPort' | 'healthRequestTimeoutMs' | 'healthMaxConnections' | 'healthFdReserve'>;

export interface HealthServerOptions {
  readonly state: Pick<HealthState, 'report' | 'serializedReport'>;
  /** Extra routes (metrics, webhook) registered by later stages. */
  readonly register?: (app: FastifyInstance) => void;
}

export function buildHealthServer(options: HealthServerOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, return503OnClosing: true, http: { connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS } });

  // A client that never pauses still gives up its slot now and then: the answer to its 1,000th request
  // on one connection says `Connection: close`. Not Node's maxRequestsPerSocket, which answers every
  // later request on the connection with 503 until the client notices: a health endpoint must never
  // say "unhealthy" for that (bench row 5 saw 25,040 such 503s from one keep-alive load generator).
  const served = new WeakMap<object, number>();
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket;
    const count = (served.get(socket) ?? 0) + 1;
    served.set(socket, count);
    if (count >= MAX_REQUESTS_PER_CONNECTION) reply.header('connection', 'close');
    done();
  });

  // `?strict=1`, for monitors: cache mode answers 503 even when SIDECAR_CACHE_HEALTHY lets the healthcheck pass.
  app.get<{ Querystring: { strict?: string } }>('/healthz', async (request, reply) => {
    const { report, body } = options.state.serializedReport();
    const healthy = report.healthy && !(request.query.strict === '1' && report.source === 'cache');
    return reply.code(healthy ? 200 : 503).header('cache-control', 'no-store').type('application/json; charset=utf-8').send(body);
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

/**
 * Listens with the port's limits: SIDECAR_HEALTH_REQUEST_TIMEOUT, and SIDECAR_HEALTH_MAX_CONNECTIONS
 * lowered to keep SIDECAR_HEALTH_FD_RESERVE descriptors free. Throws SIDECAR_HEALTH_FD_LIMIT when the
 * open-file limit leaves fewer than MIN_HEALTH_CONNECTIONS, and SIDECAR_HEALTH_PORT_IN_USE when another
 * process holds the port.
 */
export async function listenHealthServer(app: FastifyInstance, settings: HealthPortSettings): Promise<{ address: string; maxConnections: number }> {
  const budget = readDescriptorBudget();
  const maxConnections = connectionCap(settings.healthMaxConnections, settings.healthFdReserve, budget);
  if (maxConnections < MIN_HEALTH_CONNECTIONS) {
    throw new SidecarError(
      'SIDECAR_HEALTH_FD_LIMIT',
      `the open-file limit (${budget.softLimit}) leaves ${Math.max(0, maxConnections)} connections for the health port after ${budget.open} open descriptors and SIDECAR_HEALTH_FD_RESERVE=${settings.healthFdReserve}; it needs at least ${MIN_HEALTH_CONNECTIONS}`,
    );
  }
  applyLimits(app.server, settings.healthRequestTimeoutMs, maxConnections);
  try {
    const address = await app.listen({ host: settings.healthHost, port: settings.healthPort });
    return { address, maxConnections };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    const host = settings.healthHost.includes(':') ? `[${settings.healthHost}]` : settings.healthHost;
    throw new SidecarError(
      'SIDECAR_HEALTH_PORT_IN_USE',
      `cannot listen on ${host}:${settings.healthPort} (SIDECAR_HEALTH_HOST:SIDECAR_HEALTH_PORT): the port is in use by another process`,
      { cause: error },
    );
  }
}

/**
 * The whole request, headers and body, within `timeoutMs` (408 otherwise); a connection idle for as
 * long (before its request, between keep-alive requests, or not reading its answer) is closed.
 */
function applyLimits(server: Server, timeoutMs: number, maxConnections: number): void {
  server.requestTimeout = timeoutMs;
  server.headersTimeout = timeoutMs;
  server.keepAliveTimeout = timeoutMs;
  server.setTimeout(timeoutMs);
  server.maxConnections = maxConnections;
}
