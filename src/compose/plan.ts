/**
 * What the override must say about one Compose model: which services are GlitchTip and what each one
 * runs, which one is PostgreSQL, how DATABASE_URL is derived, and what the operator should fix in the
 * base file (warnings: service and variable names, never a value).
 */
import type { ComposeModel, ServiceModel } from './model.js';

/** The names the override itself uses; a model that already has them is the override merged in. */
export const SIDECAR_SERVICE = 'secrets';
export const SECRETS_VOLUME = 'glitchtip-secrets';
export const WAIT_WRAPPER_NAME = 'wait-for-secrets';
/** Seconds between the restarts of consecutive long-running services after a rotation. */
export const RESTART_STAGGER_SECONDS = 20;

/**
 * GlitchTip's process roles, from the command (bin/*.sh) and SERVER_ROLE (docs: GlitchTip 4.x-6.x).
 * `migrate` is the one-shot one; `unknown` is a GlitchTip image running something else.
 */
export type Role = 'web' | 'all_in_one' | 'worker' | 'worker_with_beat' | 'beat' | 'migrate' | 'unknown';

export interface ConsumerPlan {
  readonly service: string;
  readonly role: Role;
  /** What the wrapper runs: the base file's entrypoint + command, its command, or the image's CMD. */
  readonly command: readonly string[];
  readonly commandFrom: 'base command' | 'base entrypoint' | 'image CMD';
  /** Seconds a rotation waits before restarting it; undefined for the one-shot `migrate` (never restarted). */
  readonly restartDelaySeconds: number | undefined;
}

export interface PostgresPlan {
  readonly service: string;
  /** What the wait wrapper execs: the image's entrypoint and the effective command. */
  readonly command: readonly string[];
  readonly user: string;
  readonly database: string;
  readonly port: string;
}

export interface OverridePlan {
  readonly consumers: readonly ConsumerPlan[];
  /** Undefined when the database is outside the project. */
  readonly postgres: PostgresPlan | undefined;
  /** SIDECAR_DERIVE_DATABASE_URL: the base file's database with the password from POSTGRES_PASSWORD. */
  readonly databaseUrlTemplate: string;
  readonly warnings: readonly string[];
}

export interface PlanOptions {
  /** Treat exactly these services as GlitchTip, instead of those running a glitchtip/glitchtip image. */
  readonly services?: readonly string[] | undefined;
}

/** The model cannot get an override: it has one already, or there is nothing to wrap. */
export class ComposeOverrideRefused extends Error {
  override readonly name = 'ComposeOverrideRefused';
}

const GLITCHTIP_IMAGE = /(^|\/)glitchtip\/glitchtip(:|@|$)/;
const POSTGRES_IMAGE = /(^|\/)(library\/)?postgres(:|@|$)|(^|\/)postgis\/postgis(:|@|$)/;
/** GlitchTip's image has no ENTRYPOINT and `CMD ["./bin/start.sh"]`; postgres' is docker-entrypoint.sh, CMD postgres. */
const GLITCHTIP_CMD = ['./bin/start.sh'];
const POSTGRES_ENTRYPOINT = ['docker-entrypoint.sh'];
const POSTGRES_CMD = ['postgres'];
const PASSWORD_TEMPLATE = '{{ POSTGRES_PASSWORD | url }}';
/** The upstream samples' placeholders: harmless, the sourced secrets replace them. */
const PLACEHOLDERS = new Set(['', 'change_me', 'change_me_to_something_random', 'postgres://postgres:postgres@postgres:5432/postgres']);
const SECRET_NAME = /(^SECRET_KEY|PASSWORD|SECRET|TOKEN|API_KEY)$/;
const URL_NAME = /_URL$/;
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const PASSWORD_PARAMETER = /[?&]password=[^&]/i;

/**
 * A password in the userinfo (a `:` with something after it before the first `@`, even with an
 * unencoded `/` in it), or in the query (`?password=`). Scanned, not matched by one regex: the
 * regex it replaces backtracked over every `:` of a long value without an `@`.
 */
