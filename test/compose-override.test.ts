/**
 * `compose-override` (src/compose/): the generator fed the models of GlitchTip's layouts (test/fixtures/compose/)
 * and odd ones, asserting the override (parsed back) and the warnings; and the CLI around it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runComposeOverride } from '../src/compose/cli.js';
import { ComposeModelError, ComposeOverrideRefused, generateOverride, type GenerateOptions } from '../src/compose/index.js';
import { splitCommand } from '../src/compose/model.js';

type Yaml = Record<string, any>;
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/compose');
const fixture = (name: string): Yaml => parse(readFileSync(path.join(FIXTURES, `${name}.yml`), 'utf8'), { merge: true }) as Yaml;
const DEFAULTS: GenerateOptions = { subpath: true };

function generate(model: unknown, options: Partial<GenerateOptions> = {}) {
  const { text, warnings } = generateOverride(model, { ...DEFAULTS, ...options });
  return { text, warnings, override: parse(text, { merge: true }) as Yaml };
}

/** A service's restart mode in the override: its delay, or 'once' for a one-shot. */
function restartOf(service: Yaml): string {
  const env = service.environment as Record<string, string>;
  return env.WITH_SECRETS_RESTART === 'false' ? 'once' : `${env.WITH_SECRETS_RESTART}/${env.WITH_SECRETS_RESTART_DELAY}`;
}

function expectWrapped(service: Yaml, command: string[]): void {
  expect(service.depends_on).toEqual({ secrets: { condition: 'service_healthy' } });
  expect(service.volumes).toEqual(['glitchtip-secrets:/run/glitchtip-secrets:ro']);
  expect(service.entrypoint.slice(0, 2)).toEqual(['/bin/sh', '-c']);
  expect(service.entrypoint[2]).toContain('exec /bin/sh "$$f" "$$@"');
  expect(service.entrypoint[3]).toBe('wait-for-secrets');
  expect(service.command).toEqual(command);
}

const TRUST = 'service postgres, variable POSTGRES_HOST_AUTH_METHOD: trust';
const RESTART = '${WITH_SECRETS_RESTART:-true}';

