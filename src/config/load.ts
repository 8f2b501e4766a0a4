/**
 * `loadConfig` is the only code that reads the process environment. It validates every variable
 * against the table in `schema.ts`, reports **every** problem at once (one line per variable, naming
 * it and the fix), and returns a frozen `Config`. Each setting is parsed by its own schema into the
 * type the table declares, so `Config` is built without a single cast.
 */
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { trimEndOf, urlOrigin } from '../text.js';
import { readUtf8, readVariableFile, type ReadTextFile } from './credentials.js';
import { DEFAULT_OUTPUT_PATHS } from './outputs.js';
import {
  ConfigFileSchema,
  DERIVE_PREFIX,
  VARIABLES,
  type Config,
  type ConfigFile,
  type SettingName,
  type SettingValue,
  type SettingValues,
  type VariableSpec,
} from './schema.js';

export type Env = Readonly<Record<string, string | undefined>>;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** The table's rows, each typed by its own setting, so parsing one yields the type its schema declares. */
const SETTINGS: { readonly [K in SettingName]: VariableSpec<SettingValue<K>> } = VARIABLES;

const isSettingName = (name: string): name is SettingName => name in SETTINGS && name !== DERIVE_PREFIX;
const SETTING_NAMES: readonly SettingName[] = Object.keys(VARIABLES).filter(isSettingName);

/** Settings parsed so far; a setting whose text was refused is absent. */
type ParsedSettings = { -readonly [K in SettingName]?: SettingValue<K> };

/** The raw text of one setting (undefined = unset), or `failed` when its `_FILE` form could not be used (the problem is already reported). */
type RawText = { readonly failed: false; readonly text: string | undefined; readonly file?: string } | { readonly failed: true };

