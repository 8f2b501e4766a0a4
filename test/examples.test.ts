/**
 * Every compose file the project ships comes out of the generator (`infisical-sidecar compose-override`,
 * src/compose/): the repository's compose.override.yml and each examples/<layout>/ (its base file, copied
 * from test/fixtures/compose/, and the override generated from it). When one drifts, this fails; regenerate
 * them with `npm run compose:generate` (examples/generate.ts), never by hand.
 *
 * - Structurally, without Docker: parse the YAML (anchors and merge keys resolved) and check each consumer
 *   against its base file.
 * - With Docker Compose v2, when one is available: the override generated from `docker compose config
 *   --format json` of the base (the documented command) is the shipped one byte for byte, and `docker compose
 *   config` of base + override gives a project where every consumer waits for the sidecar. Skipped, saying
 *   why, when there is none.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { fixturePath, LAYOUTS, staleFiles } from '../examples/generate.js';
import { generateOverride } from '../src/compose/index.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const MOUNT = '/run/glitchtip-secrets';
const VOLUME = 'glitchtip-secrets';

interface Variant {
  readonly dir: string;
  /** GlitchTip services that must wait for and source the secrets. */
  readonly consumers: readonly string[];
  /** The one-shot ones among them: never restarted on rotation. */
  readonly oneShot: readonly string[];
  /** Services the variant must not have (GlitchTip 6 has no beat; all_in_one has one service). */
  readonly absent: readonly string[];
}

const VARIANTS: readonly Variant[] = [
  { dir: 'glitchtip-5', consumers: ['web', 'worker', 'migrate'], oneShot: ['migrate'], absent: ['beat'] },
  { dir: 'glitchtip-6', consumers: ['web', 'worker', 'migrate'], oneShot: ['migrate'], absent: ['beat'] },
  { dir: 'glitchtip-6-all-in-one', consumers: ['web'], oneShot: [], absent: ['worker', 'beat', 'migrate'] },
];

type Yaml = Record<string, any>;
const load = (file: string): Yaml => parse(readFileSync(path.join(ROOT, file), 'utf8'), { merge: true }) as Yaml;
const repoOverride = load('compose.override.yml');

/**
 * The wrapper's script: waits (bounded) for with-secrets.sh (written by the sidecar with every complete set),
 * then hands over to it (it exports secrets.env and execs the command; docs/rotation.md).
 */
function expectWaitWrapper(entrypoint: unknown, where: string): void {
  expect(Array.isArray(entrypoint), `${where}: entrypoint is an exec-form list`).toBe(true);
  const [shell, flag, script, name] = entrypoint as string[];
  expect([shell, flag, name], where).toEqual(['/bin/sh', '-c', 'wait-for-secrets']);
  expect(script, where).toContain(`${MOUNT}/with-secrets.sh`);
  expect(script, where).toMatch(/while \[ ! -s "\$\$?f" \]/);
  expect(script, where).toMatch(/exit 1/);
  expect(script, where).toMatch(/exec \/bin\/sh "\$\$?f" "\$\$?@"/);
}

describe('the shipped compose files', () => {
  it('are what the generator gives (else run `npm run compose:generate`)', () => {
    expect(staleFiles()).toEqual([]);
  });
});