describe('the layouts of test/fixtures/compose', () => {
  it('seed: web, worker, beat staggered 0/20/40 s; postgres user glitchtip_maintainer, database glitchtip', () => {
    const { override, warnings } = generate(fixture('seed'));
    expect(Object.keys(override.services)).toEqual(['secrets', 'web', 'worker', 'beat', 'postgres']);
    expectWrapped(override.services.web, ['./bin/start.sh']);
    expectWrapped(override.services.worker, ['./bin/run-celery.sh']);
    expectWrapped(override.services.beat, ['./bin/run-beat.sh']);
    expect(['web', 'worker', 'beat'].map((s) => restartOf(override.services[s]))).toEqual([`${RESTART}/0`, `${RESTART}/20`, `${RESTART}/40`]);
    expect(override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL).toBe('postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip');
    expect(warnings).toEqual([expect.stringContaining(TRUST)]);
  });

  it('4.x/5.x sample: web, worker with embedded beat, one-shot migrate never restarted; user postgres', () => {
    const { override, warnings } = generate(fixture('glitchtip-5'));
    expect(Object.keys(override.services)).toEqual(['secrets', 'web', 'worker', 'migrate', 'postgres']);
    expectWrapped(override.services.worker, ['./bin/run-celery-with-beat.sh']);
    expectWrapped(override.services.migrate, ['./bin/run-migrate.sh']);
    expect(['web', 'worker', 'migrate'].map((s) => restartOf(override.services[s]))).toEqual([`${RESTART}/0`, `${RESTART}/20`, 'once']);
    expect(override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL).toBe('postgres://postgres:{{ POSTGRES_PASSWORD | url }}@postgres:5432/postgres');
    expect(override.services.postgres.environment).toEqual({ POSTGRES_PASSWORD_FILE: '/run/glitchtip-secrets/keys/POSTGRES_PASSWORD', POSTGRES_HOST_AUTH_METHOD: 'scram-sha-256' });
    expect(warnings).toEqual([expect.stringContaining(TRUST)]);
  });

  it('6.0 sample: web, worker, one-shot migrate', () => {
    const { override } = generate(fixture('glitchtip-6'));
    expect(Object.keys(override.services)).toEqual(['secrets', 'web', 'worker', 'migrate', 'postgres']);
    expectWrapped(override.services.worker, ['./bin/run-worker.sh']);
    expect(['web', 'worker', 'migrate'].map((s) => restartOf(override.services[s]))).toEqual([`${RESTART}/0`, `${RESTART}/20`, 'once']);
  });

  it('all_in_one: the only service restarts at once, and the file says what that means and how to opt out', () => {
    const { override, text } = generate(fixture('glitchtip-6-all-in-one'));
    expect(Object.keys(override.services)).toEqual(['secrets', 'web', 'postgres']);
    expectWrapped(override.services.web, ['./bin/start.sh']);
    expect(restartOf(override.services.web)).toBe(`${RESTART}/0`);
    expect(text).toContain('GlitchTip all_in_one');
    expect(text).toMatch(/The only long-running GlitchTip service: a rotation restarts it, so GlitchTip is down/);
    expect(text).toContain('set WITH_SECRETS_RESTART=false in .env');
  });

  it('postgres: only keys/ through a volume subpath by default, the whole volume read-only with --no-subpath', () => {
    const withSubpath = generate(fixture('seed')).override.services.postgres;
    expect(withSubpath.volumes).toEqual([{ type: 'volume', source: 'glitchtip-secrets', target: '/run/glitchtip-secrets/keys', read_only: true, volume: { subpath: 'keys' } }]);
    const without = generate(fixture('seed'), { subpath: false }).override.services.postgres;
    expect(without.volumes).toEqual(['glitchtip-secrets:/run/glitchtip-secrets:ro']);
    for (const pg of [withSubpath, without]) {
      expect(pg.environment.POSTGRES_PASSWORD_FILE).toBe('/run/glitchtip-secrets/keys/POSTGRES_PASSWORD');
      expect(pg.entrypoint[2]).toContain('exec "$$@"');
      expect(pg.command).toEqual(['docker-entrypoint.sh', 'postgres']);
    }
  });

  it('keeps what the sidecar service always had: no published port, read-only, init, 65532:5000, the tmpfs volume, the credentials', () => {
    const { override } = generate(fixture('glitchtip-6'));
    const sidecar = override.services.secrets;
    expect(sidecar.ports).toBeUndefined();
    expect([sidecar.read_only, sidecar.init, sidecar.user, sidecar.restart]).toEqual([true, true, '65532:5000', 'unless-stopped']);
    expect(sidecar.healthcheck.test).toEqual(['CMD', 'node', '/app/main.js', 'healthcheck']);
    expect(sidecar.secrets).toEqual(['infisical_client_id', 'infisical_client_secret']);
    expect(override.volumes['glitchtip-secrets'].driver_opts).toEqual({ type: 'tmpfs', device: 'tmpfs', o: 'size=4m,uid=65532,gid=5000,mode=0750' });
    expect(Object.keys(override.secrets)).toEqual(['infisical_client_id', 'infisical_client_secret']);
  });

  it('turns core dumps off for the sidecar: its memory holds every secret it serves', () => {
    for (const layout of ['seed', 'glitchtip-5', 'glitchtip-6', 'glitchtip-6-all-in-one']) {
      expect(generate(fixture(layout)).override.services.secrets.ulimits, layout).toEqual({ core: 0 });
    }
  });

  it('sets SIDECAR_CONSUMER: glitchtip on the sidecar, in every layout', () => {
    for (const name of ['seed', 'glitchtip-5', 'glitchtip-6', 'glitchtip-6-all-in-one']) {
      expect(generate(fixture(name)).override.services.secrets.environment.SIDECAR_CONSUMER).toBe('glitchtip');
    }
  });

  it('publishes no port on any service it adds or changes: /healthz is reached by service name on the Compose network', () => {
    for (const name of ['seed', 'glitchtip-5', 'glitchtip-6', 'glitchtip-6-all-in-one']) {
      for (const service of Object.values(generate(fixture(name)).override.services as Record<string, Yaml>)) expect(service.ports).toBeUndefined();
    }
  });
});