export function loadConfig(env: Env = process.env, readTextFile: ReadTextFile = readUtf8): Config {
  const problems: string[] = [];
  const raw = new Map<SettingName, RawText>();
  for (const name of SETTING_NAMES) {
    raw.set(name, name === 'INFISICAL_SITE_URL' ? { failed: false, text: siteUrlText(env) } : readRaw(name, env, readTextFile, problems));
  }

  const values: ParsedSettings = {};
  for (const [name, text] of raw) if (!text.failed) parseSetting(name, text.text, values, problems);

  problems.push(...unknownSidecarVariables(env));
  const derivedFromEnv = derivedVariables(env, problems);
  const configFile = values.SIDECAR_CONFIG_FILE === undefined ? undefined : readConfigFile(values.SIDECAR_CONFIG_FILE, readTextFile, problems);

  const siteUrl = normalizeSiteUrl(values.INFISICAL_SITE_URL, values.SIDECAR_ALLOW_INSECURE_HTTP, problems);
  if (values.SIDECAR_REFRESH_INTERVAL !== undefined && values.SIDECAR_MAX_STALENESS !== undefined && values.SIDECAR_MAX_STALENESS <= values.SIDECAR_REFRESH_INTERVAL) {
    problems.push(
      `SIDECAR_MAX_STALENESS: must be longer than SIDECAR_REFRESH_INTERVAL (${env.SIDECAR_MAX_STALENESS ?? VARIABLES.SIDECAR_MAX_STALENESS.default} ≤ ${env.SIDECAR_REFRESH_INTERVAL ?? VARIABLES.SIDECAR_REFRESH_INTERVAL.default}) — allow at least two intervals, e.g. 3× the interval`,
    );
  }
  if (values.INFISICAL_SECRET_PATHS !== undefined) checkSecretPaths(values.INFISICAL_SECRET_PATHS, problems);
  checkReloadSettings(values.SIDECAR_RELOAD_COMMAND, values.SIDECAR_RELOAD_URL, problems);
  checkHeartbeatSettings(values, problems);
  checkCacheDir(values.SIDECAR_CACHE_DIR, values.SIDECAR_OUTPUT_DIR, problems);
  checkPostgresSettings(env, problems);
  // Every setting that is absent from `values` has a problem reported, so a complete set means no problems from parsing.
  if (siteUrl === undefined || problems.length > 0 || !isComplete(values)) throw new ConfigError(problems);

  const derived = new Map<string, string>(Object.entries(configFile?.derived ?? {}));
  for (const [key, template] of derivedFromEnv) derived.set(key, template);
  const outputs = configFile?.outputs ?? values.SIDECAR_OUTPUTS.map((format) => ({ format, path: DEFAULT_OUTPUT_PATHS[format] }));
  const fileOf = (name: SettingName) => {
    const text = raw.get(name);
    return text?.failed === false ? text.file : undefined;
  };

  const config: Config = {
    siteUrl,
    clientId: values.INFISICAL_UNIVERSAL_AUTH_CLIENT_ID,
    clientSecret: values.INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET,
    clientIdFile: fileOf('INFISICAL_UNIVERSAL_AUTH_CLIENT_ID'),
    clientSecretFile: fileOf('INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET'),
    organizationSlug: values.INFISICAL_AUTH_ORGANIZATION_SLUG,
    projectId: values.INFISICAL_PROJECT_ID,
    environment: values.INFISICAL_ENVIRONMENT,
    secretPaths: Object.freeze(values.INFISICAL_SECRET_PATHS.map(normalizeFolder)),
    includeImports: values.INFISICAL_INCLUDE_IMPORTS,
    expandSecretReferences: values.INFISICAL_EXPAND_SECRET_REFERENCES,
    outputDir: values.SIDECAR_OUTPUT_DIR,
    outputs: Object.freeze(outputs.map((output) => Object.freeze({ ...output }))),
    fileMode: values.SIDECAR_FILE_MODE,
    fileUid: values.SIDECAR_FILE_UID,
    fileGid: values.SIDECAR_FILE_GID,
    leaseMode: values.SIDECAR_LEASE_MODE,
    leaseTtlMs: values.SIDECAR_LEASE_TTL,
    configFile: values.SIDECAR_CONFIG_FILE,
    derived,
    requiredKeys: Object.freeze(values.SIDECAR_REQUIRED_KEYS),
    consumer: values.SIDECAR_CONSUMER,
    lint: values.SIDECAR_LINT,
    refreshIntervalMs: values.SIDECAR_REFRESH_INTERVAL,
    refreshJitter: values.SIDECAR_REFRESH_JITTER,
    maxStalenessMs: values.SIDECAR_MAX_STALENESS,
    backoffMaxMs: values.SIDECAR_BACKOFF_MAX,
    retryAfterMaxMs: values.SIDECAR_RETRY_AFTER_MAX,
    requestTimeoutMs: values.SIDECAR_REQUEST_TIMEOUT,
    onceDeadlineMs: values.SIDECAR_ONCE_DEADLINE,
    cacheDir: values.SIDECAR_CACHE_DIR,
    cacheKeyFile: values.SIDECAR_CACHE_KEY_FILE,
    cacheFallbackAfterMs: values.SIDECAR_CACHE_FALLBACK_AFTER,
    cacheMaxAgeMs: values.SIDECAR_CACHE_MAX_AGE,
    cacheHealthy: values.SIDECAR_CACHE_HEALTHY,
    onceAllowCache: values.SIDECAR_ONCE_ALLOW_CACHE,
    allowInsecureHttp: values.SIDECAR_ALLOW_INSECURE_HTTP,
    logLevel: values.SIDECAR_LOG_LEVEL,
    logFormat: values.SIDECAR_LOG_FORMAT,
    healthHost: values.SIDECAR_HEALTH_HOST,
    healthPort: values.SIDECAR_HEALTH_PORT,
    healthRequestTimeoutMs: values.SIDECAR_HEALTH_REQUEST_TIMEOUT,
    healthMaxConnections: values.SIDECAR_HEALTH_MAX_CONNECTIONS,
    healthFdReserve: values.SIDECAR_HEALTH_FD_RESERVE,
    heartbeatUrl: values.SIDECAR_HEARTBEAT_URL,
    heartbeatMethod: values.SIDECAR_HEARTBEAT_METHOD,
    heartbeatFailUrl: values.SIDECAR_HEARTBEAT_FAIL_URL,
    heartbeatFailSuffix: values.SIDECAR_HEARTBEAT_FAIL_SUFFIX,
    heartbeatTimeoutMs: values.SIDECAR_HEARTBEAT_TIMEOUT,
    watch: values.SIDECAR_WATCH,
    webhookSecret: values.SIDECAR_WEBHOOK_SECRET,
    webhookToleranceMs: values.SIDECAR_WEBHOOK_TOLERANCE,
    reloadCommand: values.SIDECAR_RELOAD_COMMAND,
    reloadUrl: values.SIDECAR_RELOAD_URL,
    restartServices: Object.freeze(values.SIDECAR_RESTART_SERVICES),
    dockerHost: values.SIDECAR_DOCKER_HOST,
    reloadDebounceMs: values.SIDECAR_RELOAD_DEBOUNCE,
    reloadCooldownMs: values.SIDECAR_RELOAD_COOLDOWN,
    reloadTimeoutMs: values.SIDECAR_RELOAD_TIMEOUT,
    reloadOnFirstWrite: values.SIDECAR_RELOAD_ON_FIRST_WRITE,
    postgresPasswordKey: values.SIDECAR_POSTGRES_PASSWORD_KEY,
    postgresTarget: values.SIDECAR_POSTGRES_URL,
    postgresUnreachable: values.SIDECAR_POSTGRES_UNREACHABLE,
    postgresTimeoutMs: values.SIDECAR_POSTGRES_TIMEOUT,
  };
  return Object.freeze(config);
}

