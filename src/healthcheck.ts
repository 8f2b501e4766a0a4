/**
 * `healthcheck`: exit 0 when the local /healthz answers 200 within 4 s, 1 otherwise (the image's
 * HEALTHCHECK and the Compose file give it 5 s).
 *
 * It calls SIDECAR_HEALTH_HOST:SIDECAR_HEALTH_PORT, or for a wildcard bind the loopback address of
 * the same family. A connection closed before any answer is what the health port does to connections
 * beyond SIDECAR_HEALTH_MAX_CONNECTIONS, so it tries again every 100 ms until its 4 s are up: clients
 * holding every connection are cut after SIDECAR_HEALTH_REQUEST_TIMEOUT (3 s by default), and the
 * next attempt gets the freed slot (test/health-server.test.ts).
 *
 * Docker runs this every few seconds for the lifetime of the container, so it imports nothing but
 * node built-ins and the exit-code table (`errors.ts`, which imports nothing): main.ts calls it before
 * loading the rest of the program (which costs ~0.6 s of CPU).
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { HEALTHCHECK_EXIT_CODES } from './errors.js';

const BUDGET_MS = 4_000;
const RETRY_AFTER_DROP_MS = 100;
/** SIDECAR_HEALTH_HOST and _PORT defaults (src/config/schema.ts, not imported: it loads zod). */
const DEFAULT_HOST = '0.0.0.0';
const DEFAULT_PORT = 8080;

/** The address to call for a server bound to `configured`: a wildcard bind answers on loopback. */
export function healthcheckHost(configured: string | undefined): string {
  const host = configured?.trim() || DEFAULT_HOST;
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

export async function healthcheck(env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const host = healthcheckHost(env.SIDECAR_HEALTH_HOST);
  const port = Number(env.SIDECAR_HEALTH_PORT?.trim() || DEFAULT_PORT);
  const deadline = Date.now() + BUDGET_MS;
  for (;;) {
    const answer = await getHealthz(host, port, deadline - Date.now());
    if (answer !== 'dropped' || deadline - Date.now() <= RETRY_AFTER_DROP_MS) {
      return answer === 200 ? HEALTHCHECK_EXIT_CODES.healthy : HEALTHCHECK_EXIT_CODES.unhealthy;
    }
    await sleep(RETRY_AFTER_DROP_MS);
  }
}

/** The status of one GET /healthz; `dropped` when the server closed the connection before answering. */
function getHealthz(host: string, port: number, timeoutMs: number): Promise<number | 'dropped' | 'failed'> {
  return new Promise((resolve) => {
    const request = http.get({ host, port, path: '/healthz', timeout: timeoutMs, agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 'failed');
    });
    request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'dropped' : 'failed'));
    request.on('timeout', () => {
      request.destroy();
      resolve('failed');
    });
  });
}