describe('the last-known-good cache', () => {
  it('is off by default: no SIDECAR_CACHE_DIR, no cache volume, a comment saying how to turn it on', () => {
    const { text, override } = generate(fixture('seed'));
    expect(override.services.secrets.environment.SIDECAR_CACHE_DIR).toBeUndefined();
    expect(override.services.secrets.volumes).toEqual(['glitchtip-secrets:/run/glitchtip-secrets']);
    expect(Object.keys(override.volumes)).toEqual(['glitchtip-secrets']);
    expect(text).toMatch(/# Last-known-good cache: off\. Generate with --cache/);
  });

  it('--cache: SIDECAR_CACHE_DIR and the named volume sidecar-cache, mounted on the sidecar only', () => {
    for (const name of ['seed', 'glitchtip-5', 'glitchtip-6', 'glitchtip-6-all-in-one']) {
      const { override, text } = generate(fixture(name), { cache: true });
      expect(text).toContain('| docker run --rm -i IMAGE compose-override --cache > compose.override.yml'); // regenerating keeps it on
      expect(override.services.secrets.environment.SIDECAR_CACHE_DIR).toBe('/var/cache/infisical-sidecar');
      expect(override.services.secrets.volumes).toEqual(['glitchtip-secrets:/run/glitchtip-secrets', 'sidecar-cache:/var/cache/infisical-sidecar']);
      expect(override.volumes['sidecar-cache']).toEqual({ driver: 'local' });
      for (const [service, spec] of Object.entries(override.services as Record<string, Yaml>)) {
        if (service !== 'secrets') expect(JSON.stringify(spec.volumes ?? [])).not.toContain('sidecar-cache');
      }
      // everything else is the same override
      const without = generate(fixture(name)).override;
      expect({ ...override.services, secrets: undefined }).toEqual({ ...without.services, secrets: undefined });
    }
  });

  it('the CLI takes --cache', async () => {
    const out: string[] = [];
    const code = await runComposeOverride(['--cache', path.join(FIXTURES, 'seed.yml')], { stdout: (t) => out.push(t), stderr: () => {} });
    expect(code).toBe(0);
    expect(`${out.join('\n')}\n`).toBe(generate(fixture('seed'), { cache: true }).text);
  });
});

describe('PostgreSQL role sync', () => {
  it('is on where the project runs PostgreSQL: the role of the postgres service, prompt restarts for the database password', () => {
    for (const [layout, role] of [['seed', 'postgres://glitchtip_maintainer@postgres:5432/glitchtip'], ['glitchtip-6', 'postgres://postgres@postgres:5432/postgres']] as const) {
      const { override, text } = generate(fixture(layout));
      const env = override.services.secrets.environment as Record<string, string>;
      expect(env.SIDECAR_POSTGRES_PASSWORD_KEY).toBe('POSTGRES_PASSWORD');
      expect(env.SIDECAR_POSTGRES_URL).toBe(role);
      expect(env.SIDECAR_POSTGRES_URL).not.toContain('{{');
      for (const [name, service] of Object.entries(override.services as Record<string, Yaml>)) {
        if (name === 'secrets' || name === 'postgres') continue;
        if (service.environment.WITH_SECRETS_RESTART === 'false') expect(service.environment.WITH_SECRETS_PROMPT_FILES, name).toBeUndefined();
        else expect(service.environment.WITH_SECRETS_PROMPT_FILES, name).toBe('keys/POSTGRES_PASSWORD');
      }
      expect(text).toContain('change it in Infisical and watch /healthz');
    }
  });

  it('--no-role-sync leaves it off and says how to rotate by hand; no postgres service, no role sync', async () => {
    const { override, text } = generate(fixture('seed'), { roleSync: false });
    expect(override.services.secrets.environment.SIDECAR_POSTGRES_PASSWORD_KEY).toBeUndefined();
    expect(override.services.web.environment.WITH_SECRETS_PROMPT_FILES).toBeUndefined();
    expect(text).toContain('PostgreSQL role sync: off (generated with --no-role-sync)');
    const out: string[] = [];
    expect(await runComposeOverride(['--no-role-sync', path.join(FIXTURES, 'seed.yml')], { stdout: (t) => out.push(t), stderr: () => {} })).toBe(0);
    expect(out.join('')).not.toContain('SIDECAR_POSTGRES_URL');
    const external = fixture('seed');
    delete external.services.postgres;
    expect(generate(external).override.services.secrets.environment.SIDECAR_POSTGRES_URL).toBeUndefined();
  });
});

describe('idempotence', () => {
  it('generating twice gives the same bytes', () => {
    for (const name of ['seed', 'glitchtip-5', 'glitchtip-6', 'glitchtip-6-all-in-one']) {
      expect(generate(fixture(name)).text).toBe(generate(fixture(name)).text);
    }
  });

  it('a model that already contains the override (a plain `docker compose config` merged it) is refused', () => {
    const base = fixture('glitchtip-5');
    const { override } = generate(base);
    const merged: Yaml = { ...base, services: { ...base.services }, volumes: { ...base.volumes, ...override.volumes } };
    for (const [name, service] of Object.entries(override.services as Yaml)) merged.services[name] = { ...base.services[name], ...service };
    expect(() => generate(merged)).toThrow(ComposeOverrideRefused);
    expect(() => generate(merged)).toThrow(/already contains the sidecar override .*docker compose -f docker-compose.yml config --format json/);
    // one wrapped service is enough to recognise it
    const oneWrapped = { services: { ...base.services, web: { ...base.services.web, entrypoint: override.services.web.entrypoint } } };
    expect(() => generate(oneWrapped)).toThrow(/service web starts through the wait-for-secrets wrapper/);
  });
});

describe('odd models', () => {
  const postgres = { image: 'postgres:16', environment: { POSTGRES_USER: 'glitchtip_maintainer', POSTGRES_DB: 'glitchtip' }, restart: 'always' };

  it('a service with its own entrypoint: the wrapper runs that entrypoint with the command after it', () => {
    const { override, warnings } = generate({
      services: { web: { image: 'glitchtip/glitchtip:6', entrypoint: ['/custom-entry.sh', '--flag'], command: './bin/start.sh', restart: 'always' }, postgres },
    });
    expectWrapped(override.services.web, ['/custom-entry.sh', '--flag', './bin/start.sh']);
    expect(warnings).toContainEqual(expect.stringContaining('service web: the base file sets an entrypoint'));
  });

  it('env_file: named (never its content), as Compose copies it into the container configuration', () => {
    const { warnings } = generate({ services: { web: { image: 'glitchtip/glitchtip', env_file: ['.env', { path: './glitchtip.env', required: false }], restart: 'always' }, postgres } });
    expect(warnings).toContainEqual(expect.stringMatching(/^service web: env_file \.env: /));
    expect(warnings).toContainEqual(expect.stringMatching(/^service web: env_file \.\/glitchtip\.env: /));
  });

  it('an extra non-GlitchTip service is left alone; one with GlitchTip variables is named in a warning', () => {
    const { override, warnings } = generate({
      services: {
        web: { image: 'glitchtip/glitchtip', restart: 'always' },
        nginx: { image: 'nginx:1', ports: ['443:443'] },
        'custom-worker': { build: '.', command: './bin/run-worker.sh', environment: { SECRET_KEY: 'change_me', DATABASE_URL: 'postgres://postgres:postgres@postgres:5432/postgres' } },
        postgres,
      },
    });
    expect(override.services.nginx).toBeUndefined();
    expect(override.services['custom-worker']).toBeUndefined();
    expect(warnings).toContainEqual(expect.stringMatching(/^service custom-worker: has GlitchTip variables .* name every GlitchTip service with --services/));
    expect(warnings.some((w) => w.includes('nginx'))).toBe(false);
  });

  it('--services wraps exactly the named services, a custom-built one included', () => {
    const { override, warnings } = generate(
      { services: { web: { image: 'registry.example/gt:6', restart: 'always' }, worker: { build: '.', command: ['./bin/run-worker.sh'], restart: 'always' }, postgres } },
      { services: ['worker', 'web'] },
    );
    expectWrapped(override.services.web, ['./bin/start.sh']);
    expectWrapped(override.services.worker, ['./bin/run-worker.sh']);
    expect(warnings).toContainEqual(expect.stringContaining("service web: no command in the base file and not the glitchtip/glitchtip image: the override restates GlitchTip's CMD ./bin/start.sh"));
    expect(() => generate({ services: { web: { image: 'x' } } }, { services: ['web', 'wrker'] })).toThrow(/--services names wrker, not in the model/);
  });

  it('a postgres with a custom user, database and port: DATABASE_URL derived from them, its command restated', () => {
    const { override } = generate({
      services: {
        web: { image: 'glitchtip/glitchtip', restart: 'always', environment: { DATABASE_URL: 'postgres://old:old@db:6543/old?sslmode=disable' } },
        db: { image: 'docker.io/library/postgres:17', command: 'postgres -p 6543 -c max_connections=200', environment: ['POSTGRES_USER=gt@admin', 'POSTGRES_DB=errors'] },
      },
    });
    expect(override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL).toBe('postgres://gt%40admin:{{ POSTGRES_PASSWORD | url }}@db:6543/errors?sslmode=disable');
    expect(override.services.db.command).toEqual(['docker-entrypoint.sh', 'postgres', '-p', '6543', '-c', 'max_connections=200']);
    const byPgPort = generate({ services: { web: { image: 'glitchtip/glitchtip', restart: 'always' }, postgres: { image: 'postgres', environment: { PGPORT: '5433' } } } });
    expect(byPgPort.override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL).toBe('postgres://postgres:{{ POSTGRES_PASSWORD | url }}@postgres:5433/postgres');
  });

  it('no postgres service: the base file DATABASE_URL with its password replaced, and a warning', () => {
    const { override, text, warnings } = generate({ services: { web: { image: 'glitchtip/glitchtip', restart: 'always', environment: { DATABASE_URL: 'postgres://gt:placeholder@db.internal:5432/gt' } } } });
    expect(override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL).toBe('postgres://gt:{{ POSTGRES_PASSWORD | url }}@db.internal:5432/gt');
    expect(override.services.postgres).toBeUndefined();
    expect(text).not.toContain('placeholder');
    expect(warnings).toContainEqual(expect.stringMatching(/^variable DATABASE_URL: no PostgreSQL service in the model; .* must be that role's password/));
  });

  it('literal secrets in the base file: warned about by service and variable, the value never printed', () => {
    const canary = 'c4n4ry-5ecret-v4lue';
    const { text, warnings } = generate({
      services: {
        web: {
          image: 'glitchtip/glitchtip',
          restart: 'always',
          environment: { SECRET_KEY: canary, EMAIL_URL: `smtp://user:${canary}@smtp.example:587`, DATABASE_URL: `postgres://gt:${canary}@postgres:5432/gt`, MAILGUN_API_KEY: canary, DEFAULT_FROM_EMAIL: 'gt@example.com' },
        },
        postgres: { image: 'postgres:17', environment: { POSTGRES_PASSWORD: canary } },
      },
    });
    for (const variable of ['SECRET_KEY', 'EMAIL_URL', 'DATABASE_URL', 'MAILGUN_API_KEY']) {
      expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`^service web, variable ${variable}: a literal value in the base file; the sidecar's value replaces it`)));
    }
    expect(warnings).toContainEqual(expect.stringMatching(/^service postgres, variable POSTGRES_PASSWORD: set in the base file; the postgres image refuses to start with both/));
    expect(warnings.some((w) => w.includes('DEFAULT_FROM_EMAIL'))).toBe(false);
    expect(warnings.join('\n')).not.toContain(canary);
    expect(text).not.toContain(canary);
  });

  it("the samples' placeholders are not secrets; a reference to the host's .env is named as such", () => {
    expect(generate(fixture('glitchtip-6')).warnings).toEqual([expect.stringContaining(TRUST)]);
    const { warnings } = generate({ services: { web: { image: 'glitchtip/glitchtip', restart: 'always', environment: { SECRET_KEY: '${SECRET_KEY}' } }, postgres } });
    expect(warnings).toContainEqual(expect.stringMatching(/^service web, variable SECRET_KEY: taken from the host \(\.env or the shell\)/));
  });

  it('a long-running service without a restart policy, and a command that is not a GlitchTip role, are warned about', () => {
    const { override, warnings } = generate({ services: { web: { image: 'glitchtip/glitchtip:6' }, tool: { image: 'glitchtip/glitchtip:6', command: ['./manage.py', 'shell'], restart: 'always' }, postgres } });
    expect(warnings).toContainEqual(expect.stringMatching(/^service web: no restart policy: after a rotation the wrapper stops it \(exit 75\) and nothing starts it again/));
    expect(warnings).toContainEqual('service tool: ./manage.py is not a GlitchTip role script; treated as long-running (restarted on rotation)');
    expect(restartOf(override.services.tool)).toBe(`${RESTART}/20`);
  });

  it('refuses a model without GlitchTip, one with its own `secrets` service, and input that is no Compose model', () => {
    expect(() => generate({ services: { app: { image: 'nginx' } } })).toThrow(/no service runs a glitchtip\/glitchtip image/);
    expect(() => generate({ services: { web: { image: 'glitchtip/glitchtip' }, secrets: { image: 'vault' } } })).toThrow(/already has a service named secrets/);
    expect(() => generate({ version: '3' })).toThrow(ComposeModelError);
  });
});

