/**
 * One login to PostgreSQL as the synced role, classified the way role sync decides: in, refused
 * (wrong password), unreachable (worth retrying), or failed (something an operator must look at).
 *
 * `pg` is imported on first use: most sidecars never sync a role, and one that does needs it only
 * when the password changes (docs/performance.md: nothing off the first sync's path loads at start).
 *
 * The password is given as libpq sends it (SASLprep, `scram.ts`): the role's verifier was made
 * from that form, by PostgreSQL or by us, and the app's libpq logs in with that form too.
 * Errors carry SQLSTATE and error codes only; PostgreSQL's own messages can quote the role, never
 * the password, but the sidecar's rule is simpler: no server text in what it reports.
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import type { Client, ClientConfig } from 'pg';
import type { PostgresTarget } from '../config/postgres.js';
import { isScramVerifier, passwordAsLibpqSends } from './scram.js';

/** An open session as the role; `end` it. */
export interface RoleSession {
  /** `ALTER ROLE CURRENT_USER PASSWORD '<verifier>'`; throws a `LoginFailure` of kind `failed`. */
  setPassword(verifier: string): Promise<void>;
  end(): Promise<void>;
}

export type Login =
  | { readonly kind: 'in'; readonly session: RoleSession }
  /** The server said the password is wrong (SQLSTATE 28P01). */
  | { readonly kind: 'refused' }
  /** No answer, a timeout, a server still starting or out of connections: try again later. */
  | { readonly kind: 'unreachable'; readonly reason: string }
  /** PostgreSQL answered with an error role sync cannot get past by retrying (a missing role, pg_hba). */
  | { readonly kind: 'failed'; readonly reason: string };

/** `signal` (the pass's: a stop, `once`'s deadline) cuts the connection, whatever step it is in. */
export type LoginAs = (password: string, signal?: AbortSignal) => Promise<Login>;

/** SQLSTATEs that mean "not now": cannot_connect_now (starting, shutting down), too_many_connections, admin/crash shutdown. */
const TRANSIENT_SQLSTATES = new Set(['57P03', '53300', '57P01', '57P02', '08006', '08001']);
/** Node's errno codes of a peer that is not (yet) there. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

/**
 * Whether a login through `pg` can check `password` the way the app's libpq logs in with it.
 * node-postgres runs its own, lenient SASLprep on what it is given (non-ASCII spaces and table B.1
 * mapped, NFKC; node_modules/pg/lib/crypto/sasl.js), with no fallback to the raw password. On what
 * passwordAsLibpqSends returns that is a no-op, except when libpq fell back to the raw password (a
 * control, private-use or unassigned character beside non-ASCII ones) and the raw password has
 * characters the mapping or NFKC change: no input then makes pg send libpq's bytes. Such a password
 * is refused with a message saying why (docs/postgres-role-sync.md); test/system/postgres-scram.test.ts
 * checks this rule against the installed pg.
 */
export function checkableThroughPg(password: string): boolean {
  let form: string;
  try {
    form = passwordAsLibpqSends(password);
  } catch {
    return false; // a NUL: no client can send it
  }
  return form.length > 0 && pgLenientPrep(form) === form;
}

// The same three steps as node-postgres 8.x, so checkableThroughPg can tell what it would send.
const PG_NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// eslint-disable-next-line no-misleading-character-class
const PG_MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B\u180C\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
function pgLenientPrep(password: string): string {
  return password.replace(PG_NON_ASCII_SPACE, ' ').replace(PG_MAPPED_TO_NOTHING, '').normalize('NFKC');
}

