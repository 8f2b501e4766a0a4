/**
 * Every environment variable the sidecar reads, with its default, unit and meaning.
 *
 * This table is the single source for validation (`load.ts`) and for the configuration reference
 * (`docs/configuration.md`, checked by a test). Names follow the Infisical CLI where it has one, so
 * scripts written for `infisical export` keep working.
 */
import * as z from 'zod';
import { parseDuration } from './duration.js';
import { DEFAULT_OUTPUT_PATHS, OUTPUT_FORMATS, type OutputSpec } from './outputs.js';
import { parsePostgresUrl, type PostgresTarget } from './postgres.js';

export type VariableGroup = 'infisical' | 'sidecar' | 'output' | 'reload' | 'postgres' | 'health';

export interface VariableSpec<T = unknown> {
  /** Parses the raw text (undefined when unset and there is no default). */
  readonly schema: z.ZodType<T>;
  readonly group: VariableGroup;
  /** Default as an operator writes it; undefined = required or optional without default. */
  readonly default?: string;
  readonly required?: boolean;
  /** Also readable from a file named by `<NAME>_FILE` (Compose secrets). */
  readonly fileForm?: boolean;
  /** Never logged or shown; `check` prints `<set>` / `<missing>`. */
  readonly secret?: boolean;
  readonly doc: string;
  readonly example?: string;
}

const text = z.string().trim().min(1, 'must not be empty');
const optionalText = z.string().trim().optional().transform((v) => (v ? v : undefined));

/**
 * A duration from `minText` to `maxText`, both written as an operator writes them. Every maximum is
 * far below the 2^31−1 ms (about 24.8 days) a Node timer can hold: a longer wait fires after 1 ms,
 * which turns a long refresh or deadline into a tight loop. Each variable's doc says "(at most …)".
 */
function duration(minText: string, maxText: string) {
  const min = parseDuration(minText)!;
  const max = parseDuration(maxText)!;
  return z.string().transform((raw, ctx) => {
    const ms = parseDuration(raw);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${raw}" is not a duration; write it with a unit, e.g. 30s, 5m, 1h, 1h30m` });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({ code: 'custom', message: `${raw} is below the minimum of ${minText}` });
      return z.NEVER;
    }
    if (ms > max) {
      ctx.addIssue({ code: 'custom', message: `${raw} is above the maximum of ${maxText}` });
      return z.NEVER;
    }
    return ms;
  });
}

const commaList = z.string().transform((raw) =>
  raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0),
);

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), 'must be true or false')
  .transform((v) => ['true', '1', 'yes'].includes(v));

