import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

/** A local HTTP endpoint for SIDECAR_RELOAD_URL, recording every reload notification (names only). */
export async function reloadReceiver(): Promise<{ url: string; calls: { revision: number; changedKeys: string[] }[] }> {
  const calls: { revision: number; changedKeys: string[] }[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      calls.push(JSON.parse(body) as { revision: number; changedKeys: string[] });
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/reload`, calls };
}
