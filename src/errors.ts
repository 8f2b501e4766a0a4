/**
 * Every error the sidecar reports, in one catalogue.
 *
 * Each code has a one-line meaning and a hint that says what to do; `docs/errors.md` documents the
 * same table and a test fails when the two drift apart. Messages name the object (variable, URL,
 * path) but never carry a secret value.
 */

/** Process exit codes (sysexits.h where one fits), one per failure class, so scripts can branch on them. */
export const EXIT_CODES = Object.freeze({
  ok: 0,
  unexpected: 1,
  usage: 64, // EX_USAGE: unknown subcommand or flag
  missingKeys: 65, // EX_DATAERR: a required key is absent from the fetched secrets
  fetch: 69, // EX_UNAVAILABLE: Infisical unreachable, 5xx, 404, rate-limited until the deadline
  write: 73, // EX_CANTCREAT: output directory missing, read-only, full
  deadline: 75, // EX_TEMPFAIL: `once` ran out of time while retrying
  auth: 77, // EX_NOPERM: login refused, or access denied
  config: 78, // EX_CONFIG: bad or missing setting
  lease: 74, // no sysexits.h code fits "another process holds the directory"; 74 sits beside the output codes
  database: 76, // EX_PROTOCOL, the nearest: PostgreSQL refused the role change SIDECAR_POSTGRES_PASSWORD_KEY asks for
  stopped: 143, // 128 + SIGTERM, as a shell reports a process a signal ended: `once`/`check` stopped by SIGTERM or SIGINT
});

export type ExitCodeName = keyof typeof EXIT_CODES;

/** When each exit code happens (docs/errors.md); typed by the codes' names, so a new exit code without a line here does not compile. */
export const EXIT_MEANINGS: Readonly<Record<ExitCodeName, string>> = Object.freeze({
  ok: 'Success: `once` wrote a complete set, `check` fetched everything, `run` stopped on SIGTERM. (`run` never exits on a failed sync: it keeps the last good files and retries.)',
  unexpected: 'A bug or an unforeseen condition (`SIDECAR_UNEXPECTED`).',
  usage: 'Unknown subcommand or argument.',
  missingKeys: 'A required key, or a key a template needs, is missing; nothing was written.',
  fetch: 'Infisical answered 404 or 400/422; for `check` (a single attempt) also unreachable, 5xx or 429. `once` retries those until its deadline (75).',
  write: 'The output directory is missing, read-only or full.',
  deadline: '`once` kept retrying a temporary failure until SIDECAR_ONCE_DEADLINE; the last error is in the message.',
  auth: 'Infisical refused the login, or denied access after a fresh login.',
  config: 'A setting is missing or malformed (printed to stderr, one line per problem).',
  lease: 'Another sidecar writes the output directory (`SIDECAR_OUTPUT_LEASE_HELD`), or took it over from this one (`SIDECAR_OUTPUT_LEASE_LOST`); the message names it.',
  database: 'PostgreSQL role sync (SIDECAR_POSTGRES_PASSWORD_KEY) could not give the role its new password: PostgreSQL refused it, or the current password is not known; nothing new was written. (PostgreSQL not answering is retried until the deadline, 75.)',
  stopped: '`once` or `check` was stopped by SIGTERM or SIGINT before it finished (also for SIGINT, so scripts test one code); nothing new was written and the previous set is intact. (`run` exits 0 on SIGTERM.)',
});

/** Exit codes of `status`, which reads a running sidecar's /healthz (for scripts and `watch`). */
export const STATUS_EXIT_CODES = Object.freeze({ healthy: 0, unhealthy: 1, unreachable: 2, usage: EXIT_CODES.usage });

export const STATUS_EXIT_MEANINGS: Readonly<Record<keyof typeof STATUS_EXIT_CODES, string>> = Object.freeze({
  healthy: 'The sidecar answered `/healthz` with 200 (status `ok` or `degraded`).',
  unhealthy: 'The sidecar answered 503 (status `starting`, `failing`, `stale`, `missing_keys` or `lint_breaks`, or `cache` with SIDECAR_CACHE_HEALTHY=false).',
  unreachable: "Nothing answered at the URL within 3 s, or what answered is not a sidecar's `/healthz`.",
  usage: 'Bad arguments.',
});

/** Exit codes of `healthcheck`, the image's Docker HEALTHCHECK. */
export const HEALTHCHECK_EXIT_CODES = Object.freeze({ healthy: 0, unhealthy: 1 });

