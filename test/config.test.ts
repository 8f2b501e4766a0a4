import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCredentials } from '../src/config/credentials.js';
import { loadConfig } from '../src/config/load.js';
import { parseDuration } from '../src/config/duration.js';
import { VARIABLES, type VariableSpec } from '../src/config/schema.js';
import { ConfigError, EXIT_CODES } from '../src/errors.js';

const BASE = {
  INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: 'id',
  INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: 'secret',
  INFISICAL_PROJECT_ID: 'project',
  INFISICAL_ENVIRONMENT: 'prod',
};

function problemsOf(env: Record<string, string>, readReal = false): string[] {
  try {
    loadConfig(env, readReal ? undefined : () => {
      throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).exitCode).toBe(EXIT_CODES.config);
    return [...(error as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies documented defaults and freezes the result', () => {
    const config = loadConfig(BASE);
    expect(config).toMatchObject({
      siteUrl: 'https://app.infisical.com',
      secretPaths: ['/'],
      outputDir: '/secrets',
      refreshIntervalMs: 300_000,
      maxStalenessMs: 1_800_000,
      requestTimeoutMs: 10_000,
      fileMode: 0o440,
      healthPort: 8080,
      includeImports: true,
      outputs: [
        { format: 'env', path: 'secrets.env' },
        { format: 'dotenv', path: 'secrets.dotenv' },
        { format: 'json', path: 'secrets.json' },
        { format: 'files', path: 'keys' },
      ],
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.secretPaths)).toBe(true);
  });

  it('reports every problem at once, each naming its variable and the fix', () => {
    const problems = problemsOf({
      INFISICAL_ENVIRONMENT: 'prod',
      SIDECAR_REFRESH_INTERVAL: '300',
      SIDECAR_HEALTH_PORT: '70000',
      SIDECAR_FILE_MODE: '0644',
      SIDECAR_REFRESH_INTERVALL: '5m',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: not set — set INFISICAL_UNIVERSAL_AUTH_CLIENT_ID or INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE/),
      expect.stringMatching(/^INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: not set/),
      expect.stringMatching(/^INFISICAL_PROJECT_ID: not set .*Copy Project ID/),
      expect.stringMatching(/^SIDECAR_FILE_MODE: must not grant access to "other" users/),
      expect.stringMatching(/^SIDECAR_REFRESH_INTERVAL: "300" is not a duration; write it with a unit, e\.g\. 30s, 5m/),
      expect.stringMatching(/^SIDECAR_HEALTH_PORT: must be 0–65535/),
      'SIDECAR_REFRESH_INTERVALL: unknown setting — did you mean SIDECAR_REFRESH_INTERVAL?',
    ]);
  });

  it('reads credentials from _FILE forms and drops one trailing newline', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    writeFileSync(path.join(dir, 'id'), 'file-id\n');
    writeFileSync(path.join(dir, 'secret'), 'file-secret\n');
    const config = loadConfig({
      ...BASE,
      INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: undefined,
      INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: undefined,
      INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE: path.join(dir, 'id'),
      INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: path.join(dir, 'secret'),
    });
    expect(config.clientId).toBe('file-id');
    expect(config.clientSecret).toBe('file-secret');
    expect(config.clientSecretFile).toBe(path.join(dir, 'secret'));
  });

  it('refuses an empty _FILE, naming the variable and the path', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    writeFileSync(path.join(dir, 'secret'), ' \n');
    // Not "unset": an empty webhook secret file would otherwise turn the webhook off without a word.
    expect(problemsOf({ ...BASE, SIDECAR_WEBHOOK_SECRET_FILE: path.join(dir, 'secret') }, true)).toEqual([
      `SIDECAR_WEBHOOK_SECRET_FILE: ${path.join(dir, 'secret')} is empty — write the value into the file`,
    ]);
  });

  it('types every field from the variable table', () => {
    const config = loadConfig(BASE);
    // @ts-expect-error SIDECAR_HEALTH_PORT's schema makes a number: a field typed otherwise does not compile.
    const port: string = config.healthPort;
    // @ts-expect-error SIDECAR_LOG_FORMAT's schema allows only its three formats.
    const format: 'yaml' = config.logFormat;
    expect([port, format]).toEqual([8080, 'auto']);
  });

  it('refuses both a variable and its _FILE form, and unreadable files, by name', () => {
    const problems = problemsOf({ ...BASE, INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE: '/nope/id', INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: '', INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: '/run/secrets/missing' });
    expect(problems[0]).toMatch(/^INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: both INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE are set/);
    expect(problems[1]).toMatch(/^INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: cannot read \/run\/secrets\/missing \(ENOENT\)/);
  });

  it('says once, in one line naming both forms, when a variable and its _FILE form are both set', () => {
    expect(problemsOf({ ...BASE, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: '/run/secrets/secret', SIDECAR_WEBHOOK_SECRET: 'w', SIDECAR_WEBHOOK_SECRET_FILE: '/run/secrets/webhook' })).toEqual([
      'INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: both INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET and INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE are set — keep only one (the _FILE form for Compose secrets)',
      'SIDECAR_WEBHOOK_SECRET: both SIDECAR_WEBHOOK_SECRET and SIDECAR_WEBHOOK_SECRET_FILE are set — keep only one (the _FILE form for Compose secrets)',
    ]);
  });

  it('accepts the CLI form INFISICAL_API_URL with its /api suffix', () => {
    expect(loadConfig({ ...BASE, INFISICAL_API_URL: 'https://eu.infisical.com/api' }).siteUrl).toBe('https://eu.infisical.com');
    expect(loadConfig({ ...BASE, INFISICAL_SITE_URL: 'https://h.example/prefix/' }).siteUrl).toBe('https://h.example/prefix');
  });

  it('refuses clear-text http except on loopback or when explicitly allowed', () => {
    expect(problemsOf({ ...BASE, INFISICAL_SITE_URL: 'http://infisical.internal:8080' })[0]).toMatch(
      /^INFISICAL_SITE_URL: http:\/\/ to infisical\.internal would send credentials .* set SIDECAR_ALLOW_INSECURE_HTTP=true/,
    );
    expect(loadConfig({ ...BASE, INFISICAL_SITE_URL: 'http://127.0.0.1:8090' }).siteUrl).toBe('http://127.0.0.1:8090');
    expect(loadConfig({ ...BASE, INFISICAL_SITE_URL: 'http://fake:8090', SIDECAR_ALLOW_INSECURE_HTTP: 'true' }).siteUrl).toBe('http://fake:8090');
    expect(problemsOf({ ...BASE, INFISICAL_SITE_URL: 'infisical.example.com' })[0]).toMatch(/is not a URL — write it with its scheme/);
  });

  it('requires the staleness bound to exceed the refresh interval', () => {
    expect(problemsOf({ ...BASE, SIDECAR_REFRESH_INTERVAL: '10m', SIDECAR_MAX_STALENESS: '5m' })[0]).toMatch(
      /^SIDECAR_MAX_STALENESS: must be longer than SIDECAR_REFRESH_INTERVAL \(5m ≤ 10m\)/,
    );
  });

  it('validates folders and collects SIDECAR_DERIVE_ templates', () => {
    expect(problemsOf({ ...BASE, INFISICAL_SECRET_PATHS: 'glitchtip/database,/a/../b' })).toEqual([
      'INFISICAL_SECRET_PATHS: "glitchtip/database" must start with / — e.g. /glitchtip/database',
      'INFISICAL_SECRET_PATHS: "/a/../b" must not contain . or .. segments',
    ]);
    const config = loadConfig({ ...BASE, INFISICAL_SECRET_PATHS: ' /glitchtip/database , /glitchtip/application/ ', SIDECAR_DERIVE_DATABASE_URL: 'postgres://u:{{ POSTGRES_PASSWORD | url }}@db/app' });
    expect(config.secretPaths).toEqual(['/glitchtip/database', '/glitchtip/application']);
    expect([...config.derived]).toEqual([['DATABASE_URL', 'postgres://u:{{ POSTGRES_PASSWORD | url }}@db/app']]);
    expect(problemsOf({ ...BASE, 'SIDECAR_DERIVE_DATABASE-URL': 'x' })[0]).toMatch(/^SIDECAR_DERIVE_DATABASE-URL: "DATABASE-URL" is not an environment variable name/);
  });

  it('reads outputs and derived values from a strict JSON config file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    const file = path.join(dir, 'sidecar.json');
    writeFileSync(file, JSON.stringify({ outputs: [{ format: 'env', path: 'glitchtip.env' }], derived: { A: '{{ B }}' } }));
    const config = loadConfig({ ...BASE, SIDECAR_CONFIG_FILE: file });
    expect(config.outputs).toEqual([{ format: 'env', path: 'glitchtip.env' }]);
    expect(config.derived.get('A')).toBe('{{ B }}');

    writeFileSync(file, JSON.stringify({ outputs: [{ format: 'env', path: '../escape.env' }], extra: 1 }));
    const problems = problemsOf({ ...BASE, SIDECAR_CONFIG_FILE: file }, true);
    expect(problems.join('\n')).toMatch(/outputs\.0\.path: must be a plain file name/);
    expect(problems.join('\n')).toMatch(/Unrecognized key.*extra/);
  });
});

