/**
 * `loadConfig` is the only code that reads the process environment. It validates every variable
 * against the table in `schema.ts`, reports **every** problem at once (one line per variable, naming
 * it and the fix), and returns a frozen `Config`.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import {
  ConfigFileSchema,
  DEFAULT_OUTPUT_PATHS,
  VARIABLES,
  type Config,
  type ConfigFile,
  type OutputTarget,
  type VariableName,
  type VariableSpec,
} from './schema.js';

export type Env = Readonly<Record<string, string | undefined>>;
export type ReadTextFile = (path: string) => string;

const DERIVE_PREFIX = 'SIDECAR_DERIVE_';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Raw text of one variable, after resolving its `_FILE` form. */
interface RawValue {
  readonly text: string | undefined;
  readonly file: string | undefined;
}

export function loadConfig(env: Env = process.env, readTextFile: ReadTextFile = (p) => readFileSync(p, 'utf8')): Config {
  const problems: string[] = [];
  const raw = new Map<VariableName, RawValue>();

  for (const name of Object.keys(VARIABLES) as VariableName[]) {
    if (name === 'SIDECAR_DERIVE_') continue;
    raw.set(name, readRaw(name, VARIABLES[name], env, readTextFile, problems));
  }
  raw.set('INFISICAL_SITE_URL', { text: siteUrlText(env), file: undefined });

  const values = new Map<VariableName, unknown>();
  for (const [name, { text }] of raw) {
    const spec: VariableSpec = VARIABLES[name];
    const input = text ?? spec.default;
    if (input === undefined && spec.required) {
      problems.push(`${name}: not set — ${requiredHint(name, spec)}`);
      continue;
    }
    const parsed = spec.schema.safeParse(input);
    if (!parsed.success) {
      const reasons = parsed.error.issues.map((issue) => issue.message).join('; ');
      problems.push(`${name}: ${reasons}${spec.example ? ` — e.g. ${spec.example}` : ''}`);
      continue;
    }
    values.set(name, parsed.data);
  }

  problems.push(...unknownSidecarVariables(env));
  const derivedFromEnv = derivedVariables(env, problems);
  const configFilePath = values.get('SIDECAR_CONFIG_FILE') as string | undefined;
  const configFile = configFilePath === undefined ? undefined : readConfigFile(configFilePath, readTextFile, problems);

  const siteUrl = normalizeSiteUrl(values.get('INFISICAL_SITE_URL') as string | undefined, values.get('SIDECAR_ALLOW_INSECURE_HTTP') as boolean | undefined, problems);
  const refreshIntervalMs = values.get('SIDECAR_REFRESH_INTERVAL') as number;
  const maxStalenessMs = values.get('SIDECAR_MAX_STALENESS') as number;
  if (refreshIntervalMs !== undefined && maxStalenessMs !== undefined && maxStalenessMs <= refreshIntervalMs) {
    problems.push(
      `SIDECAR_MAX_STALENESS: must be longer than SIDECAR_REFRESH_INTERVAL (${env.SIDECAR_MAX_STALENESS ?? VARIABLES.SIDECAR_MAX_STALENESS.default} ≤ ${env.SIDECAR_REFRESH_INTERVAL ?? VARIABLES.SIDECAR_REFRESH_INTERVAL.default}) — allow at least two intervals, e.g. 3× the interval`,
    );
  }
  const secretPaths = values.get('INFISICAL_SECRET_PATHS') as string[] | undefined;
  if (secretPaths !== undefined) checkSecretPaths(secretPaths, problems);

  checkReloadSettings(values.get('SIDECAR_RELOAD_COMMAND') as string | undefined, values.get('SIDECAR_RELOAD_URL') as string | undefined, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const derived = new Map<string, string>(Object.entries(configFile?.derived ?? {}));
  for (const [key, template] of derivedFromEnv) derived.set(key, template);

  const formats = values.get('SIDECAR_OUTPUTS') as OutputTarget['format'][];
  const outputs: OutputTarget[] = configFile?.outputs ?? formats.map((format) => ({ format, path: DEFAULT_OUTPUT_PATHS[format] }));

  const config: Config = {
    siteUrl: siteUrl!,
    clientId: values.get('INFISICAL_UNIVERSAL_AUTH_CLIENT_ID') as string,
    clientSecret: values.get('INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET') as string,
    clientIdFile: raw.get('INFISICAL_UNIVERSAL_AUTH_CLIENT_ID')?.file,
    clientSecretFile: raw.get('INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET')?.file,
    organizationSlug: values.get('INFISICAL_AUTH_ORGANIZATION_SLUG') as string | undefined,
    projectId: values.get('INFISICAL_PROJECT_ID') as string,
    environment: values.get('INFISICAL_ENVIRONMENT') as string,
    secretPaths: secretPaths!.map(normalizeFolder),
    includeImports: values.get('INFISICAL_INCLUDE_IMPORTS') as boolean,
    expandSecretReferences: values.get('INFISICAL_EXPAND_SECRET_REFERENCES') as boolean,
    outputDir: values.get('SIDECAR_OUTPUT_DIR') as string,
    outputs: outputs.map((output) => Object.freeze({ ...output })),
    fileMode: values.get('SIDECAR_FILE_MODE') as number,
    fileUid: values.get('SIDECAR_FILE_UID') as number | undefined,
    fileGid: values.get('SIDECAR_FILE_GID') as number | undefined,
    configFile: configFilePath,
    derived,
    requiredKeys: values.get('SIDECAR_REQUIRED_KEYS') as string[],
    refreshIntervalMs,
    refreshJitter: values.get('SIDECAR_REFRESH_JITTER') as number,
    maxStalenessMs,
    backoffMaxMs: values.get('SIDECAR_BACKOFF_MAX') as number,
    requestTimeoutMs: values.get('SIDECAR_REQUEST_TIMEOUT') as number,
    onceDeadlineMs: values.get('SIDECAR_ONCE_DEADLINE') as number,
    allowInsecureHttp: values.get('SIDECAR_ALLOW_INSECURE_HTTP') as boolean,
    logLevel: values.get('SIDECAR_LOG_LEVEL') as string,
    logFormat: values.get('SIDECAR_LOG_FORMAT') as Config['logFormat'],
    healthHost: values.get('SIDECAR_HEALTH_HOST') as string,
    healthPort: values.get('SIDECAR_HEALTH_PORT') as number,
    watch: values.get('SIDECAR_WATCH') as boolean,
    webhookSecret: values.get('SIDECAR_WEBHOOK_SECRET') as string | undefined,
    webhookToleranceMs: values.get('SIDECAR_WEBHOOK_TOLERANCE') as number,
    reloadCommand: values.get('SIDECAR_RELOAD_COMMAND') as string | undefined,
    reloadUrl: values.get('SIDECAR_RELOAD_URL') as string | undefined,
    restartServices: values.get('SIDECAR_RESTART_SERVICES') as string[],
    dockerHost: values.get('SIDECAR_DOCKER_HOST') as string,
    reloadDebounceMs: values.get('SIDECAR_RELOAD_DEBOUNCE') as number,
    reloadCooldownMs: values.get('SIDECAR_RELOAD_COOLDOWN') as number,
    reloadTimeoutMs: values.get('SIDECAR_RELOAD_TIMEOUT') as number,
    reloadOnFirstWrite: values.get('SIDECAR_RELOAD_ON_FIRST_WRITE') as boolean,
  };
  Object.freeze(config.secretPaths);
  Object.freeze(config.outputs);
  Object.freeze(config.requiredKeys);
  Object.freeze(config.restartServices);
  return Object.freeze(config);
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
    reload: {
      command: config.reloadCommand === undefined ? null : '<set>',
      url: config.reloadUrl === undefined ? null : config.reloadUrl.replace(/^(\w+:\/\/)([^/@]*@)?([^/?#]*)([^?#]*).*$/, '$1$3$4'),
      restartServices: config.restartServices,
    },
  };
}

function readRaw(name: string, spec: VariableSpec, env: Env, readTextFile: ReadTextFile, problems: string[]): RawValue {
  const direct = env[name];
  const filePath = spec.fileForm ? env[`${name}_FILE`] : undefined;
  if (filePath === undefined || filePath === '') return { text: direct, file: undefined };
  if (direct !== undefined && direct !== '') {
    problems.push(`${name}: both ${name} and ${name}_FILE are set — keep only one (the _FILE form for Compose secrets)`);
    return { text: undefined, file: undefined };
  }
  try {
    // A trailing newline from `echo` or an editor is not part of a credential.
    return { text: readTextFile(filePath).replace(/\r?\n$/, ''), file: filePath };
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    problems.push(`${name}_FILE: cannot read ${filePath} (${reason}) — mount the file and make it readable by the sidecar user (uid ${process.getuid?.() ?? '?'})`);
    return { text: undefined, file: filePath };
  }
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
  const path = url.pathname.replace(/\/+$/, '').replace(/\/api$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

function requiredHint(name: string, spec: VariableSpec): string {
  const forms = spec.fileForm ? `set ${name} or ${name}_FILE (path of a Compose secret)` : `set ${name}`;
  return `${forms}. ${spec.doc}${spec.example ? ` e.g. ${spec.example}` : ''}`;
}

function unknownSidecarVariables(env: Env): string[] {
  const known = new Set<string>(Object.keys(VARIABLES));
  // The `_FILE` form of a variable that has one (SIDECAR_WEBHOOK_SECRET_FILE) is a known setting too.
  for (const [name, spec] of Object.entries(VARIABLES) as [string, VariableSpec][]) if (spec.fileForm) known.add(`${name}_FILE`);
  return Object.keys(env)
    .filter((name) => name.startsWith('SIDECAR_') && !name.startsWith(DERIVE_PREFIX) && !known.has(name))
    .map((name) => {
      const close = [...known].find((candidate) => candidate !== 'SIDECAR_DERIVE_' && editDistance(candidate, name) <= 2);
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
  const trimmed = path.replace(/\/+$/, '');
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
