/**
 * Seed data for the fake Infisical server: the shape a seed must have, the GlitchTip demo seed,
 * and a validator for seeds loaded from JSON files (main.ts, Docker e2e).
 */

/** One folder: its secrets (key -> raw value) and its imports, in position order. */
export interface FakeSeedFolder {
  secrets: Record<string, string>;
  imports?: Array<{ environment: string; path: string }>;
}

export interface FakeSeedEnvironment {
  /** Display name used in webhook payloads; defaults to the slug. */
  name?: string;
  /** Folder path -> folder. Parent folders (and `/`) are created implicitly. */
  folders: Record<string, FakeSeedFolder>;
}

export interface FakeSeedProject {
  id: string;
  slug: string;
  /** Display name used in webhook payloads; defaults to the slug. */
  name?: string;
  environments: Record<string, FakeSeedEnvironment>;
}

export interface FakeSeed {
  projects: FakeSeedProject[];
  identities: Array<{ clientId: string; clientSecret: string }>;
}

export const DEMO_PROJECT_ID = '6a0b3c1e-9d2f-4e5a-8b7c-1f2e3d4c5b6a';
export const DEMO_PROJECT_SLUG = 'glitchtip';
export const DEMO_ENVIRONMENT = 'prod';
export const DEMO_CLIENT_ID = 'glitchtip-machine-identity-demo';
export const DEMO_CLIENT_SECRET = 'demo-client-secret-not-for-production';
export const DEMO_DATABASE_PATH = '/glitchtip/database';
export const DEMO_APPLICATION_PATH = '/glitchtip/application';

/**
 * GlitchTip's secrets split the way an operator would file them. The values are deliberately awkward:
 * the password carries every character that breaks naive dotenv/shell/URL handling, and the SMTP URL
 * carries percent-escapes that must not be decoded along the way.
 */
export const GLITCHTIP_SEED: FakeSeed = {
  projects: [
    {
      id: DEMO_PROJECT_ID,
      slug: DEMO_PROJECT_SLUG,
      name: 'GlitchTip',
      environments: {
        [DEMO_ENVIRONMENT]: {
          name: 'Production',
          folders: {
            [DEMO_DATABASE_PATH]: {
              secrets: { POSTGRES_PASSWORD: `Gl1tch'Tip "pg" 100% @db:5432 pw` },
            },
            [DEMO_APPLICATION_PATH]: {
              secrets: {
                SECRET_KEY: 'e67c7f4e3cc1c20f9937974417f51c0ea8162909caed7934934d184928a63b5a',
                EMAIL_URL: 'smtp://glitchtip%40app:Zm9v%2Bb4r%2Fb%3Dz@smtp.example.test:2525',
                DEFAULT_FROM_EMAIL: 'glitchtip@example.test',
              },
            },
          },
        },
      },
    },
  ],
  identities: [{ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET }],
};

/** Checks a seed read from JSON and returns it typed; throws with the JSON path of the first problem. */
export function parseSeed(input: unknown): FakeSeed {
  const root = asObject(input, 'seed');
  const projects = asArray(root['projects'], 'seed.projects').map((raw, i) => {
    const where = `seed.projects[${i}]`;
    const p = asObject(raw, where);
    const environments: Record<string, FakeSeedEnvironment> = {};
    for (const [slug, rawEnv] of Object.entries(asObject(p['environments'], `${where}.environments`))) {
      const envWhere = `${where}.environments.${slug}`;
      const env = asObject(rawEnv, envWhere);
      const folders: Record<string, FakeSeedFolder> = {};
      for (const [path, rawFolder] of Object.entries(asObject(env['folders'], `${envWhere}.folders`))) {
        const fWhere = `${envWhere}.folders[${JSON.stringify(path)}]`;
        const f = asObject(rawFolder, fWhere);
        const secrets: Record<string, string> = {};
        for (const [key, value] of Object.entries(asObject(f['secrets'] ?? {}, `${fWhere}.secrets`))) {
          secrets[key] = asString(value, `${fWhere}.secrets.${key}`);
        }
        const imports = asArray(f['imports'] ?? [], `${fWhere}.imports`).map((rawImp, j) => {
          const imp = asObject(rawImp, `${fWhere}.imports[${j}]`);
          return {
            environment: asString(imp['environment'], `${fWhere}.imports[${j}].environment`),
            path: asString(imp['path'], `${fWhere}.imports[${j}].path`),
          };
        });
        folders[path] = { secrets, imports };
      }
      const name = env['name'] === undefined ? undefined : asString(env['name'], `${envWhere}.name`);
      environments[slug] = name === undefined ? { folders } : { name, folders };
    }
    const project: FakeSeedProject = {
      id: asString(p['id'], `${where}.id`),
      slug: asString(p['slug'], `${where}.slug`),
      environments,
    };
    if (p['name'] !== undefined) project.name = asString(p['name'], `${where}.name`);
    return project;
  });
  const identities = asArray(root['identities'] ?? [], 'seed.identities').map((raw, i) => {
    const o = asObject(raw, `seed.identities[${i}]`);
    return {
      clientId: asString(o['clientId'], `seed.identities[${i}].clientId`),
      clientSecret: asString(o['clientSecret'], `seed.identities[${i}].clientSecret`),
    };
  });
  return { projects, identities };
}

function asObject(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${where} must be an object`);
  return v as Record<string, unknown>;
}

function asArray(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${where} must be an array`);
  return v;
}

function asString(v: unknown, where: string): string {
  if (typeof v !== 'string') throw new Error(`${where} must be a string`);
  return v;
}

/**
 * The sidecar environment of the GlitchTip deployment (both folders, the four required keys, the
 * derived DATABASE_URL), pointed at a fake server and an output directory. Shared by the demo,
 * the tests and the benchmark, so all three exercise the configuration production uses.
 */
export function glitchtipSidecarEnv(siteUrl: string, outputDir: string): Record<string, string> {
  return {
    INFISICAL_SITE_URL: siteUrl,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: DEMO_CLIENT_ID,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: DEMO_CLIENT_SECRET,
    INFISICAL_PROJECT_ID: DEMO_PROJECT_ID,
    INFISICAL_ENVIRONMENT: DEMO_ENVIRONMENT,
    INFISICAL_SECRET_PATHS: `${DEMO_DATABASE_PATH},${DEMO_APPLICATION_PATH}`,
    SIDECAR_REQUIRED_KEYS: 'POSTGRES_PASSWORD,SECRET_KEY,EMAIL_URL,DEFAULT_FROM_EMAIL',
    SIDECAR_DERIVE_DATABASE_URL: 'postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip',
    SIDECAR_OUTPUT_DIR: outputDir,
  };
}