describe('PostgreSQL role sync settings', () => {
  const complete = (extra: Record<string, string>) => ({ ...BASE, ...extra });

  it('parses the role URL: role, host, port, database, sslmode (default prefer); never a password', () => {
    const config = loadConfig(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'POSTGRES_PASSWORD', SIDECAR_POSTGRES_URL: 'postgresql://glitch%20tip@[::1]:6543/db%2Fx?sslmode=require' }));
    expect(config.postgresPasswordKey).toBe('POSTGRES_PASSWORD');
    expect(config.postgresTarget).toEqual({ host: '::1', port: 6543, role: 'glitch tip', database: 'db/x', sslMode: 'require', sslRootCert: undefined });
    expect(config.postgresUnreachable).toBe('hold');
    expect(config.postgresTimeoutMs).toBe(10_000);
    expect(loadConfig(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'P', SIDECAR_POSTGRES_URL: 'postgres://r@postgres' })).postgresTarget).toMatchObject({ port: 5432, database: 'r', sslMode: 'prefer' });
    expect(loadConfig(BASE).postgresTarget).toBeUndefined();
  });

  it('refuses half a setup, a password in the URL, unknown parameters and a verify mode without a CA, naming the fix and never echoing the URL', () => {
    const secretLooking = 'hunter2-not-for-logs';
    const problems = [
      ...problemsOf(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'POSTGRES_PASSWORD' })),
      ...problemsOf(complete({ SIDECAR_POSTGRES_URL: 'postgres://r@h/d' })),
      ...problemsOf(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'P', SIDECAR_POSTGRES_URL: `postgres://r:${secretLooking}@h/d` })),
      ...problemsOf(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'P', SIDECAR_POSTGRES_URL: 'postgres://r@h/d?sslmode=verify-full' })),
      ...problemsOf(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'P', SIDECAR_POSTGRES_URL: 'postgres://r@h/d?ssl=true&application_name=x' })),
      ...problemsOf(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'P', SIDECAR_POSTGRES_URL: 'mysql://r@h/d' })),
      ...problemsOf(complete({ SIDECAR_POSTGRES_PASSWORD_KEY: 'not a key', SIDECAR_POSTGRES_URL: 'postgres://r@h/d' })),
    ];
    expect(problems).toEqual([
      expect.stringMatching(/^SIDECAR_POSTGRES_URL: required with SIDECAR_POSTGRES_PASSWORD_KEY — set it to postgres:\/\/ROLE@HOST/),
      expect.stringMatching(/^SIDECAR_POSTGRES_PASSWORD_KEY: not set, but SIDECAR_POSTGRES_URL is/),
      expect.stringMatching(/^SIDECAR_POSTGRES_URL: holds a password; remove it/),
      expect.stringMatching(/^SIDECAR_POSTGRES_URL: sslmode=verify-full needs sslrootcert=/),
      expect.stringMatching(/^SIDECAR_POSTGRES_URL: unsupported parameters ssl, application_name/),
      expect.stringMatching(/^SIDECAR_POSTGRES_URL: scheme mysql: is not postgres:\/\//),
      expect.stringMatching(/^SIDECAR_POSTGRES_PASSWORD_KEY: must be a key name/),
    ]);
    expect(problems.join('\n')).not.toContain(secretLooking);
  });
});

