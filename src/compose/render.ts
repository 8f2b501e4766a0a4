/**
 * The override as an operator reads it: YAML written by hand (comments say why each part is there),
 * byte-identical for the same plan.
 */
import { printable } from '../text.js';
import { DEFAULT_OUTPUT_PATHS } from '../config/outputs.js';
import type { DERIVE_PREFIX, VariableName } from '../config/schema.js';
import { WITH_SECRETS_PATH } from '../render/with-secrets.js';
import { type ConsumerPlan, type OverridePlan, type PostgresPlan, type Role, RESTART_STAGGER_SECONDS, SECRETS_VOLUME, SIDECAR_SERVICE, WAIT_WRAPPER_NAME } from './plan.js';

export interface RenderOptions {
  /**
   * Mount only `keys/` into postgres through a volume `subpath` (Docker Engine ≥ 26, API 1.45). False
   * for older engines: postgres then mounts the whole volume read-only.
   */
  readonly subpath: boolean;
  /**
   * Turn on the sidecar's last-known-good cache (issue 15): SIDECAR_CACHE_DIR and the named volume
   * `sidecar-cache`, mounted on the sidecar only. Off by default; the override then says how to turn it on.
   */
  readonly cache?: boolean | undefined;
  /**
   * PostgreSQL role sync (issue 16), on unless false: with a postgres service in the project, the
   * sidecar gives the role a rotated POSTGRES_PASSWORD before the app sees it, and the app's services
   * restart at once (not staggered) when it changed.
   */
  readonly roleSync?: boolean | undefined;
}

/** The named volume of the last-known-good cache (with --cache) and where the image has its mount point. */
export const CACHE_VOLUME = 'sidecar-cache';
const CACHE_DIR = '/var/cache/infisical-sidecar';

const MOUNT = '/run/glitchtip-secrets';
const KEYS_DIR = `${MOUNT}/${DEFAULT_OUTPUT_PATHS.files}`;
const PASSWORD_FILE = `${KEYS_DIR}/POSTGRES_PASSWORD`;

/** The sidecar's own settings that the override sets (or their `_FILE` form), by name; a renamed variable fails to compile here. */
function setting<const N extends VariableName | `${VariableName}_FILE` | `${typeof DERIVE_PREFIX}${string}`>(name: N): N {
  return name;
}

const ROLE_TEXT: Readonly<Record<Role, string>> = {
  web: 'GlitchTip web',
  all_in_one: 'GlitchTip all_in_one (web, worker and scheduler; migrates at start)',
  worker: 'GlitchTip worker',
  worker_with_beat: 'GlitchTip worker with embedded beat',
  beat: 'GlitchTip beat',
  migrate: 'GlitchTip migrations, one-shot',
  unknown: 'GlitchTip image, role not recognised',
};

export function renderOverride(plan: OverridePlan, options: RenderOptions): string {
  const cache = options.cache === true;
  const roleSync = options.roleSync !== false && plan.postgres !== undefined;
  return [header(plan, cache, roleSync), anchors(), sidecar(plan, cache, roleSync), consumers(plan.consumers, roleSync), plan.postgres ? postgres(plan.postgres, options, roleSync) : '', trailer(cache)].join('');
}

/** The role in SIDECAR_POSTGRES_URL: the postgres service's own user and database, no password. */
function roleUrl(plan: PostgresPlan): string {
  return `postgres://${encodeURIComponent(plan.user)}@${plan.service}:${plan.port}/${encodeURIComponent(plan.database)}`;
}

function roleSyncSetting(plan: OverridePlan, roleSync: boolean): string {
  if (!roleSync || plan.postgres === undefined) {
    return plan.postgres === undefined
      ? ''
      : `      # PostgreSQL role sync: off (generated with --no-role-sync). A rotated POSTGRES_PASSWORD must be set with ALTER ROLE
      # by hand before GlitchTip can log in again (docs/production.md §6).
`;
  }
  return `      # PostgreSQL role sync: a rotated POSTGRES_PASSWORD is first set as the role's password (ALTER ROLE CURRENT_USER
      # with a verifier built here: the plaintext never reaches PostgreSQL), checked, and only then written for the app
      # (docs/postgres-role-sync.md). Off: generate with --no-role-sync and rotate by hand (docs/production.md §6).
      ${setting('SIDECAR_POSTGRES_PASSWORD_KEY')}: POSTGRES_PASSWORD
      ${setting('SIDECAR_POSTGRES_URL')}: ${yamlString(roleUrl(plan.postgres))}
`;
}