/** Parses one setting's text (or its default) with the table's schema; a refusal becomes a problem naming the variable. */
function parseSetting<K extends SettingName>(name: K, text: string | undefined, values: ParsedSettings, problems: string[]): void {
  const spec = SETTINGS[name];
  const input = text ?? spec.default;
  if (input === undefined && spec.required) {
    problems.push(`${name}: not set — ${requiredHint(name, spec)}`);
    return;
  }
  const parsed = spec.schema.safeParse(input);
  if (!parsed.success) {
    const reasons = parsed.error.issues.map((issue) => issue.message).join('; ');
    problems.push(`${name}: ${reasons}${spec.example ? ` — e.g. ${spec.example}` : ''}`);
    return;
  }
  values[name] = parsed.data;
}

/** Whether every setting was parsed (an optional one may hold undefined, but is present). */
function isComplete(values: ParsedSettings): values is SettingValues {
  return SETTING_NAMES.every((name) => name in values);
}

/** A summary safe to log: secrets shown as `<set>`, never their value. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    siteUrl: config.siteUrl,
    clientId: config.clientId,
    clientSecret: '<set>',
    credentialFiles: { clientId: config.clientIdFile ?? null, clientSecret: config.clientSecretFile ?? null },
    projectId: config.projectId,
    environment: config.environment,
    secretPaths: config.secretPaths,
    outputDir: config.outputDir,
    outputs: config.outputs.map((o) => `${o.format}:${o.path}`),
    derivedKeys: [...config.derived.keys()],
    requiredKeys: config.requiredKeys,
    refreshIntervalMs: config.refreshIntervalMs,
    maxStalenessMs: config.maxStalenessMs,
    health: `${config.healthHost}:${config.healthPort}`,
    webhook: config.webhookSecret === undefined ? 'off' : 'on',
    heartbeat:
      config.heartbeatUrl === undefined
        ? 'off'
        : {
            target: urlOrigin(config.heartbeatUrl),
            method: config.heartbeatMethod,
            failure: config.heartbeatFailUrl !== undefined ? urlOrigin(config.heartbeatFailUrl) : (config.heartbeatFailSuffix ?? 'none'),
          },
    reload: {
      command: config.reloadCommand === undefined ? null : '<set>',
      url: config.reloadUrl === undefined ? null : urlOrigin(config.reloadUrl),
      restartServices: config.restartServices,
    },
  };
}

function readRaw(name: SettingName, env: Env, readTextFile: ReadTextFile, problems: string[]): RawText {
  const direct = env[name];
  const filePath = SETTINGS[name].fileForm ? env[`${name}_FILE`] : undefined;
  if (filePath === undefined || filePath === '') return { failed: false, text: direct };
  if (direct !== undefined && direct !== '') {
    problems.push(`${name}: both ${name} and ${name}_FILE are set — keep only one (the _FILE form for Compose secrets)`);
    return { failed: true };
  }
  const read = readVariableFile(name, filePath, readTextFile);
  if (!read.ok) {
    problems.push(read.problem);
    return { failed: true };
  }
  return { failed: false, text: read.text, file: filePath };
}

/** INFISICAL_SITE_URL wins; otherwise the CLI's INFISICAL_DOMAIN / INFISICAL_API_URL with its `/api` suffix removed. */
function siteUrlText(env: Env): string | undefined {
  return [env.INFISICAL_SITE_URL, env.INFISICAL_DOMAIN, env.INFISICAL_API_URL].find((value) => value !== undefined && value.trim() !== '');
}