export function loginAs(target: PostgresTarget, timeoutMs: number): LoginAs {
  return async (password, signal) => {
    const { default: pg } = await import('pg');
    const base: ClientConfig = {
      host: target.host,
      port: target.port,
      user: target.role,
      database: target.database,
      password: passwordAsLibpqSends(password),
      connectionTimeoutMillis: timeoutMs,
      statement_timeout: timeoutMs,
      query_timeout: timeoutMs,
      application_name: 'infisical-sidecar',
    };
    const attempt = async (ssl: ClientConfig['ssl']): Promise<Login> => {
      if (signal?.aborted) return { kind: 'unreachable', reason: 'stopped' };
      const client = new pg.Client({ ...base, ssl });
      // A socket error after connect (server restart) must not become an unhandled 'error' event.
      client.on('error', () => undefined);
      const cut = () => socketOf(client)?.destroy();
      signal?.addEventListener('abort', cut, { once: true });
      try {
        await client.connect();
        return { kind: 'in', session: sessionOf(client, timeoutMs, () => signal?.removeEventListener('abort', cut)) };
      } catch (error) {
        signal?.removeEventListener('abort', cut);
        await endWithin(client, timeoutMs);
        return signal?.aborted ? { kind: 'unreachable', reason: 'stopped' } : classify(error);
      }
    };
    let ssl: Awaited<ReturnType<typeof sslFor>>;
    try {
      ssl = await sslFor(target);
    } catch (error) {
      return { kind: 'failed', reason: `sslrootcert unreadable (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    if (ssl === 'try') {
      // libpq's prefer: TLS when the server offers it, plain text when it says it has none.
      const first = await attempt({ rejectUnauthorized: false });
      return first.kind === 'failed' && first.reason === 'server-has-no-tls' ? attempt(false) : first;
    }
    return attempt(ssl);
  };
}

function socketOf(client: Client): { destroy(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
}

/**
 * `client.end()` waits for the server to close the socket and has no timer of its own: a frozen
 * backend (docker pause, SIGSTOP, a stalled VM) would hold the pass, the stop and `once`'s deadline
 * forever. Bounded here, then the socket is cut.
 */
async function endWithin(client: Client, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.end().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  socketOf(client)?.destroy();
}

function sessionOf(client: Client, timeoutMs: number, release: () => void): RoleSession {
  return {
    async setPassword(verifier) {
      // Utility statements take no parameters: only a verifier of the strict shape is spliced in,
      // so nothing but base64, `$` and `:` reaches the SQL text.
      if (!isScramVerifier(verifier)) throw new Error('refusing to send a password verifier of an unexpected shape');
      try {
        await client.query(`ALTER ROLE CURRENT_USER PASSWORD '${verifier}'`);
      } catch (error) {
        const login = classify(error);
        throw new LoginFailure(login.kind === 'in' ? 'failed' : login.kind, 'reason' in login ? login.reason : 'refused');
      }
    },
    async end() {
      release();
      await endWithin(client, timeoutMs);
    },
  };
}

/** A failed statement on an open session, kept as the same kinds a login has. */
export class LoginFailure extends Error {
  constructor(
    readonly kind: 'refused' | 'unreachable' | 'failed',
    readonly reason: string,
  ) {
    super(`${kind}: ${reason}`);
  }
}

function classify(error: unknown): Login {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (code === '28P01') return { kind: 'refused' };
  if (typeof code === 'string' && TRANSIENT_SQLSTATES.has(code)) return { kind: 'unreachable', reason: `SQLSTATE ${code}` };
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return { kind: 'unreachable', reason: code };
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return { kind: 'failed', reason: `SQLSTATE ${code}` };
  // pg's own texts, matched so the reason can be a fixed word instead of the message.
  if (/does not support SSL/i.test(text)) return { kind: 'failed', reason: 'server-has-no-tls' };
  if (/timeout|terminated unexpectedly|Connection terminated/i.test(text)) return { kind: 'unreachable', reason: 'timeout' };
  if (typeof code === 'string' && code.startsWith('ERR_TLS') || /certificate|self.signed|unable to verify/i.test(text)) return { kind: 'failed', reason: 'tls-certificate-rejected' };
  if (typeof code === 'string' && code.length > 0) return { kind: 'unreachable', reason: code };
  return { kind: 'failed', reason: 'unexpected' };
}

async function sslFor(target: PostgresTarget): Promise<ClientConfig['ssl'] | 'try'> {
  switch (target.sslMode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
      return 'try';
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
    case 'verify-full': {
      const ca = await readFile(target.sslRootCert!, 'utf8');
      const options: ConnectionOptions = { ca, rejectUnauthorized: true };
      // verify-ca: the chain is checked, the name in the certificate is not (as libpq).
      if (target.sslMode === 'verify-ca') options.checkServerIdentity = () => undefined;
      else options.servername = target.host;
      return options;
    }
  }
}