const yamlString = (text: string) => JSON.stringify(text);
const flowList = (items: readonly string[]) => `[${items.map(yamlString).join(', ')}]`;
const names = (items: readonly string[]) => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`);

function restartText(consumer: ConsumerPlan): string {
  if (consumer.restartDelaySeconds === undefined) return 'never restarted on rotation (it runs once)';
  return consumer.restartDelaySeconds === 0 ? 'restarted at once on rotation' : `restarted ${consumer.restartDelaySeconds} s after a rotation`;
}

function header(plan: OverridePlan, cache: boolean, roleSync: boolean): string {
  const width = Math.max(...plan.consumers.map((c) => c.service.length), plan.postgres?.service.length ?? 0);
  // printable(): a multi-line `sh -c` script must not end the comment and start YAML of its own.
  const lines = plan.consumers.map((c) => `#   ${printable(c.service).padEnd(width)}  ${ROLE_TEXT[c.role]}: ${printable(c.command.join(' '))} (${c.commandFrom}); ${restartText(c)}`);
  const pg = plan.postgres;
  lines.push(
    pg
      ? `#   ${pg.service.padEnd(width)}  PostgreSQL, user ${pg.user}, database ${pg.database}, port ${pg.port}: password from ${DEFAULT_OUTPUT_PATHS.files}/POSTGRES_PASSWORD`
      : '#   (no PostgreSQL service: the database is outside this project)',
  );
  const consumerNames = names(plan.consumers.map((c) => c.service));
  return `# compose.override.yml — GlitchTip's secrets from Infisical, through the infisical-sidecar.
#
# Generated by \`infisical-sidecar compose-override\` from the deployment's docker-compose.yml, fitted to it:
${lines.join('\n')}
# Do not edit it: regenerate it from the base file after changing that (docs/production.md), naming the base
# file alone, as a plain \`docker compose config\` would merge this override in too:
#   docker compose -f docker-compose.yml config --format json | docker run --rm -i IMAGE compose-override${cache ? ' --cache' : ''} > compose.override.yml
# \`docker compose up -d\` reads it automatically (or: docker compose -f docker-compose.yml -f compose.override.yml up -d).
#
# What it does:
#   - \`${SIDECAR_SERVICE}\` fetches /glitchtip/database and /glitchtip/application from Infisical every
#     SIDECAR_REFRESH_INTERVAL and writes them, atomically, into the tmpfs volume \`${SECRETS_VOLUME}\`:
#     secrets.env (POSIX sh), secrets.dotenv, secrets.json, keys/<KEY> (raw, no trailing newline) and the derived
#     DATABASE_URL. It must keep running: a tmpfs volume is emptied as soon as no running container mounts it.
#   - ${consumerNames} start only once it is healthy, mount the volume read-only, and start through a wrapper
#     that waits (bounded) for the secrets, exports secrets.env and runs the original command; when a secret is
#     rotated the wrapper restarts the long-running services (staggered), with no Docker socket involved.
${pg ? `#   - ${pg.service} takes its password from keys/POSTGRES_PASSWORD (POSTGRES_PASSWORD_FILE, used by initdb only).\n` : ''}${
    pg && roleSync
      ? `#   - When POSTGRES_PASSWORD rotates in Infisical, the sidecar sets it as the role's password first, then writes it:\n#     change it in Infisical and watch /healthz (docs/production.md §6).\n`
      : ''
  }#
