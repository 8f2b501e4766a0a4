/**
 * The health port against slow clients on the real clock, with real sockets on 127.0.0.1. Real time
 * is the behaviour here: the cuts are Node's own server timeouts (requestTimeout, headersTimeout and
 * the idle timeout, checked every 250 ms), the tricklers keep a connection busy by sending a byte
 * every 100-200 ms, `healthcheck` retries on its own 4 s budget, and the sidecar under `ulimit -n 128`
 * is a child process refreshing every second.
 * - clients that trickle their headers or body, or send nothing, are cut after
 *   SIDECAR_HEALTH_REQUEST_TIMEOUT;
 * - while slow clients hold every connection, the Docker healthcheck still gets its answer once the
 *   request timeout cuts them;
 * - under a small open-file limit (`ulimit -n 128`), 150 slow clients neither make a rotation fail
 *   nor keep /healthz away: the connection cap leaves SIDECAR_HEALTH_FD_RESERVE descriptors to the sync.
 * The same port's rules that need no clock (the cap closing a connection at once, keep-alive, the
 * healthcheck retrying after a drop) are in test/health-server.test.ts.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { healthcheck } from '../../src/healthcheck.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';
import { leakGuard } from '../helpers/canaries.js';
import { startSidecar as startHealthPort } from '../helpers/health-port.js';
import { glitchtipEnv, startFake } from '../helpers/sidecar.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const guard = leakGuard(2_000);

const startSidecar = (extra: Record<string, string>) => startHealthPort(extra, (fake) => guard.seed(fake));

/** Every slow client still open, destroyed after each test. */
const openClients = new Set<() => void>();
afterEach(() => {
  for (const destroy of openClients) destroy();
});

interface SlowClient {
  /** Milliseconds from connecting until the server closed the connection. */
  readonly closed: Promise<number>;
  /** What the server sent before closing. */
  readonly received: () => string;
  readonly destroy: () => void;
}

/**
 * A client that sends `head` and then one more byte of `trickle` every `everyMs`, never finishing
 * its request (an empty `head` and `trickle`: it connects and sends nothing).
 */
function slowClient(port: number, head: string, trickle: string, everyMs = 100): SlowClient {
  const socket = net.connect(port, '127.0.0.1');
  const connectedAt = Date.now();
  let received = '';
  let sent = 0;
  socket.on('connect', () => socket.write(head));
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const timer = setInterval(() => {
    if (trickle !== '' && socket.writable) socket.write(trickle[sent++ % trickle.length]!);
  }, everyMs);
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      clearInterval(timer);
      resolve(Date.now() - connectedAt);
    }),
  );
  const destroy = () => {
    clearInterval(timer);
    socket.destroy();
  };
  openClients.add(destroy);
  void closed.then(() => openClients.delete(destroy));
  return { closed, received: () => received, destroy };
}

/** Resolves with the time until `client` was closed, or `undefined` if it is still open after `ms`. */
function closedWithin(client: SlowClient, ms: number): Promise<number | undefined> {
  return Promise.race([client.closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms))]);
}

const TRICKLED_HEADERS = ['GET /healthz HTTP/1.1\r\nHost: sidecar\r\n', 'X-Slow: abcdefghijklmnopqrstuvwxyz\r\n'] as const;
/** A body trickled after a signature header the webhook accepts before reading the body (well-formed, signed now). */
const trickledBody = () =>
  [
    `POST /webhook HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nX-Infisical-Signature: t=${Date.now()};${'0'.repeat(64)}\r\n\r\n`,
    '{"event":"secrets.modified"}',
  ] as const;