function normalizeSiteUrl(text: string | undefined, allowInsecureHttp: boolean | undefined, problems: string[]): string | undefined {
  if (text === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.push(`INFISICAL_SITE_URL: "${text}" is not a URL — write it with its scheme, e.g. https://infisical.example.com`);
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    problems.push(`INFISICAL_SITE_URL: scheme ${url.protocol} is not supported — use https://`);
    return undefined;
  }
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname) && allowInsecureHttp !== true) {
    problems.push(
      `INFISICAL_SITE_URL: http:// to ${url.hostname} would send credentials and secrets in clear text — use https://, or set SIDECAR_ALLOW_INSECURE_HTTP=true for a trusted private network`,
    );
  }
  if (url.username || url.password || url.search || url.hash) {
    problems.push('INFISICAL_SITE_URL: must not contain credentials, a query or a fragment — give only scheme, host, port and an optional path prefix');
  }
  // The SDK appends `/api/...` itself; the CLI's form carries `/api`, so drop it rather than call /api/api.
  const path = trimEndOf(url.pathname, '/').replace(/\/api$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

function requiredHint(name: string, spec: VariableSpec): string {
  const forms = spec.fileForm ? `set ${name} or ${name}_FILE (path of a Compose secret)` : `set ${name}`;
  return `${forms}. ${spec.doc}${spec.example ? ` e.g. ${spec.example}` : ''}`;
}

function unknownSidecarVariables(env: Env): string[] {
  const known = new Set<string>(Object.keys(VARIABLES));
  // The `_FILE` form of a variable that has one (SIDECAR_WEBHOOK_SECRET_FILE) is a known setting too.
  for (const [name, spec] of Object.entries<VariableSpec>(VARIABLES)) if (spec.fileForm) known.add(`${name}_FILE`);
  return Object.keys(env)
    .filter((name) => name.startsWith('SIDECAR_') && !name.startsWith(DERIVE_PREFIX) && !known.has(name))
    .map((name) => {
      const close = [...known].find((candidate) => candidate !== DERIVE_PREFIX && editDistance(candidate, name) <= 2);
      return `${name}: unknown setting${close ? ` — did you mean ${close}?` : ' — see docs/configuration.md for the list'}`;
    });
}

function derivedVariables(env: Env, problems: string[]): Map<string, string> {
  const derived = new Map<string, string>();
  for (const [name, template] of Object.entries(env)) {
    if (!name.startsWith(DERIVE_PREFIX) || template === undefined) continue;
    const key = name.slice(DERIVE_PREFIX.length);
    if (!ENV_NAME.test(key)) {
      problems.push(`${name}: "${key}" is not an environment variable name — use letters, digits and _`);
    } else if (template.trim() === '') {
      problems.push(`${name}: empty template — write e.g. {{ POSTGRES_PASSWORD | url }} or unset it`);
    } else {
      derived.set(key, template);
    }
  }
  return derived;
}

function readConfigFile(path: string, readTextFile: ReadTextFile, problems: string[]): ConfigFile | undefined {
  let text: string;
  try {
    text = readTextFile(path);
  } catch (error) {
    problems.push(`SIDECAR_CONFIG_FILE: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}) — mount it and make it readable`);
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    problems.push(`SIDECAR_CONFIG_FILE: ${path} is not valid JSON (${(error as Error).message})`);
    return undefined;
  }
  const parsed = ConfigFileSchema.safeParse(json);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`SIDECAR_CONFIG_FILE: ${path}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    }
    return undefined;
  }
  const names = (parsed.data.outputs ?? []).map((output) => output.path);
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (duplicate !== undefined) problems.push(`SIDECAR_CONFIG_FILE: ${path}: outputs: "${duplicate}" is used twice — give each output its own name`);
  return parsed.data;
}

function checkSecretPaths(paths: readonly string[], problems: string[]): void {
  if (paths.length === 0) problems.push('INFISICAL_SECRET_PATHS: no folder given — e.g. /glitchtip/database,/glitchtip/application');
  for (const path of paths) {
    if (!path.startsWith('/')) problems.push(`INFISICAL_SECRET_PATHS: "${path}" must start with / — e.g. /${path}`);
    else if (path.split('/').some((segment) => segment === '..' || segment === '.')) problems.push(`INFISICAL_SECRET_PATHS: "${path}" must not contain . or .. segments`);
  }
  const normalized = paths.map(normalizeFolder);
  const duplicate = normalized.find((path, index) => normalized.indexOf(path) !== index);
  if (duplicate !== undefined) problems.push(`INFISICAL_SECRET_PATHS: "${duplicate}" is listed twice`);
}


type HeartbeatValues = Pick<ParsedSettings, 'SIDECAR_HEARTBEAT_URL' | 'SIDECAR_HEARTBEAT_FAIL_URL' | 'SIDECAR_HEARTBEAT_FAIL_SUFFIX' | 'SIDECAR_ALLOW_INSECURE_HTTP'>;

/** The heartbeat URLs follow INFISICAL_SITE_URL's rule for clear text; a problem names the host at most, never the URL. */
function checkHeartbeatSettings(values: HeartbeatValues, problems: string[]): void {
  const check = (name: 'SIDECAR_HEARTBEAT_URL' | 'SIDECAR_HEARTBEAT_FAIL_URL', text: string | undefined) => {
    if (text === undefined) return;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      problems.push(`${name}: not a URL (the value is not shown: it is a secret) — write it with its scheme, e.g. https://hc-ping.com/<uuid>`);
      return;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') problems.push(`${name}: scheme ${url.protocol} is not supported — use https://`);
    else if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname) && values.SIDECAR_ALLOW_INSECURE_HTTP !== true) {
      problems.push(`${name}: http:// to ${url.hostname} would send the heartbeat token in clear text — use https://, or set SIDECAR_ALLOW_INSECURE_HTTP=true for a trusted private network`);
    }
    if (url.hash) problems.push(`${name}: must not contain a fragment (#…) — it is never sent`);
    try {
      decodeURIComponent(url.username);
      decodeURIComponent(url.password);
    } catch {
      problems.push(`${name}: the user or password part has a malformed %-escape — write % as %25`);
    }
  };
  check('SIDECAR_HEARTBEAT_URL', values.SIDECAR_HEARTBEAT_URL);
  check('SIDECAR_HEARTBEAT_FAIL_URL', values.SIDECAR_HEARTBEAT_FAIL_URL);
  if (values.SIDECAR_HEARTBEAT_FAIL_URL !== undefined && values.SIDECAR_HEARTBEAT_FAIL_SUFFIX !== undefined) {
    problems.push('SIDECAR_HEARTBEAT_FAIL_URL: both it and SIDECAR_HEARTBEAT_FAIL_SUFFIX are set — keep only one');
  }
  if (values.SIDECAR_HEARTBEAT_URL === undefined && (values.SIDECAR_HEARTBEAT_FAIL_URL !== undefined || values.SIDECAR_HEARTBEAT_FAIL_SUFFIX !== undefined)) {
    problems.push('SIDECAR_HEARTBEAT_URL: not set, but a failure form is — a receiver only notices a stopped heartbeat when it gets the regular ones; set SIDECAR_HEARTBEAT_URL (or its _FILE form)');
  }
}