describe('file ownership and mode', () => {
  it('reads an empty SIDECAR_FILE_UID / SIDECAR_FILE_GID as unset, not as root', () => {
    const config = loadConfig({ ...BASE, SIDECAR_FILE_UID: '', SIDECAR_FILE_GID: ' ' });
    expect([config.fileUid, config.fileGid]).toEqual([undefined, undefined]);
    expect(loadConfig({ ...BASE, SIDECAR_FILE_UID: '0', SIDECAR_FILE_GID: '5000' })).toMatchObject({ fileUid: 0, fileGid: 5000 });
  });

  it.each(['0x10', '1e3', '1.0', '-1', '+5', '5 000', '4294967295'])('refuses %j as an id: plain decimal numbers only', (id) => {
    expect(problemsOf({ ...BASE, SIDECAR_FILE_UID: id, SIDECAR_FILE_GID: id })).toEqual([
      expect.stringMatching(/^SIDECAR_FILE_UID: must be (a whole number|0–4294967294)$/),
      expect.stringMatching(/^SIDECAR_FILE_GID: must be (a whole number|0–4294967294)$/),
    ]);
  });

  it.each(['0000', '0200', '0040', '0240'])('refuses mode %s: the sidecar could not read its own files', (mode) => {
    expect(problemsOf({ ...BASE, SIDECAR_FILE_MODE: mode })).toEqual([expect.stringMatching(/^SIDECAR_FILE_MODE: the owner must be able to read \(u\+r, 04 in the first digit\)/)]);
  });

  it.each([['0400', 0o400], ['0440', 0o440], ['640', 0o640], ['0600', 0o600]])('accepts mode %s', (mode, bits) => {
    expect(loadConfig({ ...BASE, SIDECAR_FILE_MODE: mode }).fileMode).toBe(bits);
  });
});

