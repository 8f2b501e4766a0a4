/**
 * `healthcheck`: exit 0 when the local /healthz answers 200 within 2 s, 1 otherwise.
 *
 * Docker runs this every few seconds for the lifetime of the container, so it imports nothing but
 * `node:http` and the exit-code table (`errors.ts`, which imports nothing): main.ts calls it before
 * loading the rest of the program (which costs ~0.6 s of CPU).
 */
import http from 'node:http';
import { HEALTHCHECK_EXIT_CODES } from './errors.js';

export function healthcheck(env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const port = Number(env.SIDECAR_HEALTH_PORT ?? 8080);
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 2_000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200 ? HEALTHCHECK_EXIT_CODES.healthy : HEALTHCHECK_EXIT_CODES.unhealthy);
    });
    request.on('error', () => resolve(HEALTHCHECK_EXIT_CODES.unhealthy));
    request.on('timeout', () => {
      request.destroy();
      resolve(HEALTHCHECK_EXIT_CODES.unhealthy);
    });
  });
}
