/**
 * A throwaway PostgreSQL cluster for tests that need the real server: its SCRAM code is the oracle for
 * src/postgres/scram.ts, and its login is what a rotated password must pass. One cluster per test file
 * (beforeAll/afterAll): initdb costs about a second, a test nothing.
 *
 * The cluster lives in a fresh directory under MEMORY_TMP (data, unix socket, log, all removed by stop()),
 * listens on 127.0.0.1 at a free port, and authenticates every connection, local or TCP, with
 * scram-sha-256 — the method whose verifiers the sidecar computes. Durability is switched off (fsync,
 * full_page_writes, synchronous_commit): nothing here outlives the test.
 *
 * PostgreSQL refuses to run as root, and CI runs as root: then initdb, pg_ctl and postgres run as the
 * `postgres` system user (which the Debian package creates) through setpriv, and the directory is handed
 * to that user. The binaries are not on PATH in Debian (they live in /usr/lib/postgresql/<major>/bin):
 * they are found through `pg_config --bindir` or that directory. When they are missing the start fails,
 * naming the Debian package: CI installs it (scripts/ensure-postgres.sh), so a missing server is an
 * error, never a skipped test.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { MEMORY_TMP } from './temp-dir.js';

export interface TestPostgresOptions {
  /** log_statement=all: every statement the server receives lands in the log that logText() reads. */
  readonly logStatements?: boolean;
}

export interface CreateRoleOptions {
  readonly superuser?: boolean;
}