describe('splitCommand (Compose string commands)', () => {
  it('splits on blanks, keeps quoted text and Compose $$ escapes', () => {
    expect(splitCommand(`./bin/run.sh  "a b" 'c$$d' e\\ f "g\\"h"`)).toEqual(['./bin/run.sh', 'a b', 'c$$d', 'e f', 'g"h']);
    expect(() => splitCommand(`echo 'open`)).toThrow(/unterminated/);
  });
});

describe('the CLI (runComposeOverride)', () => {
  async function run(args: string[], stdin?: string) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runComposeOverride(args, { stdout: (t) => out.push(t), stderr: (t) => err.push(t), readStdin: async () => stdin ?? '', stdinIsTTY: stdin === undefined });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  }
  const seedText = readFileSync(path.join(FIXTURES, 'seed.yml'), 'utf8');

  it('reads the model on stdin (JSON or YAML) or from a file; override on stdout, warnings on stderr', async () => {
    const fromFile = await run([path.join(FIXTURES, 'seed.yml')]);
    expect(fromFile.code).toBe(0);
    expect(`${fromFile.stdout}\n`).toBe(readFileSync(path.resolve(import.meta.dirname, '../compose.override.yml'), 'utf8'));
    expect(fromFile.stderr).toMatch(/^warning: service postgres, variable POSTGRES_HOST_AUTH_METHOD: trust/);
    const fromStdin = await run(['--no-subpath'], JSON.stringify(fixture('seed')));
    expect(fromStdin.code).toBe(0);
    expect(`${fromStdin.stdout}\n`).toBe(generate(fixture('seed'), { subpath: false }).text);
    expect((await run(['-'], seedText)).stdout).toBe(fromFile.stdout);
  });

  it('usage errors: nothing piped in, unknown options, --services without names, a missing file', async () => {
    expect(await run([])).toMatchObject({ code: 64, stderr: expect.stringContaining('nothing on stdin') });
    expect(await run(['--bogus'], seedText)).toMatchObject({ code: 64, stderr: expect.stringContaining('unknown option: --bogus') });
    expect(await run(['--services'], seedText)).toMatchObject({ code: 64, stderr: expect.stringContaining('--services needs') });
    expect(await run(['/nonexistent/compose.yml'])).toMatchObject({ code: 64, stderr: 'infisical-sidecar compose-override: cannot read /nonexistent/compose.yml (ENOENT)' });
    expect(await run(['--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('docker compose -f docker-compose.yml config --format json') });
  });

  it('a file that does not parse is reported by position, never by its text', async () => {
    const result = await run([], 'services:\n  web:\n    environment:\n      SECRET_KEY: "s3cr3t-v4lue\n');
    expect(result.code).toBe(64);
    expect(result.stderr).toMatch(/^infisical-sidecar compose-override: cannot read stdin at line \d+/);
    expect(result.stderr).not.toContain('s3cr3t');
  });

  it('a merged model is refused with the command to use instead', async () => {
    const merged = { ...fixture('seed') };
    merged.services = { ...merged.services, secrets: { image: 'infisical-sidecar:latest' } };
    const result = await run([], JSON.stringify(merged));
    expect(result).toMatchObject({ code: 64, stdout: '' });
    expect(result.stderr).toContain('docker compose -f docker-compose.yml config --format json | infisical-sidecar compose-override');
  });
});

describe('odd model shapes: multi-line commands, odd service names, derived DATABASE_URL edge cases', () => {
  const derived = (override: Yaml) => override.services.secrets.environment.SIDECAR_DERIVE_DATABASE_URL as string;

  it('a multi-line sh -c command stays inside its comment: the override is valid YAML with no injected key', () => {
    const { text, override } = generate({
      services: { web: { image: 'glitchtip/glitchtip', command: ['sh', '-c', 'echo start\nevil: injected\n./bin/start.sh'], restart: 'always' } },
    });
    expect(override.evil).toBeUndefined();
    expect(text).not.toMatch(/^evil: injected$/m);
    expect(override.services.web.command).toEqual(['sh', '-c', 'echo start\nevil: injected\n./bin/start.sh']);
  });

  it('keeps the base URL role and database when postgres names none, and encodes external names once', () => {
    const pg = { image: 'postgres:16', restart: 'always' };
    const named = generate({ services: { web: { image: 'glitchtip/glitchtip', environment: { DATABASE_URL: 'postgres://glitchtip:x@postgres:5432/glitchtip' }, restart: 'always' }, postgres: pg } });
    expect(derived(named.override)).toBe('postgres://glitchtip:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip');

    const external = generate({ services: { web: { image: 'glitchtip/glitchtip', environment: { DATABASE_URL: 'postgres://user%40corp:x@db.example.com:6543/my%20db?sslmode=require' }, restart: 'always' } } });
    expect(derived(external.override)).toBe('postgres://user%40corp:{{ POSTGRES_PASSWORD | url }}@db.example.com:6543/my%20db?sslmode=require');

    const ipv6 = generate({ services: { web: { image: 'glitchtip/glitchtip', environment: { DATABASE_URL: 'postgres://gt:x@[2001:db8::5]:5432/glitchtip' }, restart: 'always' } } });
    expect(derived(ipv6.override)).toBe('postgres://gt:{{ POSTGRES_PASSWORD | url }}@[2001:db8::5]:5432/glitchtip');
  });

  it('warns about a password in the URL query, by name only', () => {
    const { warnings } = generate({ services: { web: { image: 'glitchtip/glitchtip', environment: { DATABASE_URL: 'postgres://gt@db.example.com/glitchtip?sslmode=require&password=Sup3rS3cretQ' }, restart: 'always' } } });
    expect(warnings.join('\n')).toMatch(/DATABASE_URL/);
    expect(warnings.join('\n')).not.toContain('Sup3rS3cretQ');
  });

  it('quotes service names YAML would read as something else', () => {
    const { override } = generate({ services: { null: { image: 'glitchtip/glitchtip', restart: 'always' }, true: { image: 'glitchtip/glitchtip', command: './bin/run-worker.sh', restart: 'always' } } });
    expect(Object.keys(override.services).sort()).toEqual(['null', 'secrets', 'true']);
  });
});