export function urlHasPassword(value: string): boolean {
  const scheme = URL_SCHEME.exec(value);
  if (scheme) {
    const at = value.indexOf('@', scheme[0].length);
    const colon = value.indexOf(':', scheme[0].length);
    if (at !== -1 && colon !== -1 && colon < at - 1) return true;
  }
  return PASSWORD_PARAMETER.test(value);
}

export function planOverride(model: ComposeModel, options: PlanOptions = {}): OverridePlan {
  refuseOwnOutput(model);
  const warnings: string[] = [];
  const selected = selectGlitchTip(model, options);
  const consumers = planConsumers(selected, warnings);
  const inRestartOrder = consumers.map((c) => selected.find((s) => s.name === c.service)!);
  const base = baseDatabaseUrl(inRestartOrder, warnings);
  const postgresService = findPostgres(model, base, warnings);
  const { postgres, databaseUrlTemplate } = planDatabase(base, postgresService, warnings);
  for (const service of model.services) warnAboutBaseFile(service, consumers, postgres, warnings);
  if (model.usesInclude || model.services.some((s) => s.usesExtends)) {
    warnings.push('the file uses `include` or `extends`, which only Compose resolves: feed `docker compose -f docker-compose.yml config --format json` instead');
  }
  return { consumers, postgres, databaseUrlTemplate, warnings };
}

function refuseOwnOutput(model: ComposeModel): void {
  const regenerate = 'generate from the base file alone: docker compose -f docker-compose.yml config --format json | infisical-sidecar compose-override';
  for (const service of model.services) {
    const wrapped = [...(service.entrypoint ?? []), ...(service.command ?? [])].some((arg) => arg === WAIT_WRAPPER_NAME || arg.includes('with-secrets.sh'));
    const mounts = service.volumeMounts.some((mount) => mount.startsWith(`${SECRETS_VOLUME}:`));
    if (wrapped || mounts) {
      throw new ComposeOverrideRefused(`the model already contains the sidecar override (service ${service.name} ${wrapped ? 'starts through the wait-for-secrets wrapper' : `mounts ${SECRETS_VOLUME}`}): \`docker compose config\` without -f merges compose.override.yml; ${regenerate}`);
    }
  }
  if (model.volumeNames.includes(SECRETS_VOLUME)) throw new ComposeOverrideRefused(`the model already has the volume ${SECRETS_VOLUME} (the override merged in?); ${regenerate}`);
  if (model.services.some((s) => s.name === SIDECAR_SERVICE)) {
    throw new ComposeOverrideRefused(`the model already has a service named ${SIDECAR_SERVICE}, the name the override gives the sidecar; if it is the override merged in, ${regenerate}`);
  }
}

function selectGlitchTip(model: ComposeModel, options: PlanOptions): ServiceModel[] {
  if (options.services) {
    const byName = new Map(model.services.map((s) => [s.name, s]));
    const missing = options.services.filter((name) => !byName.has(name));
    if (missing.length > 0) throw new ComposeOverrideRefused(`--services names ${missing.join(', ')}, not in the model (it has ${[...byName.keys()].join(', ')})`);
    return options.services.map((name) => byName.get(name)!);
  }
  const found = model.services.filter((s) => s.image !== undefined && GLITCHTIP_IMAGE.test(s.image));
  if (found.length === 0) {
    throw new ComposeOverrideRefused('no service runs a glitchtip/glitchtip image; name the GlitchTip services with --services web,worker,...');
  }
  return found;
}

/** web first, then the worker, then beat: a rotation restarts them in this order, RESTART_STAGGER_SECONDS apart. */
const RESTART_ORDER: Readonly<Record<Role, number>> = { web: 0, all_in_one: 0, worker: 1, worker_with_beat: 1, beat: 2, unknown: 3, migrate: 4 };