/** A count written in decimal digits (`z.coerce` would read an empty value as 0 and take `1e3`). */
function wholeNumber(min: number, max: number) {
  return z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be ${min}–${max}`);
}

const port = z.coerce.number().int('must be a whole number').min(0).max(65_535, 'must be 0–65535');

const octalMode = z
  .string()
  .trim()
  .regex(/^0?[0-7]{3}$/, 'must be an octal file mode such as 0440 or 0640')
  .transform((v) => Number.parseInt(v, 8))
  .refine((mode) => (mode & 0o007) === 0, 'must not grant access to "other" users (last digit 0): secrets are never world-readable')
  // Without it the sidecar cannot read back what it wrote, takes every file for damaged, and rewrites them forever.
  .refine((mode) => (mode & 0o400) !== 0, 'the owner must be able to read (u+r, 04 in the first digit) — e.g. 0440 or 0400');

/** A uid or gid in decimal digits; empty means unset, not uid 0. 4294967295 is (uid_t)-1, "leave unchanged" to chown, so no id. */
const optionalId = optionalText.pipe(wholeNumber(0, 4_294_967_294).optional());

/** The variable table. Order here is the order in docs/configuration.md. */
export const VARIABLES = {
  INFISICAL_SITE_URL: {
    group: 'infisical',
    schema: z.string().trim(),
    default: 'https://app.infisical.com',
    doc: 'Base URL of the Infisical instance, without `/api`. `INFISICAL_API_URL` (the CLI\'s name, with `/api`) is accepted too. `http://` is refused except on loopback unless SIDECAR_ALLOW_INSECURE_HTTP=true.',
    example: 'https://infisical.example.com',
  },
  INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: {
    group: 'infisical',
    schema: text,
    required: true,
    fileForm: true,
    doc: 'Client ID of the Universal Auth machine identity.',
  },
  INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: {
    group: 'infisical',
    schema: text,
    required: true,
    fileForm: true,
    secret: true,
    doc: 'Client secret of the machine identity. Prefer the `_FILE` form with a Compose secret.',
  },
  INFISICAL_AUTH_ORGANIZATION_SLUG: {
    group: 'infisical',
    schema: optionalText,
    doc: 'Optional sub-organization slug to scope the login to (as the Infisical CLI).',
  },
  INFISICAL_PROJECT_ID: {
    group: 'infisical',
    schema: text,
    required: true,
    doc: 'Project ID (not the slug): Project Settings → Copy Project ID.',
    example: '6a0b3c1e-9d2f-4e5a-8b7c-1f2e3d4c5b6a',
  },
  INFISICAL_ENVIRONMENT: {
    group: 'infisical',
    schema: text,
    required: true,
    doc: 'Environment slug.',
    example: 'prod',
  },
  INFISICAL_SECRET_PATHS: {
    group: 'infisical',
    schema: commaList,
    default: '/',
    doc: 'Comma-separated folders to fetch, all in every refresh. On a duplicate key the **later** folder wins (a warning names the key).',
    example: '/glitchtip/database,/glitchtip/application',
  },
  INFISICAL_INCLUDE_IMPORTS: {
    group: 'infisical',
    schema: bool,
    default: 'true',
    doc: 'Include secrets imported into the folders (a folder\'s own secrets win over imports; among imports the last one wins, as the Infisical CLI).',
  },
  INFISICAL_EXPAND_SECRET_REFERENCES: {
    group: 'infisical',
    schema: bool,
    default: 'true',
    doc: 'Let the server expand `${KEY}` references.',
  },
  SIDECAR_OUTPUT_DIR: {
    group: 'output',
    schema: text,
    default: '/secrets',
    doc: 'Directory the files are written into (mount a tmpfs volume here). Probed for writability at start.',
  },
  SIDECAR_OUTPUTS: {
    group: 'output',
    schema: commaList.pipe(z.array(z.enum(OUTPUT_FORMATS, { message: `each must be one of ${OUTPUT_FORMATS.join(', ')}` })).min(1, 'name at least one output')),
    default: OUTPUT_FORMATS.join(','),
    doc: `Which outputs to write: \`env\` → ${DEFAULT_OUTPUT_PATHS.env} (POSIX sh), \`dotenv\` → ${DEFAULT_OUTPUT_PATHS.dotenv}, \`json\` → ${DEFAULT_OUTPUT_PATHS.json}, \`files\` → ${DEFAULT_OUTPUT_PATHS.files}/<KEY>. A config file can rename them.`,
  },
  SIDECAR_FILE_MODE: {
    group: 'output',
    schema: octalMode,
    default: '0440',
    doc: 'Mode of every written file (octal). The "other" digit must be 0.',
  },
  SIDECAR_FILE_UID: {
    group: 'output',
    schema: optionalId,
    doc: 'Owner uid for written files (needs CAP_CHOWN unless it is the process uid). Default: the process uid.',
  },
  SIDECAR_FILE_GID: {
    group: 'output',
    schema: optionalId,
    doc: 'Group gid for written files (the process must be a member). Default: the process gid — run with `user: "65532:5000"` to share with GlitchTip\'s group.',
  },
  SIDECAR_LEASE_MODE: {
    group: 'output',
    schema: z.enum(['exclusive', 'standby'], { message: 'must be exclusive or standby' }),
    default: 'exclusive',
    doc: 'One sidecar writes an output directory at a time, through a lease file in it (`..lease-<n>`: host name, pid, instance id). `exclusive`: when another sidecar holds it, wait until it is released or expires (at most SIDECAR_LEASE_TTL: long enough for a recreate\'s old container to stop), then exit 74 naming the holder. `standby`: wait as long as it takes, then take over. `once` waits up to SIDECAR_ONCE_DEADLINE in both modes.',
  },
  SIDECAR_LEASE_TTL: {
    group: 'output',
    schema: duration('3s', '1h'),
    default: '30s',
    doc: 'The holder renews its lease every third of this, on its own timer (not tied to refreshes, so a long interval or backoff never lets it lapse); a lease not renewed for this long is taken over, and a holder that finds its lease taken stops writing at once (exit 74). A sidecar killed without stopping is replaced within this time (at most 1h).',
  },
  SIDECAR_CONFIG_FILE: {
    group: 'output',
    schema: optionalText,
    doc: 'Optional JSON file: `{"outputs":[{"format":"env","path":"glitchtip.env"}],"derived":{"DATABASE_URL":"postgres://u:{{ POSTGRES_PASSWORD | url }}@db/app"}}`.',
  },
  SIDECAR_DERIVE_: {
    group: 'output',
    schema: optionalText,
    doc: 'Prefix: each `SIDECAR_DERIVE_<NAME>=<template>` adds the key NAME rendered from fetched keys, e.g. `SIDECAR_DERIVE_DATABASE_URL=postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip`. Filters: url, json, base64, shell, trim.',
  },
  SIDECAR_REQUIRED_KEYS: {
    group: 'sidecar',
    schema: commaList,
    default: '',
    doc: 'Comma-separated keys that must be present after merging; if one is missing nothing is written and the service stays unready, naming the key.',
    example: 'POSTGRES_PASSWORD,SECRET_KEY,EMAIL_URL,DEFAULT_FROM_EMAIL',
  },
  SIDECAR_CONSUMER: {
    group: 'sidecar',
    schema: z.enum(['glitchtip', 'none'], { message: 'must be glitchtip or none' }),
    default: 'none',
    doc: 'Whose reading of the values the lint checks model (docs/lint-rules.md): `glitchtip` (django-environ URLs and `$`, Django\'s SECRET_KEY checks, DEFAULT_FROM_EMAIL) or `none` (only the generic rules: whitespace, near-miss keys). The generated Compose override sets `glitchtip`.',
  },
  SIDECAR_LINT: {
    group: 'sidecar',
    schema: z.enum(['warn', 'error', 'off'], { message: 'must be warn, error or off' }),
    default: 'warn',
    doc: 'What a lint finding does: `warn` logs it and shows it in `check`, `status` and `/healthz` (keys and severity only); `error` also fails the pass on a `breaks` finding, like a missing required key (nothing is written, the last good files stay; `advice` never blocks); `off` skips the checks.',
  },
  SIDECAR_REFRESH_INTERVAL: {
    group: 'sidecar',
    schema: duration('1s', '1d'),
    default: '5m',
    doc: 'Time between refreshes, ±SIDECAR_REFRESH_JITTER (at most 1d).',
  },
  SIDECAR_REFRESH_JITTER: {
    group: 'sidecar',
    schema: z.coerce.number().min(0, 'must be 0–0.5').max(0.5, 'must be 0–0.5'),
    default: '0.1',
    doc: 'Random spread of each interval as a fraction (0.1 = ±10%), so many sidecars do not refresh in step.',
  },
  SIDECAR_MAX_STALENESS: {
    group: 'sidecar',
    schema: duration('1s', '7d'),
    default: '30m',
    doc: '`/healthz` turns 503 when the last complete sync is older than this. Must exceed SIDECAR_REFRESH_INTERVAL (at most 7d).',
  },
  SIDECAR_BACKOFF_MAX: {
    group: 'sidecar',
    schema: duration('100ms', '1d'),
    default: '5m',
    doc: 'Cap of the exponential backoff after failures (at most 1d): it starts at 1s and doubles, with jitter, and is never longer than the refresh interval when that is shorter.',
  },
  SIDECAR_RETRY_AFTER_MAX: {
    group: 'sidecar',
    schema: duration('1s', '1d'),
    default: '1h',
    doc: 'Longest wait honoured from a 429\'s `retry-after`: a shorter one is waited in full (webhook pushes too wait for it), a longer one is cut to this, so a wrong or hostile header cannot park the sidecar for days (at most 1d).',
  },
  SIDECAR_REQUEST_TIMEOUT: {
    group: 'sidecar',
    schema: duration('100ms', '1m'),
    default: '10s',
    doc: 'Deadline for each Infisical request (login or one folder). The SDK also aborts any single request after 10s, so longer values have no effect (at most 1m).',
  },
  SIDECAR_ONCE_DEADLINE: {
    group: 'sidecar',
    schema: duration('1s', '1d'),
    default: '2m',
    doc: '`once` mode: give up (exit 75) when no complete sync succeeded by then (at most 1d).',
  },
  SIDECAR_CACHE_DIR: {
    group: 'sidecar',
    schema: optionalText,
    doc: 'Turns on the last-known-good cache (off when unset): after each successful sync the secrets are kept, encrypted and authenticated (AES-256-GCM), in one file in this directory, so a start while Infisical is unreachable can write the files from it. Mount a volume here that only the sidecar uses, owned by its uid with mode 0700 (checked at start). It is a copy of the secrets at rest: read docs/production.md first. Delete the directory\'s content to wipe it.',
    example: '/var/cache/infisical-sidecar',
  },
  SIDECAR_CACHE_KEY_FILE: {
    group: 'sidecar',
    schema: optionalText,
    doc: 'Optional file whose bytes (at least 32 random bytes, e.g. `head -c 32 /dev/urandom`) are the cache key, instead of the client secret of the last successful login. Without it, the cache is readable by whoever holds the client secret.',
  },
  SIDECAR_CACHE_FALLBACK_AFTER: {
    group: 'sidecar',
    schema: duration('0s', '1h'),
    default: '5s',
    doc: 'At start, how long Infisical must be unreachable (no answer, 5xx, 429, or a page that is not Infisical\'s) before the files are written from the cache (at most 1h). Never after a login or access refusal.',
  },
  SIDECAR_CACHE_MAX_AGE: {
    group: 'sidecar',
    schema: duration('1m', '7d'),
    default: '3d',
    doc: 'A cache last confirmed against Infisical longer ago than this is not used (at most 7d). Longer means a revoked identity cut off from Infisical keeps serving its secrets longer.',
  },
  SIDECAR_CACHE_HEALTHY: {
    group: 'sidecar',
    schema: bool,
    default: 'true',
    doc: 'Whether `/healthz` (and so the Docker healthcheck that gates the app) passes while the files come from the cache, whatever SIDECAR_MAX_STALENESS says. `false` keeps the app gated until Infisical answers. `/healthz?strict=1` answers 503 in cache mode either way, for monitors.',
  },
  SIDECAR_ONCE_ALLOW_CACHE: {
    group: 'sidecar',
    schema: bool,
    default: 'true',
    doc: '`once` mode: may write the files from the cache (exit 0, its last log line says so). `false`: `once` never uses the cache and fails as it would without one (exit 75 or 69).',
  },
  SIDECAR_ALLOW_INSECURE_HTTP: {
    group: 'sidecar',
    schema: bool,
    default: 'false',
    doc: 'Allow an `http://` INFISICAL_SITE_URL that is not loopback (credentials and secrets then cross the network in clear text).',
  },
  SIDECAR_LOG_LEVEL: {
    group: 'sidecar',
    schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], { message: 'must be one of trace, debug, info, warn, error, fatal, silent' }),
    default: 'info',
    doc: 'pino log level.',
  },
  SIDECAR_LOG_FORMAT: {
    group: 'sidecar',
    schema: z.enum(['auto', 'json', 'pretty'], { message: 'must be one of auto, json, pretty' }),
    default: 'auto',
    doc: 'Log format: `json` (one JSON object per line), `pretty` (human-readable, coloured unless NO_COLOR is set), or `auto`: pretty when stdout is a terminal, JSON otherwise (containers, pipes, log collectors). Redaction applies to both.',
  },
  SIDECAR_WATCH: {
    group: 'reload',
    schema: bool,
    default: 'true',
    doc: 'Watch the output directory (restore files someone deleted or edited), the credential files (log in again when the client secret is rotated) and SIDECAR_CONFIG_FILE (apply a valid change, reject an invalid one).',
  },
  SIDECAR_WEBHOOK_SECRET: {
    group: 'reload',
    schema: optionalText,
    fileForm: true,
    secret: true,
    doc: 'Enables `POST /webhook` for Infisical project webhooks: the signing secret configured on the webhook. Valid calls trigger an immediate refresh; bad signatures get 401.',
  },
  SIDECAR_WEBHOOK_TOLERANCE: {
    group: 'reload',
    schema: duration('1s', '1h'),
    default: '5m',
    doc: 'How far a webhook\'s signed timestamp may be from our clock, for replay protection (at most 1h).',
  },
  SIDECAR_RELOAD_COMMAND: {
    group: 'reload',
    schema: optionalText,
    doc: 'Command run after the files changed: a JSON array (run without a shell) or a string for `/bin/sh -c`. Gets SIDECAR_REVISION and SIDECAR_CHANGED_KEYS (names only).',
    example: '["/usr/local/bin/notify-reload"]',
  },
  SIDECAR_RELOAD_URL: {
    group: 'reload',
    schema: optionalText,
    fileForm: true,
    secret: true,
    doc: 'URL that receives `POST {"event":"secrets.changed","revision":N,"changedKeys":[…]}` after the files changed; any 2xx is success. The URL is a secret (chat and CI hooks carry their token in the path): prefer the `_FILE` form. Logs and `check` show only its scheme and host; a redirect (3xx) is not followed and counts as a failed reload.',
    example: 'http://web:8000/internal/reload',
  },
  SIDECAR_RESTART_SERVICES: {
    group: 'reload',
    schema: commaList,
    default: '',
    doc: 'Compose services of the same project to restart, one at a time and each waiting until healthy, after the files changed. Needs the Docker API (SIDECAR_DOCKER_HOST); see docs/rotation.md for the risk.',
    example: 'web,worker,beat',
  },
  SIDECAR_DOCKER_HOST: {
    group: 'reload',
    schema: text,
    default: 'unix:///var/run/docker.sock',
    doc: 'Docker Engine API for SIDECAR_RESTART_SERVICES: a unix socket or the `http://` address of a socket proxy.',
  },
  SIDECAR_RELOAD_DEBOUNCE: {
    group: 'reload',
    schema: duration('0s', '1h'),
    default: '5s',
    doc: 'Changes closer together than this are merged into one reload; the wait never exceeds 4× this (at most 1h).',
  },
  SIDECAR_RELOAD_COOLDOWN: {
    group: 'reload',
    schema: duration('0s', '1d'),
    default: '30s',
    doc: 'Minimum time between two reloads; changes during it are merged into the next one (at most 1d).',
  },
  SIDECAR_RELOAD_TIMEOUT: {
    group: 'reload',
    schema: duration('1s', '1h'),
    default: '2m',
    doc: 'Time limit for the command, the URL call, and for each restarted service to become healthy (at most 1h).',
  },
  SIDECAR_RELOAD_ON_FIRST_WRITE: {
    group: 'reload',
    schema: bool,
    default: 'false',
    doc: 'Also run the reload actions when the first sync fills an empty volume. (A first sync that *replaces different content* left by an earlier run always reloads: a secret rotated while the sidecar was down still reaches the app.)',
  },
  SIDECAR_POSTGRES_PASSWORD_KEY: {
    group: 'postgres',
    schema: optionalText.pipe(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a key name such as POSTGRES_PASSWORD').optional()),
    doc: 'Turns on PostgreSQL role sync (off when unset; docs/postgres-role-sync.md): when a refresh brings a new value for this key, the sidecar first sets it as the password of the role in SIDECAR_POSTGRES_URL (`ALTER ROLE CURRENT_USER` with a SCRAM-SHA-256 verifier computed in the sidecar, so the plaintext never reaches the server), checks that the new password logs in and a wrong one is refused, and only then writes the files. Until then the previous set stays, `/healthz` is `degraded` with the reason.',
    example: 'POSTGRES_PASSWORD',
  },
  SIDECAR_POSTGRES_URL: {
    group: 'postgres',
    schema: optionalText.transform((text, ctx) => {
      if (text === undefined) return undefined;
      const parsed = parsePostgresUrl(text);
      if ('problem' in parsed) {
        ctx.addIssue({ code: 'custom', message: parsed.problem });
        return z.NEVER;
      }
      return parsed as PostgresTarget;
    }),
    doc: 'The role whose password follows SIDECAR_POSTGRES_PASSWORD_KEY, as `postgres://ROLE@HOST:PORT/DATABASE`, without a password. `?sslmode=` as libpq reads it (default `prefer`; `verify-ca`/`verify-full` need `&sslrootcert=/path/ca.pem`). Required with SIDECAR_POSTGRES_PASSWORD_KEY.',
    example: 'postgres://glitchtip@postgres:5432/glitchtip',
  },
  SIDECAR_POSTGRES_UNREACHABLE: {
    group: 'postgres',
    schema: z.enum(['hold', 'publish']),
    default: 'hold',
    doc: 'What a new password does while PostgreSQL does not answer: `hold` keeps the previous set (the app keeps working with the password the database still has) and retries with backoff; `publish` writes it anyway and sets the role when PostgreSQL answers — until then new connections of the app are refused.',
  },
  SIDECAR_POSTGRES_TIMEOUT: {
    group: 'postgres',
    schema: duration('1s', '1m'),
    default: '10s',
    doc: 'Deadline for one connection to PostgreSQL, and for each statement on it (at most 1m).',
  },
  SIDECAR_HEALTH_HOST: {
    group: 'health',
    schema: text,
    default: '0.0.0.0',
    doc: 'Address `/healthz` listens on. Use 127.0.0.1 to keep it inside the container.',
  },
  SIDECAR_HEALTH_PORT: {
    group: 'health',
    schema: port,
    default: '8080',
    doc: 'Port of `/healthz`, `/readyz`, `/livez`.',
  },
  SIDECAR_HEALTH_REQUEST_TIMEOUT: {
    group: 'health',
    schema: duration('100ms', '1m'),
    default: '3s',
    doc: 'Time a client of the health port has to send a whole request, headers and body (at most 1m); a connection idle for as long (before its request, between keep-alive requests, or not reading its answer) is closed too. Slow clients get 408 or a closed connection. Keep it below the 4 s `healthcheck` waits, so a Docker healthcheck outlasts clients that hold every connection (docs/operations.md).',
  },
  SIDECAR_HEALTH_MAX_CONNECTIONS: {
    group: 'health',
    schema: wholeNumber(1, 10_000),
    default: '64',
    doc: 'Most connections the health port holds at once; a connection beyond it is closed as soon as it is accepted. Lowered at start when the open-file limit is too small to keep SIDECAR_HEALTH_FD_RESERVE descriptors free.',
  },
  SIDECAR_HEALTH_FD_RESERVE: {
    group: 'health',
    schema: wholeNumber(0, 100_000),
    default: '64',
    doc: 'File descriptors that health-port clients can never take, kept for the sync (connections to Infisical, writing the files, reload actions): the connection cap is at most the soft open-file limit (`ulimit -n`, read from /proc/self/limits) minus the descriptors open at start minus this. The sidecar refuses to start when fewer than 4 connections remain.',
  },
  SIDECAR_HEARTBEAT_URL: {
    group: 'health',
    schema: optionalText,
    fileForm: true,
    secret: true,
    doc: 'Push monitor (dead man\'s switch: healthchecks.io, Uptime Kuma push, Better Stack, GlitchTip heartbeat) pinged after every successful sync, with a deadline and no retry; the receiver alerts when the pings stop. The URL is a secret (its path or query is the token): prefer the `_FILE` form, since the plain variable is visible to anyone who can run `docker inspect`. Logs, `check` and `/healthz` show only its scheme and host. `https://` is required except on loopback unless SIDECAR_ALLOW_INSECURE_HTTP=true; a redirect (3xx) is not followed and counts as a failed ping. `user:password@` in it is sent as basic authentication. See docs/operations.md.',
    example: 'https://hc-ping.com/<uuid>',
  },
  SIDECAR_HEARTBEAT_METHOD: {
    group: 'health',
    schema: z.enum(['GET', 'POST', 'HEAD'], { message: 'must be GET, POST or HEAD' }),
    default: 'GET',
    doc: 'HTTP method of the heartbeat pings. The body is always empty. GlitchTip\'s heartbeat monitors need POST.',
  },
  SIDECAR_HEARTBEAT_FAIL_URL: {
    group: 'health',
    schema: optionalText,
    fileForm: true,
    secret: true,
    doc: 'URL pinged once when the sidecar turns unhealthy (failing, stale, missing keys) or serves from a cache, and not again until it has recovered. Same rules as SIDECAR_HEARTBEAT_URL. Give this or SIDECAR_HEARTBEAT_FAIL_SUFFIX, not both; with neither, no failure ping is sent and the receiver alerts when the pings stop.',
  },
  SIDECAR_HEARTBEAT_FAIL_SUFFIX: {
    group: 'health',
    schema: optionalText.refine((suffix) => suffix === undefined || /^[/?]/.test(suffix), 'must start with / (appended to the path, e.g. /fail) or ? (query parameters that replace those of the same name, e.g. ?status=down)'),
    doc: 'The failure form derived from SIDECAR_HEARTBEAT_URL: `/fail` is appended to its path (healthchecks.io: `https://hc-ping.com/<uuid>/fail`); `?status=down&msg=stale` sets those query parameters, replacing the same names (Uptime Kuma: `…/api/push/<token>?status=up` becomes `…?status=down&msg=stale`).',
    example: '/fail',
  },
  SIDECAR_HEARTBEAT_TIMEOUT: {
    group: 'health',
    schema: duration('100ms', '1m'),
    default: '10s',
    doc: 'Deadline of one heartbeat ping (at most 1m). Pings never delay a sync: at most one is in flight, and a ping due while another is still waiting is skipped (counted), not queued.',
  },
} satisfies Record<string, VariableSpec>;