describe('health port timeouts', () => {
  it('cuts a client that sends nothing, trickles its headers or trickles its body after SIDECAR_HEALTH_REQUEST_TIMEOUT', async () => {
    const { port } = await startSidecar({ SIDECAR_HEALTH_REQUEST_TIMEOUT: '500ms', SIDECAR_WEBHOOK_SECRET: 'webhook-signing-secret' });
    const clients = {
      silent: slowClient(port, '', ''),
      headers: slowClient(port, ...TRICKLED_HEADERS),
      body: slowClient(port, ...trickledBody()),
    };
    // Each sends a byte every 100 ms, so an idle timeout alone would never fire for the tricklers.
    // The cut is due at 500 ms plus at most one 250 ms check; 1.5 s leaves a slow machine 750 ms to
    // notice and close, and a machine ten times slower needs tens of milliseconds for that.
    const closedAfter = Object.fromEntries(await Promise.all(Object.entries(clients).map(async ([name, client]) => [name, await closedWithin(client, 3_000)] as const)));
    for (const [name, ms] of Object.entries(closedAfter)) {
      expect(ms, `${name}: closed after (ms), not still open after 3 s`).toBeDefined();
      expect(ms!, `${name}: not before the timeout`).toBeGreaterThanOrEqual(450);
      expect(ms!, `${name}: within the timeout and one check interval`).toBeLessThan(1_500);
    }
    expect(clients.headers.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(clients.body.received()).toMatch(/^HTTP\/1\.1 408 /);
  }, 15_000);
});

describe('health port connection cap', () => {
  it('closes connections beyond SIDECAR_HEALTH_MAX_CONNECTIONS at once; the healthcheck answers once slow clients are cut', async () => {
    const { app, port, env } = await startSidecar({ SIDECAR_HEALTH_REQUEST_TIMEOUT: '1s', SIDECAR_HEALTH_MAX_CONNECTIONS: '6' });
    const holders = Array.from({ length: 6 }, () => slowClient(port, ...TRICKLED_HEADERS));
    await waitFor(
      () => new Promise<boolean>((resolve) => app.server.server.getConnections((_error, count) => resolve(count === 6))),
      'six connections held by slow clients',
    );

    const extra = slowClient(port, 'GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n', '');
    // Closed as it is accepted: a few milliseconds, 500 ms even ten times slower.
    const extraClosedAfter = await closedWithin(extra, 800);
    expect(extraClosedAfter, 'the 7th connection is closed, not served or kept open').toBeDefined();
    expect(extraClosedAfter!).toBeLessThan(500);
    expect(extra.received(), 'nothing was answered on the 7th connection').toBe('');

    // The healthcheck's first attempt lands while every slot is held; the slow clients are cut at
    // 1 s (plus one 250 ms check), well within the healthcheck's own 4 s.
    const started = Date.now();
    expect(await healthcheck(env)).toBe(0);
    expect(Date.now() - started, 'within the healthcheck budget').toBeLessThan(4_000);
    await Promise.all(holders.map((holder) => holder.closed));

    const metrics = (await app.server.inject('/metrics')).body;
    expect(metrics).toMatch(/^infisical_sidecar_health_connections_dropped_total [1-9]\d*$/m);
    expect(metrics).toMatch(/^infisical_sidecar_health_max_connections 6$/m);
  }, 15_000);
});

describe('descriptors for the sync', () => {
  it('under ulimit -n 128, 150 slow clients neither fail a rotation nor keep /healthz away once they stop', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...glitchtipEnv(fake, dir, {
        SIDECAR_REFRESH_INTERVAL: '1s',
        SIDECAR_REFRESH_JITTER: '0',
        SIDECAR_MAX_STALENESS: '30s',
        SIDECAR_LOG_LEVEL: 'info',
        SIDECAR_HEALTH_REQUEST_TIMEOUT: '2s',
      }),
    };
    const child = spawn('bash', ['-c', 'ulimit -n 128 && exec "$0" --import tsx src/main.ts run', process.execPath], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    let pressing = true;
    onTestFinished(() => {
      pressing = false;
      guard.observe(output);
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const listening = await waitFor(() => /"address":"http:\/\/127\.0\.0\.1:(\d+)","maxConnections":(\d+)/.exec(output), 'the health server listening', 15_000);
    expect(Number(listening[2]), 'the cap keeps SIDECAR_HEALTH_FD_RESERVE (64) of the 128 descriptors free').toBeLessThan(128 - 64);
    const base = `http://127.0.0.1:${listening[1]}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).status === 200, 'the first sync', 15_000, 100);

    // 150 slow clients, each reconnecting 50 ms after the server closes it: the pressure never lets up.
    const press = (): void => {
      if (!pressing) return;
      const client = slowClient(Number(listening[1]), ...TRICKLED_HEADERS, 200);
      void client.closed.then(() => setTimeout(press, 50));
    };
    for (let i = 0; i < 150; i++) press();

    // The child refreshes every second: the rotation is written at its next pass, under pressure.
    const rotated = guard.canary('rotated-under-pressure', 'plain');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    await waitFor(() => readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8') === rotated, 'the rotated value written under pressure', 10_000, 100);

    pressing = false;
    const response = await waitFor(async () => {
      const answer = await fetch(`${base}/healthz`);
      return answer.status === 200 ? answer : undefined;
    }, '/healthz from a fresh client', 5_000, 100);
    guard.observe(await response.text());
    expect(output).not.toMatch(/EMFILE|too many open files/i);
    expect(child.exitCode, `the sidecar is still running: ${output.slice(-1_000)}`).toBeNull();
  }, 40_000);
});

describe('health port keep-alive', () => {
  // Real sockets and Node's own maxRequestsPerSocket: 1,002 requests in a row, CPU-bound under load.
  it('a client that never pauses gets Connection: close on its 1,000th answer, and never a 503 for it', async () => {
    const { port } = await startSidecar({});
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, 'healthy');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => agent.destroy());
    const get = () =>
      new Promise<{ status: number; connection: string | undefined; socket: object }>((resolve, reject) => {
        const request = http.get({ host: '127.0.0.1', port, path: '/healthz', agent }, (response) => {
          response.resume();
          response.on('end', () => resolve({ status: response.statusCode!, connection: response.headers.connection, socket: request.socket! }));
        });
        request.on('error', reject);
      });
    const answers = [];
    for (let i = 0; i < 1_002; i++) answers.push(await get());
    expect(answers.filter((answer) => answer.status !== 200)).toEqual([]);
    expect(answers[998]!.connection).toBe('keep-alive');
    expect(answers[999]!.connection).toBe('close');
    expect(answers[1_000]!.socket).not.toBe(answers[999]!.socket);
  }, 30_000);
});