function planConsumers(services: readonly ServiceModel[], warnings: string[]): ConsumerPlan[] {
  const described = services.map((service) => {
    const { command, commandFrom } = effectiveCommand(service, [], GLITCHTIP_CMD);
    if (service.entrypoint) warnings.push(`service ${service.name}: the base file sets an entrypoint; the wrapper runs it with the command after it, as Compose would`);
    if (commandFrom === 'image CMD' && !(service.image && GLITCHTIP_IMAGE.test(service.image))) {
      warnings.push(`service ${service.name}: no command in the base file and not the glitchtip/glitchtip image: the override restates GlitchTip's CMD ./bin/start.sh; set the command in the base file if the image runs something else`);
    }
    const role = roleOf(command, service.environment);
    if (role === 'unknown') warnings.push(`service ${service.name}: ${command[0] ?? 'its command'} is not a GlitchTip role script; treated as long-running (restarted on rotation)`);
    return { service, command, commandFrom, role };
  });
  described.sort((a, b) => RESTART_ORDER[a.role] - RESTART_ORDER[b.role] || (a.service.name < b.service.name ? -1 : a.service.name > b.service.name ? 1 : 0));
  let nextDelay = 0;
  return described.map(({ service, command, commandFrom, role }) => {
    const oneShot = role === 'migrate';
    if (!oneShot && (service.restart === undefined || service.restart === 'no')) {
      warnings.push(`service ${service.name}: no restart policy: after a rotation the wrapper stops it (exit 75) and nothing starts it again; add \`restart: unless-stopped\` to the base file`);
    }
    const restartDelaySeconds = oneShot ? undefined : nextDelay;
    if (!oneShot) nextDelay += RESTART_STAGGER_SECONDS;
    return { service: service.name, role, command, commandFrom, restartDelaySeconds };
  });
}

/** What the container runs once the override sets `entrypoint:` (Compose then drops the image's CMD). */
function effectiveCommand(service: ServiceModel, imageEntrypoint: readonly string[], imageCmd: readonly string[]): Pick<ConsumerPlan, 'command' | 'commandFrom'> {
  if (service.entrypoint) return { command: [...service.entrypoint, ...(service.command ?? [])], commandFrom: 'base entrypoint' };
  if (service.command) return { command: [...imageEntrypoint, ...service.command], commandFrom: 'base command' };
  return { command: [...imageEntrypoint, ...imageCmd], commandFrom: 'image CMD' };
}

function roleOf(command: readonly string[], environment: ReadonlyMap<string, string | null>): Role {
  const text = command.join(' ');
  if (/run-migrate\.sh|manage\.py\s+migrate\b/.test(text)) return 'migrate';
  if (/run-celery-with-beat\.sh/.test(text)) return 'worker_with_beat';
  if (/run-worker\.sh|run-celery\.sh|manage\.py\s+runworker\b/.test(text)) return 'worker';
  if (/run-beat\.sh/.test(text)) return 'beat';
  if (/run-all-in-one\.sh/.test(text)) return 'all_in_one';
  if (/run-(web|granian|uvicorn|uwsgi|gunicorn)\.sh/.test(text)) return 'web';
  if (!/(^|\/)start\.sh$/.test(command[0] ?? '') && !/(^|\/)start\.sh$/.test(command[1] ?? '')) return 'unknown';
  // start.sh picks the role from SERVER_ROLE (web when unset); web with GLITCHTIP_EMBED_WORKER is all_in_one
  const serverRole = environment.get('SERVER_ROLE') ?? 'web';
  if (serverRole === 'web') return /^(true|1)$/i.test(environment.get('GLITCHTIP_EMBED_WORKER') ?? '') ? 'all_in_one' : 'web';
  if (serverRole === 'worker' || serverRole === 'worker_with_beat' || serverRole === 'beat' || serverRole === 'all_in_one') return serverRole;
  return 'unknown';
}

interface DatabaseUrl {
  readonly scheme: string;
  readonly user: string | undefined;
  readonly host: string;
  readonly port: string | undefined;
  readonly database: string;
  readonly query: string;
}

