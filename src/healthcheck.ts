/**
 * `healthcheck`: exit 0 when the local /healthz answers 200 within 2 s, 1 otherwise.
 *
 * Docker runs this every few seconds for the lifetime of the container, so it imports nothing but
 * `node:http`: main.ts calls it before loading the rest of the program (which costs ~0.6 s of CPU).
 */
import http from 'node:http';

export function healthcheck(env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const port = Number(env.SIDECAR_HEALTH_PORT ?? 8080);
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 2_000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200 ? 0 : 1);
    });
    request.on('error', () => resolve(1));
    request.on('timeout', () => {
      request.destroy();
      resolve(1);
    });
  });
}