export type VariableName = keyof typeof VARIABLES;

/** `SIDECAR_DERIVE_` is a prefix (`SIDECAR_DERIVE_<NAME>`), documented in the table but not a setting of its own. */
export const DERIVE_PREFIX = 'SIDECAR_DERIVE_' satisfies VariableName;

/** The variables that hold one setting each: every row of the table but the derive prefix. */
export type SettingName = Exclude<VariableName, typeof DERIVE_PREFIX>;

/** Each setting's parsed value, by name: the output type of its schema in the table. */
export type SettingValues = { readonly [K in SettingName]: z.output<(typeof VARIABLES)[K]['schema']> };

/**
 * The parsed value of one setting. An indexed access on `SettingValues` (not a conditional type of
 * its own), so generic code over a setting name `K` keeps the value's type tied to `K`.
 */
export type SettingValue<K extends SettingName> = SettingValues[K];

/** The optional JSON config file: outputs with custom names, derived values. Unknown keys are errors. */
export const ConfigFileSchema = z
  .object({
    outputs: z
      .array(
        z
          .object({
            format: z.enum(OUTPUT_FORMATS),
            path: z
              .string()
              .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/, 'must be a plain file name (letters, digits, . _ -), not a path'),
          })
          .strict(),
      )
      .min(1)
      .optional(),
    derived: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'derived names must be environment variable names'), z.string()).optional(),
  })
  .strict();