/** User and database come back decoded (the template encodes them once); an IPv6 host keeps its brackets. */
function parseDatabaseUrl(url: string): DatabaseUrl | undefined {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(?:([^:@/]*)(?::[^@]*)?@)?(\[[0-9A-Fa-f:.]+\]|[^:/?@]+)(?::(\d+))?(?:\/([^?]*))?(\?.*)?$/i.exec(url);
  if (!match) return undefined;
  const [, scheme, user, host, port, database, query] = match;
  return { scheme: scheme!, user: user ? decoded(user) : undefined, host: host!, port, database: decoded(database ?? ''), query: query ?? '' };
}

function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** The service DATABASE_URL names, when it runs PostgreSQL; else the one service running a postgres image. */
function findPostgres(model: ComposeModel, base: DatabaseUrl | undefined, warnings: string[]): ServiceModel | undefined {
  const isPostgres = (s: ServiceModel) => s.image !== undefined && POSTGRES_IMAGE.test(s.image);
  const named = model.services.find((s) => s.name === base?.host);
  if (named && isPostgres(named)) return named;
  const candidates = model.services.filter(isPostgres);
  if (candidates.length > 1) warnings.push(`services ${candidates.map((s) => s.name).join(', ')} all run PostgreSQL and DATABASE_URL names none of them: the override uses ${candidates[0]!.name}`);
  return candidates[0];
}

/** The GlitchTip services' DATABASE_URL (the first that parses, in restart order): where the database is. */
function baseDatabaseUrl(consumers: readonly ServiceModel[], warnings: string[]): DatabaseUrl | undefined {
  const values = consumers.map((s) => s.environment.get('DATABASE_URL')).filter((v): v is string => typeof v === 'string' && v !== '');
  if (new Set(values).size > 1) warnings.push(`services ${consumers.map((s) => s.name).join(', ')}, variable DATABASE_URL: not the same in every GlitchTip service; the derived one replaces them all`);
  return values.map(parseDatabaseUrl).find((url) => url !== undefined);
}

function planDatabase(base: DatabaseUrl | undefined, postgresService: ServiceModel | undefined, warnings: string[]): Pick<OverridePlan, 'postgres' | 'databaseUrlTemplate'> {  const template = (scheme: string, user: string, host: string, port: string | undefined, database: string, query: string) =>
    `${scheme}://${encodeName(user)}:${PASSWORD_TEMPLATE}@${host}${port ? `:${port}` : ''}/${encodeName(database)}${query}`;
  if (postgresService) {
    const env = postgresService.environment;
    // The base file's DATABASE_URL names the role and database the app uses (an init script or an
    // operator may have made them); the postgres image's own defaults come last.
    const fromBase = base?.host === postgresService.name ? base : undefined;
    const user = env.get('POSTGRES_USER') ?? fromBase?.user ?? 'postgres';
    const database = env.get('POSTGRES_DB') ?? (fromBase?.database || undefined) ?? user;
    // (The upstream samples' placeholder URL, postgres://postgres:postgres@postgres:5432/postgres, names nothing.)
    const placeholder = fromBase?.user === 'postgres' && fromBase.database === 'postgres';
    if (fromBase && !placeholder && ((fromBase.user !== undefined && fromBase.user !== user) || (fromBase.database !== '' && fromBase.database !== database))) {
      warnings.push(`variable DATABASE_URL: the base file's user or database (${fromBase.user ?? '?'}/${fromBase.database || '?'}) differs from service ${postgresService.name}'s POSTGRES_USER/POSTGRES_DB (${user}/${database}); the derived DATABASE_URL uses the latter`);
    }
    const { command } = effectiveCommand(postgresService, POSTGRES_ENTRYPOINT, POSTGRES_CMD);
    const port = (base?.host === postgresService.name ? base.port : undefined) ?? env.get('PGPORT') ?? commandPort(command) ?? '5432';
    return {
      postgres: { service: postgresService.name, command, user, database, port },
      databaseUrlTemplate: template(base?.scheme ?? 'postgres', user, postgresService.name, port, database, base?.query ?? ''),
    };
  }
  if (base) {
    warnings.push(`variable DATABASE_URL: no PostgreSQL service in the model; the derived DATABASE_URL keeps the base file's user, host ${base.host} and database, with POSTGRES_PASSWORD from Infisical as the password: it must be that role's password`);
    return { postgres: undefined, databaseUrlTemplate: template(base.scheme, base.user ?? 'postgres', base.host, base.port, base.database, base.query) };
  }
  warnings.push("variable DATABASE_URL: neither a PostgreSQL service nor a DATABASE_URL in the model; the override assumes GlitchTip's default (user postgres, host postgres, database postgres)");
  return { postgres: undefined, databaseUrlTemplate: template('postgres', 'postgres', 'postgres', '5432', 'postgres', '') };
}

