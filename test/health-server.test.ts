/**
 * The health port's rules that need no clock, with real sockets on 127.0.0.1 (events, not timings):
 * - at SIDECAR_HEALTH_MAX_CONNECTIONS a new connection is closed as it is accepted, unanswered, and
 *   the Docker healthcheck tries again and gets the slot a client gives up;
 * - a client that never pauses gets `Connection: close` on its 1,000th answer, never a 503;
 * - a health port in use has its own code and message;
 * - the healthcheck calls the configured host.
 * The cuts that are Node's own server timeouts (slow clients, the healthcheck outlasting them, the
 * sidecar under `ulimit -n 128`) run on the real clock in test/system/health-server.test.ts.
 */
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { ERROR_CATALOGUE } from '../src/errors.js';
import { healthcheck, healthcheckHost } from '../src/healthcheck.js';
import { leakGuard } from './helpers/canaries.js';
import { startSidecar as startHealthPort } from './helpers/health-port.js';
import { glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);

const startSidecar = (extra: Record<string, string>) => startHealthPort(extra, (fake) => guard.seed(fake));

/** Every client still open, destroyed after each test. */
const openClients = new Set<() => void>();
afterEach(() => {
  for (const destroy of openClients) destroy();
});

interface HoldingClient {
  /** Resolves when the connection has closed. */
  readonly closed: Promise<void>;
  readonly isClosed: () => boolean;
  /** What the server sent before closing. */
  readonly received: () => string;
  readonly destroy: () => void;
}

/** A client that connects, sends `head` and nothing more. */
function holdingClient(port: number, head: string): HoldingClient {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  let isClosed = false;
  socket.on('connect', () => socket.write(head));
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  const destroy = () => socket.destroy();
  openClients.add(destroy);
  void closed.then(() => openClients.delete(destroy));
  return { closed, isClosed: () => isClosed, received: () => received, destroy };
}

describe('health port connection cap', () => {
  it('closes a connection beyond SIDECAR_HEALTH_MAX_CONNECTIONS as it is accepted, unanswered; the healthcheck tries again and gets a freed slot', async () => {
    // A minute's request timeout: no client is cut while the test runs, so every close below is the cap's.
    const { app, port, env } = await startSidecar({ SIDECAR_HEALTH_REQUEST_TIMEOUT: '1m', SIDECAR_HEALTH_MAX_CONNECTIONS: '6' });
    let dropped = 0;
    app.server.server.on('drop', () => dropped++);
    const connections = () => new Promise<number>((resolve) => app.server.server.getConnections((_error, count) => resolve(count)));
    const holders = Array.from({ length: 6 }, () => holdingClient(port, 'GET /healthz HTTP/1.1\r\nHost: sidecar\r\n'));
    await waitFor(async () => (await connections()) === 6, 'six connections held by clients that never finish their request');

    const extra = holdingClient(port, 'GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n');
    await extra.closed;
    expect(extra.received(), 'nothing was answered on the 7th connection').toBe('');
    expect(dropped).toBe(1);
    // At once: it was not kept until a slot freed; every holder still has its connection.
    expect(holders.filter((holder) => holder.isClosed())).toEqual([]);
    expect(await connections()).toBe(6);

    // The healthcheck's first attempt lands while every slot is held and is dropped; once a client
    // gives its slot up, the next attempt is answered.
    const checked = healthcheck(env);
    await waitFor(() => dropped >= 2, "the healthcheck's first attempt dropped");
    holders[0]!.destroy();
    expect(await checked).toBe(0);

    const metrics = (await app.server.inject('/metrics')).body;
    expect(metrics).toMatch(new RegExp(`^infisical_sidecar_health_connections_dropped_total ${dropped}$`, 'm'));
    expect(metrics).toMatch(/^infisical_sidecar_health_max_connections 6$/m);
  });
});

describe('health port errors', () => {
  it('a health port in use exits with SIDECAR_HEALTH_PORT_IN_USE, naming the address and the fix', async () => {
    const fake = await startFake();
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const port = (holder.address() as AddressInfo).port;

    const { code, logs } = await runCommand(['run'], glitchtipEnv(fake, makeTempDir(), { SIDECAR_HEALTH_PORT: String(port) }));
    const exiting = logs.lines().find((line) => line.msg === 'exiting');
    expect(exiting).toMatchObject({ code: 'SIDECAR_HEALTH_PORT_IN_USE', hint: ERROR_CATALOGUE.SIDECAR_HEALTH_PORT_IN_USE.hint });
    expect(exiting?.err).toBe(`cannot listen on 127.0.0.1:${port} (SIDECAR_HEALTH_HOST:SIDECAR_HEALTH_PORT): the port is in use by another process`);
    expect(code).toBe(78);
  }, 15_000);
});

describe('healthcheck', () => {
  it('calls the configured SIDECAR_HEALTH_HOST (::1 here), not always 127.0.0.1', async () => {
    const { env } = await startSidecar({ SIDECAR_HEALTH_HOST: '::1' });
    expect(await healthcheck(env)).toBe(0);
  }, 15_000);

  it('calls the loopback address of a wildcard bind, and any other host as configured', () => {
    expect(healthcheckHost('0.0.0.0')).toBe('127.0.0.1');
    expect(healthcheckHost('::')).toBe('::1');
    expect(healthcheckHost('::1')).toBe('::1');
    expect(healthcheckHost('127.0.0.1')).toBe('127.0.0.1');
    expect(healthcheckHost('172.18.0.5')).toBe('172.18.0.5');
    expect(healthcheckHost(undefined)).toBe('127.0.0.1');
  });
});