describe('duration bounds (Node timers hold at most 2^31-1 ms, about 24.8 days)', () => {
  const durationVariables = Object.entries<VariableSpec>(VARIABLES).filter(([, spec]) => spec.default !== undefined && parseDuration(spec.default) !== undefined);

  it('covers every duration variable, the ones the issue names included', () => {
    expect(durationVariables.map(([name]) => name)).toEqual(
      expect.arrayContaining(['SIDECAR_REFRESH_INTERVAL', 'SIDECAR_MAX_STALENESS', 'SIDECAR_BACKOFF_MAX', 'SIDECAR_REQUEST_TIMEOUT', 'SIDECAR_ONCE_DEADLINE', 'SIDECAR_WEBHOOK_TOLERANCE', 'SIDECAR_RELOAD_DEBOUNCE', 'SIDECAR_RELOAD_COOLDOWN', 'SIDECAR_RELOAD_TIMEOUT']),
    );
  });

  it.each(['25d', '40d', '1000d'])('refuses %s for every duration variable, naming the maximum', (text) => {
    for (const [name] of durationVariables) {
      expect(problemsOf({ ...BASE, [name]: text }), name).toEqual([expect.stringMatching(new RegExp(`^${name}: ${text} is above the maximum of \\w+`))]);
    }
  });

  it('documents each maximum, far below the timer limit, and holds to it', () => {
    const maximumOf = (spec: VariableSpec) => /\(at most (\w+)\)/.exec(spec.doc)?.[1];
    // The staleness bound must exceed the interval: give it its own maximum while another variable is at its maximum.
    const env = { ...BASE, SIDECAR_MAX_STALENESS: maximumOf(VARIABLES.SIDECAR_MAX_STALENESS)! };
    for (const [name, spec] of durationVariables) {
      const maximum = maximumOf(spec);
      expect(maximum, `${name} documents its maximum`).toBeDefined();
      expect(parseDuration(maximum!)!, name).toBeLessThanOrEqual(7 * 86_400_000);
      expect(() => loadConfig({ ...env, [name]: maximum! }), name).not.toThrow();
      expect(problemsOf({ ...env, [name]: `${maximum}1ms` }), name).toEqual([`${name}: ${maximum}1ms is above the maximum of ${maximum}`]);
    }
  });
});