describe.each(VARIANTS)('examples/$dir (structure, no Docker needed)', ({ dir, consumers, oneShot, absent }) => {
  const base = load(`examples/${dir}/docker-compose.yml`);
  const override = load(`examples/${dir}/compose.override.yml`);

  it('gates every GlitchTip service on the sidecar, mounts the volume read-only and wraps its command', () => {
    const glitchtip = Object.entries(base.services as Yaml)
      .filter(([, service]) => String(service.image).startsWith('glitchtip/glitchtip'))
      .map(([name]) => name);
    expect(glitchtip.sort(), 'every GlitchTip process gets the secrets').toEqual([...consumers].sort());
    for (const name of consumers) {
      const service = override.services[name];
      expect(service, `${name} is in the override`).toBeDefined();
      expect(base.services[name], `${name} is in the base file (else Compose: "has neither an image nor a build context")`).toBeDefined();
      expect(service.depends_on?.secrets, name).toEqual({ condition: 'service_healthy' });
      expect(service.volumes, name).toContain(`${VOLUME}:${MOUNT}:ro`);
      expectWaitWrapper(service.entrypoint, name);
      // Setting entrypoint drops the image's CMD: the override restates the effective command.
      const baseCommand = base.services[name].command;
      expect(service.command, `${name} restates its command`).toEqual(baseCommand ? String(baseCommand).split(' ') : ['./bin/start.sh']);
      // long-running services restart on rotation, staggered; one-shot ones never
      expect(service.environment.WITH_SECRETS_RESTART, name).toBe(oneShot.includes(name) ? 'false' : '${WITH_SECRETS_RESTART:-true}');
    }
    expect(override.services.web.command, 'web restates the image CMD').toEqual(['./bin/start.sh']);
    for (const name of absent) {
      expect(base.services[name], `${dir} has no ${name}`).toBeUndefined();
      expect(override.services[name], `${dir} has no ${name}`).toBeUndefined();
    }
  });

  it('keeps the secrets service (but for its database: DATABASE_URL and the role of SIDECAR_POSTGRES_URL), the tmpfs volume, the credentials and the wrapper identical to compose.override.yml', () => {
    const withoutDatabaseUrl = (sidecar: Yaml) => ({ ...sidecar, environment: { ...sidecar.environment, SIDECAR_DERIVE_DATABASE_URL: undefined, SIDECAR_POSTGRES_URL: undefined } });
    expect(withoutDatabaseUrl(override.services.secrets)).toEqual(withoutDatabaseUrl(repoOverride.services.secrets));
    // the samples' postgres runs as user postgres, database postgres
    expect(override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL).toBe('postgres://postgres:{{ POSTGRES_PASSWORD | url }}@postgres:5432/postgres');
    expect(override.services.secrets.environment.SIDECAR_POSTGRES_URL).toBe('postgres://postgres@postgres:5432/postgres');
    expect(override.volumes).toEqual(repoOverride.volumes);
    expect(override.secrets).toEqual(repoOverride.secrets);
    expect(override['x-wait-for-secrets']).toEqual(repoOverride['x-wait-for-secrets']);
    expect(override.services.postgres).toEqual(repoOverride.services.postgres);
    expect(override.volumes[VOLUME].driver_opts.type).toBe('tmpfs');
    expect(override.services.secrets.volumes).toContain(`${VOLUME}:${MOUNT}`);
    expect(override.services.secrets.healthcheck.test).toEqual(['CMD', 'node', '/app/main.js', 'healthcheck']);
  });

  it('leaves no secret in the base file', () => {
    const text = readFileSync(path.join(ROOT, `examples/${dir}/docker-compose.yml`), 'utf8');
    expect(text).not.toMatch(/POSTGRES_PASSWORD\s*:/);
    expect(text, 'the base file is the fixture, copied').toBe(readFileSync(path.join(ROOT, `test/fixtures/compose/${dir}.yml`), 'utf8'));
    expect(text).not.toMatch(/^\s*env_file:/m);
    for (const service of Object.values(base.services as Yaml)) {
      const env = (service.environment ?? {}) as Record<string, string>;
      expect(['change_me', 'change_me_to_something_random', undefined]).toContain(env.SECRET_KEY);
    }
  });

  if (dir === 'glitchtip-6-all-in-one') {
    it('runs web as all_in_one', () => {
      expect(base.services.web.environment.SERVER_ROLE).toBe('all_in_one');
    });
  }
});

/** Compose v2: $COMPOSE, `docker compose`, or the copy scripts/docker/compose-v2.sh caches. Never downloads. */
function findCompose(): { argv: string[] } | { reason: string } {
  const works = (argv: string[]) => spawnSync(argv[0]!, [...argv.slice(1), 'version', '--short'], { encoding: 'utf8', timeout: 10_000 }).stdout?.trim().replace(/^v/, '').startsWith('2.');
  if (process.env.COMPOSE) {
    const argv = process.env.COMPOSE.split(/\s+/).filter(Boolean);
    return works(argv) ? { argv } : { reason: `COMPOSE=${process.env.COMPOSE} is not Compose v2` };
  }
  for (const docker of ['/usr/bin/docker', 'docker']) if (works([docker, 'compose'])) return { argv: [docker, 'compose'] };
  const cache = process.env.INFISICAL_SIDECAR_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'infisical-sidecar');
  const cached = path.join(cache, 'compose/usr/libexec/docker/cli-plugins/docker-compose');
  if (existsSync(cached) && works([cached])) return { argv: [cached] };
  return { reason: 'no Docker Compose v2 here (`docker compose version` fails and scripts/docker/compose-v2.sh has cached none; run it once, or set COMPOSE)' };
}