/** `0 ok, 1 unexpected, …`: a table of exit codes as one line of help text. */
export function listExitCodes(codes: Readonly<Record<string, number>>): string {
  return Object.entries(codes)
    .map(([name, code]) => `${code} ${name}`)
    .join(', ');
}

interface CatalogueEntry {
  readonly exit: ExitCodeName;
  readonly meaning: string;
  readonly hint: string;
}

/** The error catalogue. Keys are the stable codes shown in logs, `/healthz` and `docs/errors.md`. */
export const ERROR_CATALOGUE = {
  SIDECAR_CONFIG_INVALID: {
    exit: 'config',
    meaning: 'One or more settings are missing or malformed; every problem is listed in the message.',
    hint: 'Fix each variable named in the message (see docs/configuration.md) and start again.',
  },
  SIDECAR_CONFIG_FILE_UNREADABLE: {
    exit: 'config',
    meaning: 'A file named by a *_FILE variable or SIDECAR_CONFIG_FILE cannot be read.',
    hint: 'Check the path, and that the file is mounted and readable by the sidecar user (uid 65532 in the image).',
  },
  SIDECAR_USAGE: {
    exit: 'usage',
    meaning: 'Unknown subcommand or option.',
    hint: 'Run `infisical-sidecar help` for the subcommands: run, once, check, healthcheck, status.',
  },
  SIDECAR_AUTH_INVALID_CREDENTIALS: {
    exit: 'auth',
    meaning: 'Infisical refused the Universal Auth login (wrong client id or secret, expired or used-up client secret, locked out).',
    hint: 'Check INFISICAL_UNIVERSAL_AUTH_CLIENT_ID / _CLIENT_SECRET (or their _FILE forms) against the machine identity; create a new client secret if it expired.',
  },
  SIDECAR_AUTH_FORBIDDEN: {
    exit: 'auth',
    meaning: 'Infisical denied access after a fresh login (missing permission, IP not trusted, project not shared with the identity).',
    hint: "Give the machine identity read access to the project, environment and folders, and check the identity's trusted IPs.",
  },
  SIDECAR_FETCH_NOT_FOUND: {
    exit: 'fetch',
    meaning: 'Infisical answered 404: the project, environment or folder does not exist.',
    hint: 'Check INFISICAL_PROJECT_ID (the project id, not its slug), INFISICAL_ENVIRONMENT (the slug, e.g. prod) and INFISICAL_SECRET_PATHS.',
  },
  SIDECAR_FETCH_RATE_LIMITED: {
    exit: 'fetch',
    meaning: 'Infisical answered 429; the sidecar waits for retry-after before the next request.',
    hint: 'Raise SIDECAR_REFRESH_INTERVAL, or use the webhook push instead of short polling.',
  },
  SIDECAR_FETCH_TIMEOUT: {
    exit: 'fetch',
    meaning: 'An Infisical request did not answer within SIDECAR_REQUEST_TIMEOUT.',
    hint: 'Check the network path to INFISICAL_SITE_URL; raise SIDECAR_REQUEST_TIMEOUT for a slow server.',
  },
  SIDECAR_FETCH_UNAVAILABLE: {
    exit: 'fetch',
    meaning: 'Infisical could not be reached or answered with a server error (5xx, reset, malformed body).',
    hint: 'Check INFISICAL_SITE_URL, DNS and TLS (custom CAs go in NODE_EXTRA_CA_CERTS); the sidecar keeps the last good files and retries with backoff.',
  },
  SIDECAR_FETCH_REJECTED: {
    exit: 'fetch',
    meaning: 'Infisical rejected the request as malformed (400 or 422).',
    hint: 'Check INFISICAL_PROJECT_ID, INFISICAL_ENVIRONMENT and INFISICAL_SECRET_PATHS for typos; report a bug if they are right.',
  },
  SIDECAR_SITE_URL_WRONG: {
    exit: 'config',
    meaning: "Something at INFISICAL_SITE_URL answered 404 without Infisical's JSON error body: the URL (usually its path) does not lead to Infisical's API, or a proxy in front does not route it.",
    hint: 'Set INFISICAL_SITE_URL to the base URL Infisical is served at, without /api (e.g. https://app.infisical.com, or https://host/infisical behind a path prefix), and check the reverse proxy in front of it.',
  },
  SIDECAR_MISSING_REQUIRED_KEYS: {
    exit: 'missingKeys',
    meaning: 'A key listed in SIDECAR_REQUIRED_KEYS is absent from every configured folder; nothing was written.',
    hint: 'Create the key in Infisical in one of INFISICAL_SECRET_PATHS, or remove it from SIDECAR_REQUIRED_KEYS.',
  },
  SIDECAR_LINT_BREAKS: {
    exit: 'missingKeys',
    meaning: 'With SIDECAR_LINT=error, a value has a `breaks` lint finding: its consumer would fail or read another value. Nothing was written; the last good files stay.',
    hint: 'Fix the value in Infisical as the finding in the log (or `check`) says (docs/lint-rules.md), or set SIDECAR_LINT=warn.',
  },
  SIDECAR_TEMPLATE_INVALID: {
    exit: 'config',
    meaning: 'A derived-value template is malformed or names an unknown filter.',
    hint: 'Write templates as {{ KEY }} or {{ KEY | url }}; filters: url, json, base64, shell, trim.',
  },
  SIDECAR_TEMPLATE_MISSING_KEY: {
    exit: 'missingKeys',
    meaning: 'A derived-value template refers to a key that was not fetched; nothing was written.',
    hint: 'Create the key in Infisical, or fix the template (names are case-sensitive).',
  },
  SIDECAR_OUTPUT_UNWRITABLE: {
    exit: 'write',
    meaning: 'The output directory is missing, read-only, full, or owned by another user.',
    hint: 'Mount a writable volume at SIDECAR_OUTPUT_DIR owned by the sidecar user (tmpfs volume with uid=65532), with room for the secrets.',
  },
  SIDECAR_OUTPUT_FULL: {
    exit: 'write',
    meaning: 'The new set does not fit on the output volume next to the live one (a tmpfs `size=` too small for the values, times the output formats, times two while the swap is pending). Nothing of it was written; the live set is kept and served.',
    hint: "Raise the tmpfs size of the output volume (`size=` in the override's glitchtip-secrets volume; remove the volume after changing it), or drop output formats the consumers do not read (SIDECAR_OUTPUTS).",
  },
  SIDECAR_ONCE_DEADLINE: {
    exit: 'deadline',
    meaning: '`once` did not complete a sync before SIDECAR_ONCE_DEADLINE; the last error is in the message.',
    hint: 'Fix the last error shown, or raise SIDECAR_ONCE_DEADLINE.',
  },
  SIDECAR_HEALTH_PORT_IN_USE: {
    exit: 'config',
    meaning: 'The health server cannot listen on SIDECAR_HEALTH_HOST:SIDECAR_HEALTH_PORT: another process holds that port (often a second sidecar, or the old container of a recreate).',
    hint: 'Stop the other process (`ss -ltnp` shows it), or give this sidecar another SIDECAR_HEALTH_PORT.',
  },
  SIDECAR_HEALTH_FD_LIMIT: {
    exit: 'config',
    meaning: 'The open-file limit is too low to keep SIDECAR_HEALTH_FD_RESERVE descriptors for the sync and still accept 4 connections on the health port.',
    hint: 'Raise the container\'s open-file limit (Compose `ulimits: nofile:`, `docker run --ulimit nofile=1024`), or lower SIDECAR_HEALTH_FD_RESERVE.',
  },
  SIDECAR_STOPPED: {
    exit: 'stopped',
    meaning: '`once` or `check` received SIGTERM or SIGINT and stopped before it finished; a write in progress was abandoned and removed, the previous set is unchanged.',
    hint: 'Nothing to fix if the stop was intended; otherwise run it again, or give it more time to stop (compose `stop_grace_period`).',
  },
  SIDECAR_OUTPUT_DIR_SYMLINK: {
    exit: 'write',
    meaning: 'SIDECAR_OUTPUT_DIR is a symbolic link. The sidecar does not follow it: the atomic swap, the lease and the promise that nothing is written outside the directory hold for one directory, and a link can be re-pointed while the sidecar runs.',
    hint: 'Set SIDECAR_OUTPUT_DIR to the directory the link points to (named in the message), normally the mount point of the tmpfs volume.',
  },
  SIDECAR_OUTPUT_OWNERSHIP: {
    exit: 'write',
    meaning: 'The owner or group set by SIDECAR_FILE_UID / SIDECAR_FILE_GID cannot be given to files in the output directory (checked with a probe file at start).',
    hint: 'Run the sidecar with that group among its groups (Compose `user: "65532:<gid>"` or `group_add: ["<gid>"]`), give it CAP_CHOWN for another uid, or unset SIDECAR_FILE_UID / SIDECAR_FILE_GID.',
  },
  SIDECAR_OUTPUT_FOREIGN_ENTRIES: {
    exit: 'write',
    meaning: 'Entries the sidecar did not make (e.g. a plain secrets.env, a secrets.json/ directory left by an older tool) are where its outputs go; it refuses to replace them and wrote nothing.',
    hint: 'Move or delete the entries named in the message (the consumers keep reading them until then), or point SIDECAR_OUTPUT_DIR at an empty volume. The sidecar only replaces links it made.',
  },
  SIDECAR_OUTPUT_LEASE_HELD: {
    exit: 'lease',
    meaning: 'Another sidecar holds the lease on the output directory (a second replica, or an old container still running); this one waited SIDECAR_LEASE_TTL for it to stop, and wrote nothing.',
    hint: 'Run one sidecar per output directory: stop the holder named in the message, or remove the extra replica. To keep this one waiting as a standby, set SIDECAR_LEASE_MODE=standby.',
  },
  SIDECAR_OUTPUT_LEASE_LOST: {
    exit: 'lease',
    meaning: "Another sidecar took over this one's lease (this one did not renew it within SIDECAR_LEASE_TTL, e.g. it was paused or frozen); this one stopped writing at once.",
    hint: 'If two sidecars share the directory by mistake, run one. If this one was paused (docker pause, a suspended VM, a blocked event loop), raise SIDECAR_LEASE_TTL.',
  },
  SIDECAR_POSTGRES_UNREACHABLE: {
    exit: 'deadline',
    meaning: 'A new value of SIDECAR_POSTGRES_PASSWORD_KEY arrived, but PostgreSQL did not answer (refused connection, timeout, name not resolved, TLS handshake failed). With SIDECAR_POSTGRES_UNREACHABLE=hold the previous set stays and the sidecar retries with backoff.',
    hint: 'Check that PostgreSQL runs and that the sidecar reaches SIDECAR_POSTGRES_URL (same Compose network, port, sslmode). Nothing to do if PostgreSQL is only starting.',
  },
  SIDECAR_POSTGRES_ROLE_REFUSED: {
    exit: 'database',
    meaning: 'PostgreSQL refused the role with every password the sidecar knows: the new one and the current one (the last it published, or the cached one after a restart). Someone changed the role\'s password by other means; the previous set stays.',
    hint: 'Set the role to the new password by hand — `ALTER ROLE <role> PASSWORD \'…\'` as in docs/production.md §6 (the sidecar then finds it in place and publishes) — or put the password the role has back in Infisical.',
  },
  SIDECAR_POSTGRES_PASSWORD_UNKNOWN: {
    exit: 'database',
    meaning: 'PostgreSQL refuses the new password, and the sidecar knows no other (a reboot emptied the volume and no last-known-good cache is configured, or the cache holds no older password): it cannot change the role by itself.',
    hint: 'Run the manual rotation once (docs/production.md §6): `ALTER ROLE <role> PASSWORD` with the value in Infisical, as a superuser or the role itself. Set SIDECAR_CACHE_DIR so the next reboot after an offline rotation needs no hand.',
  },
  SIDECAR_POSTGRES_FAILED: {
    exit: 'database',
    meaning: 'PostgreSQL accepted the login but the role change failed (the SQLSTATE is in the message), or after the change the new password did not log in.',
    hint: 'Look up the SQLSTATE in the PostgreSQL log; a role may always change its own password, so check for a read-only standby (connect to the primary) or an event trigger.',
  },
  SIDECAR_POSTGRES_TRUST_AUTH: {
    exit: 'database',
    meaning: 'PostgreSQL let the role in with a wrong password (pg_hba.conf `trust` for this host): the role\'s password was set, but whether a password is checked at all is not up to it. Reported, not fatal.',
    hint: 'Use scram-sha-256 in pg_hba.conf for the app\'s network (the official image does with POSTGRES_HOST_AUTH_METHOD unset).',
  },
  SIDECAR_CACHE_DIR_UNSAFE: {
    exit: 'write',
    meaning: 'SIDECAR_CACHE_DIR is missing, not a directory, a symbolic link, or owned by another uid (checked at start; the sidecar tightens the mode of a directory it owns to 0700 itself).',
    hint: 'Mount a volume there that only the sidecar uses, owned by the sidecar user: the image ships the mount point owned by uid 65532 with mode 0700, so a new named volume starts that way; for an existing one run `chown 65532:65532` and `chmod 0700` on it. Or unset SIDECAR_CACHE_DIR.',
  },
  SIDECAR_CACHE_UNWRITABLE: {
    exit: 'write',
    meaning: 'The last-known-good cache could not be written (disk full, read-only, permissions); the sync itself succeeded and the files are current.',
    hint: 'Check the volume at SIDECAR_CACHE_DIR; until it is fixed, a start while Infisical is down finds an older cache or none.',
  },
  SIDECAR_CACHE_UNREADABLE: {
    exit: 'fetch',
    meaning: 'The cache file is truncated, damaged or altered (it fails AES-GCM authentication), or has an unknown format version; it is ignored and the sidecar behaves as without a cache.',
    hint: 'Nothing to do if Infisical is reachable: the next successful sync writes a new cache. Otherwise restore Infisical; delete the file to silence the warning.',
  },
  SIDECAR_CACHE_KEY_MISMATCH: {
    exit: 'fetch',
    meaning: 'The cache was written with another key: the client secret was rotated since the last successful login that wrote it, or SIDECAR_CACHE_KEY_FILE changed or was added or removed. It is ignored.',
    hint: 'Expected after a client secret rotation made while Infisical was unreachable; the next successful sync writes a cache under the current key. Keep SIDECAR_CACHE_KEY_FILE stable if you use it.',
  },
  SIDECAR_CACHE_FOREIGN: {
    exit: 'fetch',
    meaning: 'The cache belongs to another site URL, project, environment or list of folders than the configured ones; it is ignored.',
    hint: 'Expected after INFISICAL_SITE_URL, INFISICAL_PROJECT_ID, INFISICAL_ENVIRONMENT or INFISICAL_SECRET_PATHS changed: the next successful sync replaces it. Give each sidecar its own SIDECAR_CACHE_DIR.',
  },
  SIDECAR_CACHE_EXPIRED: {
    exit: 'fetch',
    meaning: 'The cache was last confirmed against Infisical longer ago than SIDECAR_CACHE_MAX_AGE; it is not used.',
    hint: 'Restore access to Infisical. Raise SIDECAR_CACHE_MAX_AGE only knowing that it also extends how long a revoked identity cut off from Infisical keeps serving its secrets.',
  },
  SIDECAR_UNEXPECTED: {
    exit: 'unexpected',
    meaning: 'A bug or an unforeseen condition.',
    hint: 'Report it with the log lines around it (they carry no secret values).',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Base class: a stable `code`, a `hint` for the operator, and the exit code it maps to. */
export class SidecarError extends Error {
  override readonly name: string = 'SidecarError';
  readonly code: ErrorCode;
  readonly hint: string;
  /** HTTP status, when the error came from an Infisical response. */
  readonly status: number | undefined;
  /** Whether a later attempt may succeed without operator action (network, 5xx, 429, timeout). */
  readonly retryable: boolean;
  /** For 429: how long the server asked us to wait, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; status?: number; retryable?: boolean; retryAfterMs?: number; hint?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint ?? ERROR_CATALOGUE[code].hint;
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }

  get exitCode(): number {
    return EXIT_CODES[ERROR_CATALOGUE[this.code].exit];
  }

  /** What logs, `/healthz` and metrics show: code, message, hint. Never the cause chain (it may hold request bodies). */
  toJSON(): { code: ErrorCode; message: string; hint: string; status?: number } {
    return { code: this.code, message: this.message, hint: this.hint, ...(this.status === undefined ? {} : { status: this.status }) };
  }
}

export class ConfigError extends SidecarError {
  override readonly name = 'ConfigError';
  /** Every problem found, one line each, as `VARIABLE: problem — fix`. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[], code: ErrorCode = 'SIDECAR_CONFIG_INVALID') {
    super(code, `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

export class AuthError extends SidecarError {
  override readonly name = 'AuthError';
}
export class FetchError extends SidecarError {
  override readonly name = 'FetchError';
}
export class RenderError extends SidecarError {
  override readonly name = 'RenderError';
}
export class WriteError extends SidecarError {
  override readonly name = 'WriteError';
}

export function isSidecarError(error: unknown): error is SidecarError {
  return error instanceof SidecarError;
}

/** Wraps anything thrown into a SidecarError, so callers deal with one shape. */
export function toSidecarError(error: unknown): SidecarError {
  if (isSidecarError(error)) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new SidecarError('SIDECAR_UNEXPECTED', message, { cause: error });
}