describe('readCredentials (every login)', () => {
  const files = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'creds-'));
    const id = path.join(dir, 'id');
    const secret = path.join(dir, 'secret');
    writeFileSync(id, 'file-id\n');
    writeFileSync(secret, '  file-secret \r\n');
    return { id, secret };
  };

  it('reads the files again at every call, trimmed exactly as loadConfig trims them', () => {
    const { id, secret } = files();
    const config = loadConfig({ ...BASE, INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: undefined, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: undefined, INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE: id, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: secret });
    expect(readCredentials(config)).toEqual({ clientId: config.clientId, clientSecret: config.clientSecret });
    expect(config.clientSecret).toBe('file-secret');
    writeFileSync(secret, 'rotated\n');
    expect(readCredentials(config)).toEqual({ clientId: 'file-id', clientSecret: 'rotated' });
  });

  it('uses values given directly as they are', () => {
    expect(readCredentials(loadConfig(BASE))).toEqual({ clientId: 'id', clientSecret: 'secret' });
  });

  it('reports an unreadable or empty file as SIDECAR_CONFIG_FILE_UNREADABLE, naming variable and path, never falling back', () => {
    const { id, secret } = files();
    const source = { clientId: 'start-id', clientIdFile: id, clientSecret: 'start-secret', clientSecretFile: secret };
    writeFileSync(secret, '\n');
    const empty = (() => {
      try {
        return readCredentials(source);
      } catch (error) {
        return error;
      }
    })();
    expect(empty).toBeInstanceOf(ConfigError);
    expect(empty).toMatchObject({ code: 'SIDECAR_CONFIG_FILE_UNREADABLE', problems: [`INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE: ${secret} is empty — write the value into the file`] });
    expect(() => readCredentials({ ...source, clientIdFile: `${id}.gone` })).toThrow(
      expect.objectContaining({ code: 'SIDECAR_CONFIG_FILE_UNREADABLE', problems: [expect.stringMatching(new RegExp(`^INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE: cannot read ${id}\\.gone \\(ENOENT\\)`))] }),
    );
    expect(readCredentials({ ...source, clientSecretFile: undefined })).toEqual({ clientId: 'file-id', clientSecret: 'start-secret' });
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
    ['2d', 172_800_000],
  ])('parses %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['300', '', '5 minutes', 'm5', '-1s'])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('settings that only make sense together, and their edges', () => {
  const problemLines = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      return (error as ConfigError).problems;
    }
  };

  it('refuses a cache directory that overlaps the output directory, either way round', () => {
    for (const cacheDir of ['/secrets', '/secrets/cache', '/']) {
      expect(problemLines({ ...BASE, SIDECAR_OUTPUT_DIR: '/secrets', SIDECAR_CACHE_DIR: cacheDir }).join('\n')).toMatch(/^SIDECAR_CACHE_DIR: .* overlaps SIDECAR_OUTPUT_DIR \/secrets/m);
    }
    expect(problemLines({ ...BASE, SIDECAR_OUTPUT_DIR: '/secrets', SIDECAR_CACHE_DIR: '/var/cache/infisical-sidecar' })).toEqual([]);
  });

  it('names a malformed %-escape in the heartbeat URL user part instead of crashing, without showing it', () => {
    const lines = problemLines({ ...BASE, SIDECAR_HEARTBEAT_URL: 'https://us%ZZer:pw-secret@hc.example.com/ping' });
    expect(lines).toEqual(['SIDECAR_HEARTBEAT_URL: the user or password part has a malformed %-escape — write % as %25']);
  });
});
