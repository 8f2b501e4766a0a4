/** Role sync decisions against a real PostgreSQL in the states an operator will meet. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { createRoleSync } from '../../src/postgres/role-sync.js';
import { logsIn, newRole } from '../helpers/pg-faults.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

let pg: TestPostgres;
let n = 0;
beforeAll(async () => { pg = await startPostgres({ logStatements: true }); }, 60_000);
afterAll(async () => { await pg.stop(); });

const sync = (role: string, known: string[] = [], db = 'postgres', timeoutMs = 2000) =>
  createRoleSync({ key: 'POSTGRES_PASSWORD', target: { host: '127.0.0.1', port: pg.port, role, database: db, sslMode: 'disable', sslRootCert: undefined }, timeoutMs, whenUnreachable: 'hold', knownElsewhere: async () => known });
const set = (v: string) => new Map([['POSTGRES_PASSWORD', v]]);
const summary = (d: Awaited<ReturnType<ReturnType<typeof sync>['beforePublish']>>) =>
  d.publish ? `publish pending=${d.pending?.code ?? '-'} finding=${d.finding?.code ?? '-'}` : `HOLD ${d.error.code}: ${d.error.message}`;

async function hba(line: string): Promise<void> {
  const file = path.join(path.dirname(pg.logFile), 'data', 'pg_hba.conf');
  writeFileSync(file, `${line}\n${readFileSync(file, 'utf8')}`);
  // The reload is asynchronous: wait until the server says it has loaded the configuration again.
  const loadedBefore = (await pg.query<{ t: string }>('select pg_conf_load_time()::text as t')).rows[0]!.t;
  await pg.query('select pg_reload_conf()');
  await waitFor(async () => (await pg.query<{ t: string }>('select pg_conf_load_time()::text as t')).rows[0]!.t !== loadedBefore, 'PostgreSQL reloaded pg_hba.conf');
}

describe('role sync in the PostgreSQL states an operator meets', () => {
  it('read-only role (default_transaction_read_only=on)', async () => {
    const role = `ro_${++n}`;
    await newRole(pg, role, 'old-pass-ro-1');
    await pg.query(`ALTER ROLE ${role} SET default_transaction_read_only = on`);
    const d = await sync(role, ['old-pass-ro-1']).beforePublish(set('new-pass-ro-2'), true);
    expect(summary(d)).toMatch(/^HOLD SIDECAR_POSTGRES_FAILED: .*SQLSTATE 25006/);
    expect(logsIn(pg, role, 'old-pass-ro-1')).toBe(true);
  });
  it('CONNECTION LIMIT 0', async () => {
    const role = `cl_${++n}`;
    await newRole(pg, role, 'old-pass-cl-1');
    await pg.query(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
    const d = await sync(role, ['old-pass-cl-1']).beforePublish(set('new-pass-cl-2'), true);
    expect(summary(d)).toMatch(/^HOLD SIDECAR_POSTGRES_UNREACHABLE: .*took no connection now \(SQLSTATE 53300\)/);
  });
  it('database in the URL missing', async () => {
    const role = `db_${++n}`;
    await newRole(pg, role, 'old-pass-db-1');
    const d = await sync(role, ['old-pass-db-1'], 'no_such_db').beforePublish(set('new-pass-db-2'), true);
    expect(summary(d)).toMatch(/^HOLD SIDECAR_POSTGRES_FAILED: .*SQLSTATE 3D000/);
  });
  it('role missing', async () => {
    const d = await sync('no_such_role', ['old-pass-nr-1']).beforePublish(set('new-pass-nr-2'), true);
    expect(summary(d)).toMatch(/^HOLD SIDECAR_POSTGRES_ROLE_REFUSED: .*or the role does not exist/);
  });
  it('VALID UNTIL in the past', async () => {
    const role = `vu_${++n}`;
    await newRole(pg, role, 'old-pass-vu-1');
    await pg.query(`ALTER ROLE ${role} VALID UNTIL '2000-01-01'`);
    const d = await sync(role, ['old-pass-vu-1']).beforePublish(set('new-pass-vu-2'), true);
    expect(summary(d)).toMatch(/^HOLD SIDECAR_POSTGRES_ROLE_REFUSED: .*VALID UNTIL/);
  });
  it('NOLOGIN role', async () => {
    const role = `nl_${++n}`;
    await newRole(pg, role, 'old-pass-nl-1');
    await pg.query(`ALTER ROLE ${role} NOLOGIN`);
    const d = await sync(role, ['old-pass-nl-1']).beforePublish(set('new-pass-nl-2'), true);
    expect(summary(d)).toMatch(/^HOLD SIDECAR_POSTGRES_FAILED: .*SQLSTATE 28000/);
  });
  it('md5-stored password with hba md5 (a PostgreSQL 13-era cluster)', async () => {
    const role = `md_${++n}`;
    await hba(`host all ${role} 127.0.0.1/32 md5`);
    await pg.query(`SET password_encryption = 'md5'`);
    await pg.query(`CREATE ROLE ${role} LOGIN PASSWORD 'old-pass-md-1'`);
    await pg.query(`SET password_encryption = 'scram-sha-256'`);
    const d = await sync(role, ['old-pass-md-1']).beforePublish(set('new-pass-md-2'), true);
    const { rows } = await pg.query<{ p: string }>(`select left(rolpassword, 14) as p from pg_authid where rolname = $1`, [role]);
    expect(summary(d)).toBe('publish pending=- finding=-');
    expect(rows[0]?.p).toBe('SCRAM-SHA-256$');
    expect(logsIn(pg, role, 'new-pass-md-2')).toBe(true);
  });
  it('hba trust for the role', async () => {
    const role = `tr_${++n}`;
    await hba(`host all ${role} 127.0.0.1/32 trust`);
    await newRole(pg, role, 'old-pass-tr-1');
    const s = sync(role, ['old-pass-tr-1']);
    const d = await s.beforePublish(set('new-pass-tr-2'), true);
    expect(summary(d)).toBe('publish pending=- finding=SIDECAR_POSTGRES_TRUST_AUTH');
    expect(s.view().lastResult).toBe('trust');
  });
  it('hba password (cleartext over the wire, sslmode=disable)', async () => {
    const role = `pw_${++n}`;
    await hba(`host all ${role} 127.0.0.1/32 password`);
    await newRole(pg, role, 'old-pass-pw-1');
    const d = await sync(role, ['old-pass-pw-1']).beforePublish(set('new-pass-pw-2'), true);
    expect(summary(d)).toBe('publish pending=- finding=-');
    expect(logsIn(pg, role, 'new-pass-pw-2')).toBe(true);
  });
  it('weird passwords', async () => {
    const role = `wp_${++n}`;
    await newRole(pg, role, 'old-pass-wp-1');
    const s = sync(role, ['old-pass-wp-1'], 'postgres', 10_000);
    let current = 'old-pass-wp-1';
    for (const [label, pw] of [
      ['spaces only', '      '],
      ['soft hyphen only', '\u00AD'],
      ['NUL', 'abc\u0000def-wp'],
      ['newline + non-ascii', 'line1\nGröße-wp'],
      ['sql-ish', `'; DROP ROLE postgres; --$$ \\' E'\\x27`],
      ['1 MB ascii', 'x'.repeat(1024 * 1024)],
      ['256 KB non-ascii', 'é'.repeat(128 * 1024)],
    ] as const) {
      const t0 = Date.now();
      const d = await s.beforePublish(set(pw), true);
      const ms = Date.now() - t0;
      if (d.publish && !d.pending) { s.published(set(pw)); current = pw; }
      // Real time: each login hashes the password 4096 times on the server; the bound is a hang guard far above it.
      expect(ms, label).toBeLessThan(30_000);
      // psql takes the password from the environment: one variable holds at most 128 KiB, as for the app.
      if (Buffer.byteLength(pw) < 100_000) expect(logsIn(pg, role, current), `${label}: the password the set holds logs in`).toBe(true);
      expect(summary(d).startsWith(d.publish ? 'publish pending=-' : 'HOLD SIDECAR_POSTGRES_FAILED'), label).toBe(true);
    }
  }, 120_000);
  it('stale view: a hold, then Infisical rolled back to the live password', async () => {
    const role = `sv_${++n}`;
    await newRole(pg, role, 'old-pass-sv-1');
    const s = sync(role);
    const a = await s.beforePublish(set('old-pass-sv-1'), true);
    s.published(set('old-pass-sv-1'));
    await pg.query(`ALTER ROLE ${role} PASSWORD 'someone-else-sv'`);
    const b = await s.beforePublish(set('new-pass-sv-2'), true);
    await pg.query(`ALTER ROLE ${role} PASSWORD 'old-pass-sv-1'`);
    const c = await s.beforePublish(set('old-pass-sv-1'), false);
    expect([summary(a), summary(b).slice(0, 34), summary(c)]).toEqual(['publish pending=- finding=-', 'HOLD SIDECAR_POSTGRES_ROLE_REFUSED', 'publish pending=- finding=-']);
    expect(s.view().state).toBe('in_step');
  });
});