export type ConfigFile = z.output<typeof ConfigFileSchema>;

/**
 * The value of a setting as `Config` holds it: its parsed type, read-only. Config's fields take their
 * types from here, so a field that does not match its variable's schema does not compile.
 */
type Setting<K extends SettingName> = Readonly<SettingValue<K>>;

/** The validated, frozen configuration every stage receives. Each field names the variable it comes from. */
export interface Config {
  /** INFISICAL_SITE_URL (or the CLI's INFISICAL_DOMAIN / INFISICAL_API_URL), without `/api` or a trailing slash. */
  readonly siteUrl: Setting<'INFISICAL_SITE_URL'>;
  readonly clientId: Setting<'INFISICAL_UNIVERSAL_AUTH_CLIENT_ID'>;
  readonly clientSecret: Setting<'INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET'>;
  /** Where the credentials came from, so a rotated file can be re-read (undefined = environment). */
  readonly clientIdFile: string | undefined;
  readonly clientSecretFile: string | undefined;
  readonly organizationSlug: Setting<'INFISICAL_AUTH_ORGANIZATION_SLUG'>;
  readonly projectId: Setting<'INFISICAL_PROJECT_ID'>;
  readonly environment: Setting<'INFISICAL_ENVIRONMENT'>;
  /** INFISICAL_SECRET_PATHS, each without a trailing slash. */
  readonly secretPaths: Setting<'INFISICAL_SECRET_PATHS'>;
  readonly includeImports: Setting<'INFISICAL_INCLUDE_IMPORTS'>;
  readonly expandSecretReferences: Setting<'INFISICAL_EXPAND_SECRET_REFERENCES'>;
  readonly outputDir: Setting<'SIDECAR_OUTPUT_DIR'>;
  /** SIDECAR_OUTPUTS under their default names, or the config file's `outputs`. */
  readonly outputs: readonly OutputSpec[];
  readonly fileMode: Setting<'SIDECAR_FILE_MODE'>;
  readonly fileUid: Setting<'SIDECAR_FILE_UID'>;
  readonly fileGid: Setting<'SIDECAR_FILE_GID'>;
  readonly leaseMode: Setting<'SIDECAR_LEASE_MODE'>;
  readonly leaseTtlMs: Setting<'SIDECAR_LEASE_TTL'>;
  readonly configFile: Setting<'SIDECAR_CONFIG_FILE'>;
  /** Derived key → template source (config file, then SIDECAR_DERIVE_<NAME>), parsed by the render stage. */
  readonly derived: ReadonlyMap<string, string>;
  readonly requiredKeys: Setting<'SIDECAR_REQUIRED_KEYS'>;
  readonly consumer: Setting<'SIDECAR_CONSUMER'>;
  readonly lint: Setting<'SIDECAR_LINT'>;
  readonly refreshIntervalMs: Setting<'SIDECAR_REFRESH_INTERVAL'>;
  readonly refreshJitter: Setting<'SIDECAR_REFRESH_JITTER'>;
  readonly maxStalenessMs: Setting<'SIDECAR_MAX_STALENESS'>;
  readonly backoffMaxMs: Setting<'SIDECAR_BACKOFF_MAX'>;
  readonly retryAfterMaxMs: Setting<'SIDECAR_RETRY_AFTER_MAX'>;
  readonly requestTimeoutMs: Setting<'SIDECAR_REQUEST_TIMEOUT'>;
  readonly onceDeadlineMs: Setting<'SIDECAR_ONCE_DEADLINE'>;
  /** SIDECAR_CACHE_DIR; undefined = no last-known-good cache. */
  readonly cacheDir: Setting<'SIDECAR_CACHE_DIR'>;
  readonly cacheKeyFile: Setting<'SIDECAR_CACHE_KEY_FILE'>;
  readonly cacheFallbackAfterMs: Setting<'SIDECAR_CACHE_FALLBACK_AFTER'>;
  readonly cacheMaxAgeMs: Setting<'SIDECAR_CACHE_MAX_AGE'>;
  readonly cacheHealthy: Setting<'SIDECAR_CACHE_HEALTHY'>;
  readonly onceAllowCache: Setting<'SIDECAR_ONCE_ALLOW_CACHE'>;
  readonly allowInsecureHttp: Setting<'SIDECAR_ALLOW_INSECURE_HTTP'>;
  readonly logLevel: Setting<'SIDECAR_LOG_LEVEL'>;
  readonly logFormat: Setting<'SIDECAR_LOG_FORMAT'>;
  readonly healthHost: Setting<'SIDECAR_HEALTH_HOST'>;
  readonly healthPort: Setting<'SIDECAR_HEALTH_PORT'>;
  readonly healthRequestTimeoutMs: Setting<'SIDECAR_HEALTH_REQUEST_TIMEOUT'>;
  readonly healthMaxConnections: Setting<'SIDECAR_HEALTH_MAX_CONNECTIONS'>;
  readonly healthFdReserve: Setting<'SIDECAR_HEALTH_FD_RESERVE'>;
  /** SIDECAR_HEARTBEAT_URL, checked (a URL; https unless loopback or SIDECAR_ALLOW_INSECURE_HTTP). A secret: show it only through `urlOrigin`. */
  readonly heartbeatUrl: Setting<'SIDECAR_HEARTBEAT_URL'>;
  readonly heartbeatMethod: Setting<'SIDECAR_HEARTBEAT_METHOD'>;
  /** SIDECAR_HEARTBEAT_FAIL_URL, checked as heartbeatUrl; at most one of it and heartbeatFailSuffix is set. */
  readonly heartbeatFailUrl: Setting<'SIDECAR_HEARTBEAT_FAIL_URL'>;
  readonly heartbeatFailSuffix: Setting<'SIDECAR_HEARTBEAT_FAIL_SUFFIX'>;
  readonly heartbeatTimeoutMs: Setting<'SIDECAR_HEARTBEAT_TIMEOUT'>;
  readonly watch: Setting<'SIDECAR_WATCH'>;
  readonly webhookSecret: Setting<'SIDECAR_WEBHOOK_SECRET'>;
  readonly webhookToleranceMs: Setting<'SIDECAR_WEBHOOK_TOLERANCE'>;
  readonly reloadCommand: Setting<'SIDECAR_RELOAD_COMMAND'>;
  readonly reloadUrl: Setting<'SIDECAR_RELOAD_URL'>;
  readonly restartServices: Setting<'SIDECAR_RESTART_SERVICES'>;
  readonly dockerHost: Setting<'SIDECAR_DOCKER_HOST'>;
  readonly reloadDebounceMs: Setting<'SIDECAR_RELOAD_DEBOUNCE'>;
  readonly reloadCooldownMs: Setting<'SIDECAR_RELOAD_COOLDOWN'>;
  readonly reloadTimeoutMs: Setting<'SIDECAR_RELOAD_TIMEOUT'>;
  readonly reloadOnFirstWrite: Setting<'SIDECAR_RELOAD_ON_FIRST_WRITE'>;
  /** SIDECAR_POSTGRES_PASSWORD_KEY; undefined = no role sync. When set, postgresTarget is set too. */
  readonly postgresPasswordKey: Setting<'SIDECAR_POSTGRES_PASSWORD_KEY'>;
  /** SIDECAR_POSTGRES_URL, parsed (src/config/postgres.ts). */
  readonly postgresTarget: Setting<'SIDECAR_POSTGRES_URL'>;
  readonly postgresUnreachable: Setting<'SIDECAR_POSTGRES_UNREACHABLE'>;
  readonly postgresTimeoutMs: Setting<'SIDECAR_POSTGRES_TIMEOUT'>;
}