export interface TestPostgres {
  readonly host: string;
  readonly port: number;
  /** Where the server binaries are (psql included, for logging in through libpq). */
  readonly bindir: string;
  readonly superuser: string;
  /** postgres://superuser:password@127.0.0.1:port/postgres */
  readonly superuserUrl: string;
  /** The server's log: its stderr, with every statement when started with logStatements. */
  readonly logFile: string;
  /**
   * Creates a LOGIN role whose password the server hashes itself (password_encryption=scram-sha-256):
   * the plaintext goes to the server as a bind parameter of format('%L'), so any value is quoted
   * correctly. Returns the role's postgres:// URL.
   */
  createRole(name: string, password: string, options?: CreateRoleOptions): Promise<string>;
  /**
   * ALTER ROLE name PASSWORD value, quoted the same way. The server stores a SCRAM verifier as it is and
   * hashes anything else (so the plaintext, and this statement, are in the log with logStatements).
   */
  setPassword(name: string, password: string): Promise<void>;
  /** A query as the superuser, over one connection that stop() closes. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<pg.QueryResult<R>>;
  logText(): Promise<string>;
  /** pg_ctl stop -m fast, then removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** The binary directory of an installed PostgreSQL server, or null. */
export function findPostgresBindir(): string | null {
  const hasServer = (dir: string) => ['initdb', 'pg_ctl', 'postgres'].every((bin) => existsSync(path.join(dir, bin)));
  const candidates: string[] = [];
  try {
    // libpq-dev's pg_config answers too, with a directory that has no server in it: hence hasServer.
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // no pg_config: try Debian's layout
  }
  try {
    const majors = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    candidates.push(...majors.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // no Debian layout
  }
  return candidates.find(hasServer) ?? null;
}

export async function startPostgres(options: TestPostgresOptions = {}): Promise<TestPostgres> {
  const bindir = findPostgresBindir();
  if (!bindir) {
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl, postgres) not found via `pg_config --bindir` or /usr/lib/postgresql/*/bin: ' +
        'install the Debian package `postgresql` (apt-get install --no-install-recommends postgresql; scripts/ensure-postgres.sh does it as root)',
    );
  }
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresUser() : null;

  const dir = mkdtempSync(path.join(MEMORY_TMP, 'sidecar-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const superuser = 'postgres';
  // hex: no character a URL or a pwfile line would need to escape
  const superuserPassword = randomBytes(18).toString('hex');
  // As the server's user, with cwd in the directory (root's cwd may be unreadable to it) and a C locale
  // with UTF8 encoding: non-ASCII passwords must reach the server as UTF-8.
  const run = (bin: string, args: string[]) =>
    runAs(owner, path.join(bindir, bin), args, { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', TZ: 'UTC' } });

  let started = false;
  let client: pg.Client | null = null;
  let connecting: Promise<pg.Client> | null = null;
  let stopped = false;
  // If this process dies without stop() (a crash, a killed or timed-out worker: no 'exit' event then), the
  // postmaster would run on. A watchdog in its own session holds a pipe from us: at EOF without "done" it
  // stops the cluster (immediate) and removes the directory.
  const [stopCmd, stopArgs] = argvAs(owner, path.join(bindir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w']);
  const watchdog = spawn(
    'sh',
    ['-c', 'read -r line; [ "$line" = done ] && exit 0; dir=$1; shift; [ -f "$dir/data/postmaster.pid" ] && "$@"; rm -rf "$dir"', 'pg-watchdog', dir, stopCmd, ...stopArgs],
    { detached: true, stdio: ['pipe', 'ignore', 'ignore'] },
  );
  watchdog.unref();
  (watchdog.stdin as unknown as { unref(): void }).unref();
  const dismissWatchdog = () => watchdog.stdin?.end('done\n');

  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    const pwfile = path.join(dir, 'pwfile');
    writeFileSync(pwfile, `${superuserPassword}\n`, { mode: 0o600 });
    if (owner) chownSync(pwfile, owner.uid, owner.gid);
    await run('initdb', [
      '-D', dataDir, '-U', superuser, `--pwfile=${pwfile}`, '--auth=scram-sha-256',
      '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions',
    ]);
    rmSync(pwfile);

    const settings = [
      `listen_addresses=127.0.0.1`,
      `unix_socket_directories=${dir}`,
      'password_encryption=scram-sha-256',
      'fsync=off', 'full_page_writes=off', 'synchronous_commit=off',
      'shared_buffers=16MB', 'max_connections=20',
      'log_min_messages=warning',
      ...(options.logStatements ? ['log_statement=all'] : []),
    ];
    // A free port can be taken between the probe and the server's bind: try again with another one.
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const opts = [`-c port=${port}`, ...settings.map((s) => `-c ${s}`)].join(' ');
      try {
        await run('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-o', opts]);
        started = true;
        break;
      } catch (error) {
        if (attempt >= 3) throw error;
      }
    }

    const host = '127.0.0.1';
    const superuserUrl = roleUrl(superuser, superuserPassword, host, port);
    const connect = async () => {
      connecting ??= (async () => {
        const c = new pg.Client({ host, port, user: superuser, password: superuserPassword, database: 'postgres' });
        // A connection the server drops (it stopped, it crashed) emits 'error', which would otherwise be
        // thrown out of the event loop and take the worker down: the next query fails and says why.
        c.on('error', () => undefined);
        await c.connect();
        // The server's default since PostgreSQL 14, said here so that a changed default cannot make the
        // roles' passwords md5 hashes.
        await c.query("SET password_encryption = 'scram-sha-256'");
        client = c;
        return c;
      })();
      // A failed connection is not kept: the next query tries again.
      connecting.catch(() => (connecting = null));
      return connecting;
    };
    const query = async <R extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []) =>
      (await connect()).query<R>(sql, params as unknown[]);
    // DDL takes no bind parameters: the server quotes the values itself (format's %I and %L), and the
    // statement it returns is run as is. Each value reaches the server as sent, whatever it holds.
    const runDdl = async (template: string, name: string, value: string) => {
      const { rows } = await query<{ ddl: string }>('SELECT format($1::text, $2::text, $3::text) AS ddl', [template, name, value]);
      await query(rows[0]!.ddl);
    };

    return {
      host,
      port,
      bindir,
      superuser,
      superuserUrl,
      logFile,
      query,
      async createRole(name, password, roleOptions = {}) {
        await runDdl('CREATE ROLE %I LOGIN' + (roleOptions.superuser ? ' SUPERUSER' : '') + ' PASSWORD %L', name, password);
        return roleUrl(name, password, host, port);
      },
      setPassword: (name, password) => runDdl('ALTER ROLE %I PASSWORD %L', name, password),
      logText: () => readFile(logFile, 'utf8'),
      async stop() {
        if (stopped) return;
        stopped = true;
        const c = client as pg.Client | null;
        if (c) await c.end().catch(() => undefined);
        try {
          if (started) await run('pg_ctl', ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
          dismissWatchdog();
        }
      },
    };
  } catch (error) {
    if (started) await run('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    dismissWatchdog();
    throw error;
  }
}

/** postgres://name:password@host:port/postgres, each part percent-encoded. */
export function roleUrl(name: string, password: string, host: string, port: number): string {
  return `postgres://${encodeURIComponent(name)}:${encodeURIComponent(password)}@${host}:${port}/postgres`;
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => {
    const result = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
    return result.status === 0 ? Number(result.stdout.trim()) : NaN;
  };
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error('running as root, and PostgreSQL refuses to: the `postgres` system user (created by the Debian package `postgresql`) is missing');
  }
  return { uid, gid };
}

/** argv that runs `file args` as `owner` (setpriv, util-linux), or as this process's user when null. */
function argvAs(owner: { uid: number; gid: number } | null, file: string, args: string[]): [string, string[]] {
  if (!owner) return [file, args];
  return ['setpriv', [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', '--', file, ...args]];
}

/**
 * Runs a server binary to completion; rejects with its exit status and output. Its output may name
 * paths and settings, never a password (the superuser's goes through a file).
 */
function runAs(owner: { uid: number; gid: number } | null, file: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void> {
  const [cmd, argv] = argvAs(owner, file, args);
  return new Promise((resolve, reject) => {
    // stdout/stderr are pipes that end when the command exits, except pg_ctl start's: the postmaster it
    // forks inherits them, so 'exit' (not 'close') says when pg_ctl is done.
    const child = spawn(cmd, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      child.stdout.destroy();
      child.stderr.destroy();
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(file)} ${args[0] ?? ''} failed (${signal ?? `exit ${code}`}): ${output.trim().slice(-2000)}`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