# Settings, from the shell or the project's .env file (non-secret values only):
#   INFISICAL_SITE_URL (required), INFISICAL_PROJECT_ID (required), INFISICAL_ENVIRONMENT (prod),
#   INFISICAL_CLIENT_ID_FILE / INFISICAL_CLIENT_SECRET_FILE (./secrets/infisical-client-{id,secret}, readable
#   by uid 65532), INFISICAL_SIDECAR_IMAGE, SIDECAR_REFRESH_INTERVAL (5m), SIDECAR_MAX_STALENESS (30m),
#   SECRETS_WAIT_SECONDS (120), SIDECAR_ALLOW_INSECURE_HTTP (false), WITH_SECRETS_RESTART (true).

`;
}

/** `$$` is a literal `$` for the shell: Compose interpolates `${...}` itself. */
function waitScript(file: string, problem: string, exec: string, indent: string): string {
  return `${indent}- |
${indent}  f=${file}
${indent}  i=0
${indent}  while [ ! -s "$$f" ]; do
${indent}    if [ "$$i" -ge \${SECRETS_WAIT_SECONDS:-120} ]; then
${indent}      echo "$$0: no $$f after \${SECRETS_WAIT_SECONDS:-120}s${problem}" >&2
${indent}      exit 1
${indent}    fi
${indent}    i=$$((i + 1))
${indent}    sleep 1
${indent}  done
${indent}  exec ${exec}
`;
}

function anchors(): string {
  return `x-wait-for-secrets: &wait-for-secrets
  # Restart policies ignore depends_on (after a reboot the engine starts containers in any order), so wait for
  # the secrets, and fail closed when they do not come: the restart policy then tries again. ${WITH_SECRETS_PATH} is
  # written by the sidecar next to secrets.env in every complete version (so its presence means the set is
  # complete); it exports secrets.env and runs the command, and with WITH_SECRETS_RESTART=true it exits 75 when
  # the secrets change so the restart policy brings the service back with the new values (docs/rotation.md).
  # \`$$\` is a literal \`$\` for the shell (Compose interpolates \`\${...}\` itself).
  - /bin/sh
  - -c
${waitScript(`${MOUNT}/${WITH_SECRETS_PATH}`, `; is the ${SIDECAR_SERVICE} service running and healthy?`, '/bin/sh "$$f" "$$@"', '  ')}  - ${WAIT_WRAPPER_NAME}

x-secrets-consumer: &secrets-consumer
  depends_on:
    ${SIDECAR_SERVICE}:
      condition: service_healthy
  volumes:
    - ${SECRETS_VOLUME}:${MOUNT}:ro
  entrypoint: *wait-for-secrets

`;
}

function cacheSetting(cache: boolean): string {
  return cache
    ? `      # Last-known-good cache (generated with --cache): after each sync an encrypted copy (AES-256-GCM, key derived
      # from the machine identity's client secret) goes to the volume \`${CACHE_VOLUME}\`, so a start while Infisical is
      # unreachable serves it (/healthz "source": "cache"). Off: generate without --cache. Wipe: docker volume rm
      # <project>_${CACHE_VOLUME} (docs/production.md).
      ${setting('SIDECAR_CACHE_DIR')}: ${CACHE_DIR}
`
    : `      # Last-known-good cache: off. Generate with --cache to start from an encrypted copy of the last sync while
      # Infisical is unreachable (a copy of the secrets at rest: read docs/production.md first).
`;
}

function sidecar(plan: OverridePlan, cache: boolean, roleSync: boolean): string {
  return `services:
  ${SIDECAR_SERVICE}:
    image: \${INFISICAL_SIDECAR_IMAGE:-infisical-sidecar:latest}
    init: true
    read_only: true
    restart: unless-stopped
    # No core dumps: the process's memory holds every secret it serves.
    ulimits:
      core: 0
    # 5000 is the group of GlitchTip's \`app\` user: the files (0440) and directories (0750) are readable by it.
    # No port is published: Docker's healthcheck reads /healthz inside the container, and other containers on the
    # project's network (a monitor) as http://${SIDECAR_SERVICE}:8080/healthz; the host and the outside do not reach it.
    user: "65532:5000"
    environment:
      ${setting('INFISICAL_SITE_URL')}: \${INFISICAL_SITE_URL:?set INFISICAL_SITE_URL (the Infisical base URL, without /api) in .env}
      ${setting('INFISICAL_PROJECT_ID')}: \${INFISICAL_PROJECT_ID:?set INFISICAL_PROJECT_ID in .env}
      ${setting('INFISICAL_ENVIRONMENT')}: \${INFISICAL_ENVIRONMENT:-prod}
      ${setting('INFISICAL_SECRET_PATHS')}: /glitchtip/database,/glitchtip/application
      ${setting('INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE')}: /run/secrets/infisical_client_id
      ${setting('INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE')}: /run/secrets/infisical_client_secret
      ${setting('SIDECAR_OUTPUT_DIR')}: ${MOUNT}
      ${setting('SIDECAR_REQUIRED_KEYS')}: POSTGRES_PASSWORD,SECRET_KEY,EMAIL_URL,DEFAULT_FROM_EMAIL
      # From the base file's database (the postgres service's POSTGRES_USER, POSTGRES_DB and port, or its DATABASE_URL).
      ${setting('SIDECAR_DERIVE_DATABASE_URL')}: ${yamlString(plan.databaseUrlTemplate)}
