import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import type { OnFinished } from './temp-dir.js';

/** One request the receiver got: what a push monitor would record. */
export interface ReceivedPing {
  readonly method: string;
  /** Path and query, as sent. */
  readonly target: string;
  readonly authorization: string | undefined;
  readonly body: string;
}

/** How the receiver answers: a status code, a redirect to `location`, or never (the socket stays open). */
export type ReceiverAnswer = { readonly status: number } | { readonly redirectTo: string } | 'hang';

export interface HeartbeatReceiver {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly pings: ReceivedPing[];
  answer(next: ReceiverAnswer): void;
  /** Requests still waiting for an answer (with `hang`). */
  readonly waiting: () => number;
}

/**
 * A push-monitor stand-in on 127.0.0.1 (healthchecks.io, Uptime Kuma, GlitchTip's heartbeat
 * endpoint all reduce to this): records every request, answers 200 unless told otherwise.
 */
export async function heartbeatReceiver(onFinished: OnFinished = onTestFinished): Promise<HeartbeatReceiver> {
  const pings: ReceivedPing[] = [];
  const hanging = new Set<http.ServerResponse>();
  let answer: ReceiverAnswer = { status: 200 };
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      pings.push({ method: request.method ?? '', target: request.url ?? '', authorization: request.headers.authorization, body });
      if (answer === 'hang') {
        hanging.add(response);
        response.on('close', () => hanging.delete(response));
      } else if ('redirectTo' in answer) {
        response.writeHead(302, { location: answer.redirectTo }).end();
      } else {
        response.writeHead(answer.status).end('OK');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pings,
    answer(next) {
      answer = next;
    },
    waiting: () => hanging.size,
  };
}