function checkReloadSettings(command: string | undefined, url: string | undefined, problems: string[]): void {
  if (command?.trim().startsWith('[')) {
    try {
      const argv: unknown = JSON.parse(command);
      if (!Array.isArray(argv) || argv.length === 0 || !argv.every((part) => typeof part === 'string')) throw new Error('not an array of strings');
    } catch {
      problems.push('SIDECAR_RELOAD_COMMAND: starts with [ but is not a JSON array of strings — e.g. ["/usr/local/bin/notify","--all"], or a plain string for /bin/sh -c');
    }
  }
  if (url !== undefined) {
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
    } catch {
      problems.push('SIDECAR_RELOAD_URL: not an http(s) URL — e.g. http://web:8000/internal/reload');
    }
  }
}

function normalizeFolder(path: string): string {
  const trimmed = trimEndOf(path, '/');
  return trimmed === '' ? '/' : trimmed;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/**
 * The cache lives on its own persistent volume: inside the output tmpfs it would not survive the
 * reboot it is for, and the output directory's mode would be tightened to 0700, locking the
 * consumers out.
 */
function checkCacheDir(cacheDir: string | undefined, outputDir: string | undefined, problems: string[]): void {
  if (cacheDir === undefined || outputDir === undefined) return;
  const cache = path.resolve(cacheDir);
  const output = path.resolve(outputDir);
  const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : `${parent}${path.sep}`);
  if (inside(cache, output) || inside(output, cache)) {
    problems.push(`SIDECAR_CACHE_DIR: ${cache} overlaps SIDECAR_OUTPUT_DIR ${output} — mount a separate persistent volume for the cache, e.g. /var/cache/infisical-sidecar`);
  }
}

/** Role sync needs both the key and the role's address; one without the other is a half-done setup. */
function checkPostgresSettings(env: Env, problems: string[]): void {
  const key = env.SIDECAR_POSTGRES_PASSWORD_KEY?.trim();
  const url = env.SIDECAR_POSTGRES_URL?.trim();
  if (key && !url) problems.push('SIDECAR_POSTGRES_URL: required with SIDECAR_POSTGRES_PASSWORD_KEY — set it to postgres://ROLE@HOST:5432/DATABASE (no password), or unset SIDECAR_POSTGRES_PASSWORD_KEY to turn role sync off');
  if (url && !key) problems.push('SIDECAR_POSTGRES_PASSWORD_KEY: not set, but SIDECAR_POSTGRES_URL is — name the key that holds the role\'s password (e.g. POSTGRES_PASSWORD), or unset SIDECAR_POSTGRES_URL');
}