${roleSyncSetting(plan, roleSync)}      ${setting('SIDECAR_REFRESH_INTERVAL')}: \${SIDECAR_REFRESH_INTERVAL:-5m}
      ${setting('SIDECAR_MAX_STALENESS')}: \${SIDECAR_MAX_STALENESS:-30m}
      ${setting('SIDECAR_ALLOW_INSECURE_HTTP')}: \${SIDECAR_ALLOW_INSECURE_HTTP:-false}
      # Which consumer's reading of the values the lint checks model (docs/lint-rules.md).
      ${setting('SIDECAR_CONSUMER')}: glitchtip
${cacheSetting(cache)}    secrets:
      - infisical_client_id
      - infisical_client_secret
    volumes:
      - ${SECRETS_VOLUME}:${MOUNT}
${cache ? `      - ${CACHE_VOLUME}:${CACHE_DIR}   # the sidecar's only: no other service mounts it\n` : ''}    healthcheck:
      # Short interval: dependents start within ~2 s of the first sync. Unhealthy after 3 failed checks
      # (never synced, older than SIDECAR_MAX_STALENESS, or a required key missing).
      test: ["CMD", "node", "/app/main.js", "healthcheck"]
      interval: 2s
      timeout: 5s
      retries: 3
      start_period: 2m

`;
}

const COMMAND_COMMENT: Readonly<Record<ConsumerPlan['commandFrom'], string>> = {
  'image CMD': "the image's CMD, restated: setting entrypoint drops it",
  'base command': "the base file's command, restated: the wrapper runs it",
  'base entrypoint': "the base file's entrypoint and command: the wrapper runs them",
};

function consumers(plan: readonly ConsumerPlan[], roleSync: boolean): string {
  const longRunning = plan.filter((c) => c.restartDelaySeconds !== undefined);
  const intro =
    longRunning.length > 1
      ? `  # WITH_SECRETS_RESTART: restart on rotation (exit 75 → restart policy); the delays, ${RESTART_STAGGER_SECONDS} s apart, stagger
  # ${names(longRunning.map((c) => c.service))} so they are never all down at once. Set WITH_SECRETS_RESTART=false in .env to restart by hand.
`
      : `  # WITH_SECRETS_RESTART: restart on rotation (exit 75 → restart policy). Set WITH_SECRETS_RESTART=false in .env
  # to restart by hand.
`;
  const prompt = roleSync
    ? `  # WITH_SECRETS_PROMPT_FILES: a new database password restarts at once, without the stagger: the database has it
  # already, and until a service restarts its new connections are refused.
`
    : '';
  return intro + prompt + plan.map((c) => consumer(c, longRunning.length, roleSync)).join('') + '\n';
}

function consumer(plan: ConsumerPlan, longRunningCount: number, roleSync: boolean): string {
  const environment =
    plan.restartDelaySeconds === undefined
      ? `      WITH_SECRETS_RESTART: "false"   # one-shot: it exits when done, and a rotation must not run it again
`
      : `      WITH_SECRETS_RESTART: \${WITH_SECRETS_RESTART:-true}
      WITH_SECRETS_RESTART_DELAY: "${plan.restartDelaySeconds}"