/** `postgres -p 5433`, `-c port=5433` or `-cport=5433` in the server's command line. */
function commandPort(command: readonly string[]): string | undefined {
  for (let i = 0; i < command.length; i++) {
    const arg = command[i]!;
    const next = command[i + 1] ?? '';
    if (arg === '-p' && /^\d+$/.test(next)) return next;
    const setting = /^port=(\d+)$/.exec(arg === '-c' ? next : arg.startsWith('-c') ? arg.slice(2) : '');
    if (setting) return setting[1];
  }
  return undefined;
}

/** A user or database name inside the URL: percent-encoded, unless it holds a Compose `${...}` reference. */
function encodeName(name: string): string {
  return name.includes('$') ? name : encodeURIComponent(name);
}

function warnAboutBaseFile(service: ServiceModel, consumers: readonly ConsumerPlan[], postgres: PostgresPlan | undefined, warnings: string[]): void {
  const isConsumer = consumers.some((c) => c.service === service.name);
  const isPostgres = postgres?.service === service.name;
  for (const file of service.envFiles) {
    warnings.push(`service ${service.name}: env_file ${file}: Compose copies its variables into the container's configuration (docker inspect) and it stays on the host's disk; keep only non-secret settings in it`);
  }
  for (const [name, value] of service.environment) {
    if (value === null || name.endsWith('_FILE')) continue;
    if (isPostgres && name === 'POSTGRES_PASSWORD') {
      warnings.push(`service ${service.name}, variable POSTGRES_PASSWORD: set in the base file; the postgres image refuses to start with both it and POSTGRES_PASSWORD_FILE (which the override sets): remove it`);
    } else if (isPostgres && name === 'POSTGRES_HOST_AUTH_METHOD' && value === 'trust') {
      warnings.push(`service ${service.name}, variable POSTGRES_HOST_AUTH_METHOD: trust lets anyone on the network in without a password; the override sets scram-sha-256, which initdb applies to an empty data directory only: an existing one keeps trust in pg_hba.conf (docs/production.md)`);
    } else if (holdsSecret(name, value)) {
      const where = value.includes('${') ? 'taken from the host (.env or the shell) by the base file' : 'a literal value in the base file';
      warnings.push(`service ${service.name}, variable ${name}: ${where}; ${isConsumer ? "the sidecar's value replaces it in the process, but it" : 'it'} stays readable on the host and in docker inspect: move it to Infisical and remove it`);
    }
  }
  if (!isConsumer && !isPostgres && (service.environment.has('SECRET_KEY') || service.environment.has('DATABASE_URL'))) {
    warnings.push(`service ${service.name}: has GlitchTip variables (SECRET_KEY or DATABASE_URL) but does not run the glitchtip/glitchtip image, so it is not wrapped; if it runs GlitchTip, name every GlitchTip service with --services`);
  }
}

function holdsSecret(name: string, value: string): boolean {
  if (PLACEHOLDERS.has(value)) return false;
  if (URL_NAME.test(name)) return urlHasPassword(value);
  return SECRET_NAME.test(name);
}
