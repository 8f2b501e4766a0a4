/**
 * SIDECAR_POSTGRES_URL, parsed once: where the role whose password the sidecar keeps in step with
 * Infisical lives (docs/postgres-role-sync.md). The URL names role, host, port, database and TLS
 * settings, never a password: the password is the secret the sidecar fetches, and a copy in the
 * environment would be one more place to leak it and one more value to keep in step.
 *
 * TLS follows libpq's `sslmode` (GlitchTip's psycopg reads the same DATABASE_URL through libpq):
 * `disable` no TLS; `allow`/`prefer` (libpq's default) TLS when the server offers it, without
 * checking the certificate; `require` TLS without checking it; `verify-ca` the certificate must chain
 * to `sslrootcert`; `verify-full` that and the host name. Any other query parameter is refused, so a
 * typo does not silently weaken TLS.
 */

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface PostgresTarget {
  readonly host: string;
  readonly port: number;
  /** The role whose password follows the key; it changes its own password, so no superuser is needed. */
  readonly role: string;
  readonly database: string;
  readonly sslMode: SslMode;
  /** `sslrootcert`: a PEM file of the CA(s) for verify-ca / verify-full (read when connecting). */
  readonly sslRootCert: string | undefined;
}

const KNOWN_PARAMETERS = new Set(['sslmode', 'sslrootcert']);

/** Parses the URL; returns the problem (naming the fix, never echoing the URL: it might hold a password) instead of throwing. */
export function parsePostgresUrl(text: string): PostgresTarget | { readonly problem: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: 'not a URL; write it as postgres://ROLE@HOST:5432/DATABASE' };
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return { problem: `scheme ${url.protocol} is not postgres:// or postgresql://` };
  if (url.password !== '') return { problem: 'holds a password; remove it — the sidecar logs in with the password from Infisical (the key in SIDECAR_POSTGRES_PASSWORD_KEY)' };
  const role = decode(url.username);
  if (!role) return { problem: 'names no role; write it as postgres://ROLE@HOST:5432/DATABASE' };
  // WHATWG URL keeps the brackets of an IPv6 literal; the socket wants the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) return { problem: 'names no host (unix sockets are not supported: use the service name, e.g. postgres)' };
  const port = url.port === '' ? 5432 : Number(url.port);
  const path = url.pathname.replace(/^\//, '');
  const database = path.includes('/') ? undefined : path === '' ? role : decode(path);
  if (!database) return { problem: 'the database name (the path) is not one name; encode a / in it as %2F' };
  const names = [...url.searchParams.keys()];
  const unknown = names.filter((name) => !KNOWN_PARAMETERS.has(name));
  // libpq and URLSearchParams.get disagree on which of two values wins: a copied URL must not quietly lose TLS.
  const repeated = [...new Set(names.filter((name, index) => names.indexOf(name) !== index))];
  if (repeated.length > 0) return { problem: `${repeated.join(', ')} given more than once; give each parameter once` };
  if (unknown.length > 0) return { problem: `unsupported parameter${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}; only sslmode and sslrootcert are read` };
  const sslMode = url.searchParams.get('sslmode') ?? 'prefer';
  if (!(SSL_MODES as readonly string[]).includes(sslMode)) return { problem: `sslmode=${sslMode} is not one of ${SSL_MODES.join(', ')}` };
  const sslRootCert = url.searchParams.get('sslrootcert') ?? undefined;
  if ((sslMode === 'verify-ca' || sslMode === 'verify-full') && sslRootCert === undefined) {
    return { problem: `sslmode=${sslMode} needs sslrootcert=/path/to/ca.pem (mounted into the sidecar)` };
  }
  return { host, port, role, database, sslMode: sslMode as SslMode, sslRootCert };
}

function decode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/** `role@host:port/database`, for logs and /healthz: every part is a name, none a secret. */
export function describeTarget(target: PostgresTarget): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.role}@${host}:${target.port}/${target.database}`;
}