const compose = findCompose();
if ('reason' in compose) console.warn(`examples.test.ts: skipping \`docker compose config\` checks: ${compose.reason}`);

describe.skipIf('reason' in compose).each(LAYOUTS)('$override from `docker compose config --format json` of its base', (layout) => {
  it('is the shipped file, byte for byte (the documented command gives what the repository ships)', () => {
    const argv = (compose as { argv: string[] }).argv;
    const json = execFileSync(argv[0]!, [...argv.slice(1), '-p', `layout-${layout.name}`, '-f', fixturePath(layout), 'config', '--format', 'json'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    expect(generateOverride(JSON.parse(json), { subpath: true }).text).toBe(readFileSync(path.join(ROOT, layout.override), 'utf8'));
  });
});

describe.skipIf('reason' in compose).each(VARIANTS)('examples/$dir (docker compose config)', ({ dir, consumers, absent }) => {
  it('merges into a project where every consumer waits for a healthy sidecar and reads the volume read-only', () => {
    const argv = (compose as { argv: string[] }).argv;
    const work = mkdtempSync(path.join(tmpdir(), 'examples-'));
    try {
      writeFileSync(path.join(work, 'client-id'), 'id');
      writeFileSync(path.join(work, 'client-secret'), 'secret');
      const exampleDir = path.join(ROOT, 'examples', dir);
      const out = execFileSync(
        argv[0]!,
        [...argv.slice(1), '-p', `example-${dir}`, '--project-directory', exampleDir, '-f', path.join(exampleDir, 'docker-compose.yml'), '-f', path.join(exampleDir, 'compose.override.yml'), 'config', '--format', 'json'],
        {
          encoding: 'utf8',
          timeout: 30_000,
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            INFISICAL_SITE_URL: 'https://infisical.example.test',
            INFISICAL_PROJECT_ID: '6a0b3c1e-9d2f-4e5a-8b7c-1f2e3d4c5b6a',
            INFISICAL_CLIENT_ID_FILE: path.join(work, 'client-id'),
            INFISICAL_CLIENT_SECRET_FILE: path.join(work, 'client-secret'),
          },
        },
      );
      const model = JSON.parse(out) as Yaml;
      const services = model.services as Yaml;
      const cache = { 'glitchtip-5': ['redis'], 'glitchtip-6': ['valkey'], 'glitchtip-6-all-in-one': [] }[dir] ?? []; // minimal: no Valkey
      expect(Object.keys(services).sort()).toEqual([...consumers, 'postgres', 'secrets', ...cache].sort());
      for (const name of absent) expect(services[name]).toBeUndefined();
      for (const name of consumers) {
        const service = services[name];
        expect(service.depends_on.secrets.condition, name).toBe('service_healthy');
        expect(Object.keys(service.depends_on), `${name} keeps the base file's dependencies`).toEqual(expect.arrayContaining(['postgres', 'secrets']));
        expect(service.volumes, name).toContainEqual(expect.objectContaining({ type: 'volume', source: VOLUME, target: MOUNT, read_only: true }));
        expectWaitWrapper(service.entrypoint, name); // `config` prints $$ escaped again, as in the file
        expect(service.command?.length, `${name} has a command after the entrypoint override`).toBeGreaterThan(0);
      }
      expect(services.web.command).toEqual(['./bin/start.sh']);
      if (dir === 'glitchtip-6-all-in-one') expect(services.web.environment.SERVER_ROLE).toBe('all_in_one');
      expect(services.secrets.healthcheck.test).toEqual(['CMD', 'node', '/app/main.js', 'healthcheck']);
      expect(services.secrets.read_only).toBe(true);
      expect(services.secrets.user).toBe('65532:5000');
      expect(services.secrets.volumes).toContainEqual(expect.objectContaining({ source: VOLUME, target: MOUNT }));
      expect(services.secrets.volumes[0].read_only ?? false).toBe(false);
      expect(services.postgres.environment.POSTGRES_PASSWORD_FILE).toBe(`${MOUNT}/keys/POSTGRES_PASSWORD`);
      expect(services.postgres.volumes).toContainEqual(expect.objectContaining({ source: VOLUME, target: `${MOUNT}/keys`, read_only: true, volume: { subpath: 'keys' } }));
      expect(services.postgres.environment.POSTGRES_PASSWORD).toBeUndefined();
      expect(model.volumes[VOLUME].driver_opts).toMatchObject({ type: 'tmpfs', device: 'tmpfs' });
      expect(model.secrets.infisical_client_secret.file).toBe(path.join(work, 'client-secret'));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
