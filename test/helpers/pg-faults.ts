/** Helpers for the role sync fault tests: roles set by verifier, a proxy that can freeze PostgreSQL's answers, psql logins. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { scramSha256Verifier } from '../../src/postgres/scram.js';
import { DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';
import type { FakeInfisical } from '../fake-infisical/server.js';
import type { TestPostgres } from './postgres.js';

export async function newRole(pg: TestPostgres, role: string, password: string): Promise<void> {
  await pg.query(`CREATE ROLE ${role} LOGIN`);
  await pg.query(`ALTER ROLE ${role} PASSWORD '${scramSha256Verifier(password)}'`);
}
export async function setByVerifier(pg: TestPostgres, role: string, password: string): Promise<void> {
  await pg.query(`ALTER ROLE ${role} PASSWORD '${scramSha256Verifier(password)}'`);
}
export function logsIn(pg: TestPostgres, role: string, password: string, port = pg.port, db = 'postgres'): boolean {
  const result = spawnSync(path.join(pg.bindir, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', role, '-d', db, '-w', '-tAc', 'select 1'], {
    env: { PATH: process.env.PATH, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' },
    encoding: 'utf8',
  });
  return result.status === 0 && result.stdout.trim() === '1';
}
export function rotate(fake: FakeInfisical, value: string, folder = DEMO_DATABASE_PATH): string {
  fake.setSecret(DEMO_ENVIRONMENT, folder, 'POSTGRES_PASSWORD', value);
  return value;
}
export const keyFile = (dir: string) => readFileSync(path.join(dir, 'keys', 'POSTGRES_PASSWORD'), 'utf8');
export function roleSyncEnv(role: string, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return { SIDECAR_POSTGRES_PASSWORD_KEY: 'POSTGRES_PASSWORD', SIDECAR_POSTGRES_URL: `postgres://${role}@127.0.0.1:${port}/postgres?sslmode=disable`, SIDECAR_POSTGRES_TIMEOUT: '1s', ...extra };
}

/**
 * A proxy in front of the real PostgreSQL that counts connections. With `freezeOnTerminate`, when the
 * client sends Terminate ('X'), the proxy stops forwarding in both directions and keeps both sockets
 * open: what the sidecar sees when the backend freezes (docker pause, SIGSTOP, a stalled VM) right
 * after answering.
 */
export async function proxy(pgPort: number, options: { freezeOnTerminate?: boolean } = {}) {
  const sockets = new Set<Socket>();
  const state = { port: 0, connections: 0, freezeOnTerminate: options.freezeOnTerminate ?? false, frozen: 0 };
  const server: Server = createServer((client) => {
    state.connections++;
    const upstream = createConnection({ port: pgPort, host: '127.0.0.1' });
    let frozen = false;
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => {
      if (frozen) return;
      if (state.freezeOnTerminate && chunk.length >= 5 && chunk[0] === 0x58 && chunk.readInt32BE(1) === 4) {
        // Frozen: nothing forwarded any more, and the client's FIN is not answered.
        frozen = true;
        state.frozen++;
        (client as unknown as { allowHalfOpen: boolean }).allowHalfOpen = true;
        upstream.removeAllListeners('end');
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!frozen) client.write(chunk);
    });
    client.on('end', () => { if (!frozen) upstream.end(); });
    upstream.on('end', () => { if (!frozen) client.end(); });
    upstream.on('close', () => { if (!frozen) client.destroy(); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as { port: number }).port;
  onTestFinished(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return state;
}