${roleSync ? `      WITH_SECRETS_PROMPT_FILES: ${DEFAULT_OUTPUT_PATHS.files}/POSTGRES_PASSWORD\n` : ''}`;
  const alone =
    plan.restartDelaySeconds !== undefined && longRunningCount === 1
      ? `    # The only long-running GlitchTip service: a rotation restarts it, so GlitchTip is down until it is up again
    # (seconds${plan.role === 'all_in_one' ? ', plus its start-up migration check' : ''}). To pick the moment yourself, set WITH_SECRETS_RESTART=false in .env
    # and run \`docker compose restart ${plan.service}\` after a rotation.
`
      : '';
  return `  ${yamlKey(plan.service)}:
    <<: *secrets-consumer
    command: ${flowList(plan.command)}   # ${COMMAND_COMMENT[plan.commandFrom]}
${alone}    environment:
${environment}`;
}

function postgres(plan: PostgresPlan, options: RenderOptions, roleSync: boolean): string {
  const volume = options.subpath
    ? `      # Only keys/ (one raw file per key), not secrets.env or the wrapper: a volume subpath, Docker Engine ≥ 26.
      # (keys/ still holds every key: the sidecar writes them all into one directory.) For an older engine,
      # generate with --no-subpath: postgres then mounts the whole volume read-only.
      - type: volume
        source: ${SECRETS_VOLUME}
        target: ${KEYS_DIR}
        read_only: true
        volume:
          subpath: ${DEFAULT_OUTPUT_PATHS.files}
`
    : `      # The whole volume, read-only (generated with --no-subpath, for Docker Engine < 26; on Engine ≥ 26 the
      # default mounts only keys/ through a volume subpath).
      - ${SECRETS_VOLUME}:${MOUNT}:ro
`;
  const gate = roleSync
    ? `    # Gated on the sidecar, which never waits for PostgreSQL before it is healthy: after a reboot it serves the set
    # the role had (from the cache) or the new one, then changes the role once PostgreSQL answers.
`
    : '';
  return `  ${yamlKey(plan.service)}:
${gate}    depends_on:
      ${SIDECAR_SERVICE}:
        condition: service_healthy
    volumes:
${volume}    environment:
      # Read by the image's entrypoint (trailing newlines stripped); used only when the data directory is empty.
      POSTGRES_PASSWORD_FILE: ${PASSWORD_FILE}
      POSTGRES_HOST_AUTH_METHOD: scram-sha-256
    entrypoint:
      - /bin/sh
      - -c
${waitScript(PASSWORD_FILE, '', '"$$@"', '      ')}      - ${WAIT_WRAPPER_NAME}
    command: ${flowList(plan.command)}   # what the container ran before (entrypoint and command): the wrapper execs it

`;
}

function trailer(cache: boolean): string {
  return `volumes:
  ${SECRETS_VOLUME}:
    # Memory-backed, owned by the sidecar's uid and GlitchTip's gid, closed to everyone else.
    driver: local
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: "size=4m,uid=65532,gid=5000,mode=0750"
${
  cache
    ? `  ${CACHE_VOLUME}:
    # On disk, kept across \`down\` and reboots (removed by \`down -v\`): it holds only the encrypted cache file.
    # A new volume takes the image's mount point's owner and mode (uid 65532, 0700).
    driver: local
`
    : ''
}
secrets:
  # Compose mounts these files as they are on the host (owner and mode included): make them readable by uid
  # 65532, e.g. \`install -m 0400 -o 65532 -g 0 ...\` (docs/production.md shows how to fill them from gopass).
  infisical_client_id:
    file: \${INFISICAL_CLIENT_ID_FILE:-./secrets/infisical-client-id}
  infisical_client_secret:
    file: \${INFISICAL_CLIENT_SECRET_FILE:-./secrets/infisical-client-secret}
`;
}

/** A service name as a YAML key: bare when it cannot be read as anything but that string (`null`, `true`, `1e3` would be). */
function yamlKey(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name) && !/^(null|true|false|yes|no|on|off|y|n|~)$/i.test(name) ? name : JSON.stringify(name);
}
