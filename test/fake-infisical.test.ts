/**
 * Fidelity tests for the fake Infisical server: each test pins one behaviour from
 * docs/infisical-api.md (§1–4, §7, §8), several through the real @infisical/sdk. The last block
 * drives both server generations (§8) and checks how the sidecar's client classifies each answer.
 * Time-dependent faults (latency, a client's deadline) run on a manual clock (test/helpers/clock.ts).
 */
import { createHash, createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InfisicalSDK } from '@infisical/sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { clientAgainst } from './helpers/sidecar.js';
import type { Credentials } from '../src/config/credentials.js';
import type { FolderResult } from '../src/infisical/client.js';
import {
  DEMO_CLIENT_ID,
  DEMO_CLIENT_SECRET,
  DEMO_ENVIRONMENT,
  DEMO_PROJECT_ID,
  GLITCHTIP_SEED,
  parseSeed,
} from './fake-infisical/seed.js';
import type { FakeSeed } from './fake-infisical/seed.js';
import { SERVER_GENERATIONS } from './fake-infisical/generation.js';
import type { ServerGeneration } from './fake-infisical/generation.js';
import { startFakeInfisical } from './fake-infisical/server.js';
import type { FakeInfisical, FakeInfisicalOptions } from './fake-infisical/server.js';
import { signWebhook } from './fake-infisical/webhook.js';
import { timeoutSignal } from '../src/timers.js';
import { ManualClock } from './helpers/clock.js';

const REQ_ID = /^req-[A-Za-z0-9]{14}$/;

interface Json {
  status: number;
  headers: Headers;
  // Response bodies are probed field by field; typing each shape would only restate the assertions.
  body: any;
  text: string;
}

async function call(url: string, init: RequestInit = {}): Promise<Json> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, body, text };
}

function postJson(url: string, body: unknown): Promise<Json> {
  return call(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function login(fake: FakeInfisical, clientId = DEMO_CLIENT_ID, clientSecret = DEMO_CLIENT_SECRET): Promise<string> {
  const r = await postJson(`${fake.url}/api/v1/auth/universal-auth/login`, { clientId, clientSecret });
  expect(r.status).toBe(200);
  return r.body.accessToken as string;
}

function listUrl(fake: FakeInfisical, version: 'v3' | 'v4', params: Record<string, string>): string {
  const base = version === 'v3' ? '/api/v3/secrets/raw' : '/api/v4/secrets';
  const project: Record<string, string> = version === 'v3' ? { workspaceId: DEMO_PROJECT_ID } : { projectId: DEMO_PROJECT_ID };
  return `${fake.url}${base}?${new URLSearchParams({ ...project, environment: DEMO_ENVIRONMENT, ...params })}`;
}

function list(fake: FakeInfisical, token: string, version: 'v3' | 'v4', params: Record<string, string>, headers: Record<string, string> = {}): Promise<Json> {
  return call(listUrl(fake, version, params), { headers: { authorization: `Bearer ${token}`, ...headers } });
}

function values(body: { secrets: Array<{ secretKey: string; secretValue: string }> }): Record<string, string> {
  return Object.fromEntries(body.secrets.map((s) => [s.secretKey, s.secretValue]));
}

function expectEnvelope(r: Json, status: number, error: string, message?: string): void {
  expect(r.status).toBe(status);
  expect(Object.keys(r.body).sort()).toEqual(['error', 'message', 'reqId', 'statusCode']);
  expect(r.body.reqId).toMatch(REQ_ID);
  expect(r.body.statusCode).toBe(status);
  expect(r.body.error).toBe(error);
  if (message !== undefined) expect(r.body.message).toBe(message);
}

const appSecrets = GLITCHTIP_SEED.projects[0]!.environments[DEMO_ENVIRONMENT]!.folders['/glitchtip/application']!.secrets;
const dbSecrets = GLITCHTIP_SEED.projects[0]!.environments[DEMO_ENVIRONMENT]!.folders['/glitchtip/database']!.secrets;

describe('fake Infisical', () => {
  let fake: FakeInfisical;
  beforeAll(async () => {
    fake = await startFakeInfisical();
  });
  afterAll(async () => {
    await fake.close();
  });
  beforeEach(() => fake.reset());

  describe('with the real SDK', () => {
    it('logs in and lists the seed, with the full secret shape', async () => {
      const sdk = new InfisicalSDK({ siteUrl: fake.url });
      await sdk.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
      expect(sdk.auth().getAccessToken()).not.toMatch(/^st\./);
      const app = await sdk.secrets().listSecrets({ projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath: '/glitchtip/application' });
      expect(values(app)).toEqual(appSecrets);
      expect(app.secrets.map((s) => s.secretKey)).toEqual(['DEFAULT_FROM_EMAIL', 'EMAIL_URL', 'SECRET_KEY']);
      expect(app.imports).toEqual([]);
      const first = app.secrets[0] as unknown as Record<string, unknown>;
      expect(Object.keys(first)).toEqual([
        'id', '_id', 'workspace', 'environment', 'version', 'type', 'secretKey', 'secretValue', 'secretComment',
        'secretReminderNote', 'secretReminderRepeatDays', 'skipMultilineEncoding', 'createdAt', 'updatedAt',
        'isRotatedSecret', 'rotationId', 'secretPath', 'secretValueHidden', 'secretMetadata', 'tags',
      ]);
      expect(first).toMatchObject({
        workspace: DEMO_PROJECT_ID, environment: 'prod', version: 1, type: 'shared', secretComment: '',
        secretPath: '/glitchtip/application', secretValueHidden: false, secretMetadata: [], tags: [],
      });
      expect(first['_id']).toBe(first['id']);
      expect(new Date(first['createdAt'] as string).toISOString()).toBe(first['createdAt']);

      const db = await sdk.secrets().listSecrets({ projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath: '/glitchtip/database' });
      expect(values(db)).toEqual(dbSecrets);
      // What the SDK actually sent: v3 with snake_case include_imports.
      const sent = fake.requests.filter((r) => r.path === '/api/v3/secrets/raw');
      expect(sent[0]?.query).toMatchObject({ workspaceId: DEMO_PROJECT_ID, include_imports: 'false', expandSecretReferences: 'true' });
    });

    it('renews through the SDK, and surfaces 401 with the server message', async () => {
      const sdk = new InfisicalSDK({ siteUrl: fake.url });
      await sdk.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
      const before = sdk.auth().getAccessToken();
      await sdk.auth().universalAuth.renew();
      expect(sdk.auth().getAccessToken()).not.toBe(before);
      const bad = new InfisicalSDK({ siteUrl: fake.url });
      await expect(bad.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID, clientSecret: 'nope' })).rejects.toThrow(
        /\[StatusCode=401\] Invalid credentials/,
      );
    });
  });

  describe('login', () => {
    const loginUrl = (): string => `${fake.url}/api/v1/auth/universal-auth/login`;

    it('returns exactly the four keys, from a form body with padded values', async () => {
      const r = await call(loginUrl(), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ clientId: ` ${DEMO_CLIENT_ID} `, clientSecret: `${DEMO_CLIENT_SECRET}\n` }).toString(),
      });
      expect(r.status).toBe(200);
      expect(Object.keys(r.body)).toEqual(['accessToken', 'expiresIn', 'accessTokenMaxTTL', 'tokenType']);
      expect(r.body).toMatchObject({ expiresIn: 2592000, accessTokenMaxTTL: 2592000, tokenType: 'Bearer' });
      expect(r.body.accessToken).toMatch(/^eyJ/);
      expect(r.headers.get('etag')).toMatch(/^"[A-Za-z0-9+/=]+"$/);
    });

    it('ignores trailing slashes (the CLI posts to .../login/)', async () => {
      const r = await postJson(`${loginUrl()}/`, { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
      expect(r.status).toBe(200);
      const list = await call(`${listUrl(fake, 'v3', { secretPath: '/glitchtip/database' }).replace('/raw?', '/raw/?')}`, {
        headers: { authorization: `Bearer ${r.body.accessToken as string}` },
      });
      expect(list.status).toBe(200);
      expect(values(list.body)).toEqual(dbSecrets);
    });

    it('rejects a wrong secret and an unknown client with the 401 envelope', async () => {
      expectEnvelope(await postJson(loginUrl(), { clientId: DEMO_CLIENT_ID, clientSecret: 'wrong' }), 401, 'UnauthorizedError', 'Invalid credentials');
      expectEnvelope(await postJson(loginUrl(), { clientId: 'nobody', clientSecret: 'x' }), 401, 'UnauthorizedError', 'Invalid credentials');
    });

    it('answers a missing field with 422 and an issue array as message', async () => {
      const r = await postJson(loginUrl(), { clientId: DEMO_CLIENT_ID });
      expectEnvelope(r, 422, 'ValidationFailure');
      expect(r.body.message).toEqual([expect.objectContaining({ code: 'invalid_type', path: ['clientSecret'], message: 'Required' })]);
    });

    it('locks the identity after 3 failures in 30 s, for 300 s', async () => {
      let now = 1_000_000;
      const clocked = await startFakeInfisical({ now: () => now });
      try {
        const url = `${clocked.url}/api/v1/auth/universal-auth/login`;
        const good = { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET };
        const bad = { ...good, clientSecret: 'wrong' };
        // Two failures, then 31 s pass: the counter resets, no lock.
        await postJson(url, bad);
        await postJson(url, bad);
        now += 31_000;
        await postJson(url, bad);
        expect((await postJson(url, good)).status).toBe(200);
        for (let i = 0; i < 3; i++) expect((await postJson(url, bad)).body.message).toBe('Invalid credentials');
        const locked = await postJson(url, good);
        expectEnvelope(locked, 401, 'UnauthorizedError', 'This identity auth method is temporarily locked, please try again later');
        now += 299_000;
        expect((await postJson(url, good)).status).toBe(401);
        now += 2_000;
        expect((await postJson(url, good)).status).toBe(200);
      } finally {
        await clocked.close();
      }
    });

    it('refuses a revoked identity and accepts an added one', async () => {
      fake.addIdentity('ci-bot', 's3cret');
      await login(fake, 'ci-bot', 's3cret');
      fake.revokeIdentity('ci-bot');
      expectEnvelope(await postJson(loginUrl(), { clientId: 'ci-bot', clientSecret: 's3cret' }), 401, 'UnauthorizedError', 'Invalid credentials');
    });
  });

  describe('tokens', () => {
    it('needs a token: missing header 401, garbage 403 malformed, foreign signature 403', async () => {
      expectEnvelope(await call(listUrl(fake, 'v3', {})), 401, 'UnauthorizedError', 'Token missing');
      expectEnvelope(await list(fake, 'garbage', 'v3', {}), 403, 'TokenError');
      const other = await startFakeInfisical();
      try {
        const foreign = await login(other);
        expectEnvelope(await list(fake, foreign, 'v3', {}), 403, 'TokenError', 'invalid signature');
      } finally {
        await other.close();
      }
    });

    it('expireTokens: 403 TokenError by default, 401 legacy form on request; new logins work', async () => {
      const t1 = await login(fake);
      fake.expireTokens();
      expectEnvelope(await list(fake, t1, 'v3', {}), 403, 'TokenError', 'Your token has expired. Please re-authenticate.');
      const renew = await postJson(`${fake.url}/api/v1/auth/token/renew`, { accessToken: t1 });
      expectEnvelope(renew, 403, 'TokenError', 'Your token has expired. Please re-authenticate.');
      const t2 = await login(fake);
      expect((await list(fake, t2, 'v3', {})).status).toBe(200);
      fake.expireTokens('401');
      expectEnvelope(await list(fake, t2, 'v3', {}), 401, 'UnauthorizedError', 'No identity access token found');
    });

    it('expires tokens by TTL in the configured form, and caps renewals at MaxTTL', async () => {
      let now = 5_000_000;
      const clocked = await startFakeInfisical({ now: () => now, tokenTtlSeconds: 60, tokenMaxTtlSeconds: 100, expiredTokenForm: '401' });
      try {
        const r = await postJson(`${clocked.url}/api/v1/auth/universal-auth/login`, { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
        expect(r.body).toMatchObject({ expiresIn: 60, accessTokenMaxTTL: 100 });
        const token = r.body.accessToken as string;
        now += 59_000;
        expect((await list(clocked, token, 'v3', {})).status).toBe(200);
        const renewed = await postJson(`${clocked.url}/api/v1/auth/token/renew`, { accessToken: token });
        expect(renewed.body.expiresIn).toBe(41); // remaining budget, not the full TTL
        now += 2_000;
        expectEnvelope(await list(clocked, token, 'v3', {}), 401, 'UnauthorizedError', 'No identity access token found');
        expect((await list(clocked, renewed.body.accessToken as string, 'v3', {})).status).toBe(200);
        now += 38_500; // 0.5 s of budget left: less than a second, so nothing to renew into
        const exhausted = await postJson(`${clocked.url}/api/v1/auth/token/renew`, { accessToken: renewed.body.accessToken });
        expectEnvelope(exhausted, 401, 'UnauthorizedError', 'Cannot renew: identity access token has reached its max TTL');
      } finally {
        await clocked.close();
      }
    });

    it('revokes a token (and its renewals)', async () => {
      const token = await login(fake);
      const renewed = (await postJson(`${fake.url}/api/v1/auth/token/renew`, { accessToken: token })).body.accessToken as string;
      const r = await postJson(`${fake.url}/api/v1/auth/token/revoke`, { accessToken: token });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ message: 'Successfully revoked access token' });
      expectEnvelope(await list(fake, renewed, 'v3', {}), 401, 'UnauthorizedError', 'Failed to authorize: token has been revoked');
      expectEnvelope(await postJson(`${fake.url}/api/v1/auth/token/renew`, { accessToken: token }), 401, 'UnauthorizedError', 'Cannot renew: token has been revoked');
    });
  });

  describe('list secrets', () => {
    let token: string;
    beforeEach(async () => {
      token = await login(fake);
    });

    it('v3 reads include_imports (snake_case) and ignores includeImports', async () => {
      fake.setSecret('prod', '/shared', 'REDIS_URL', 'redis://cache:6379/0');
      fake.addImport('prod', '/glitchtip/application', 'prod', '/shared');
      const camel = await list(fake, token, 'v3', { secretPath: '/glitchtip/application', includeImports: 'true' });
      expect(camel.body.imports).toEqual([]);
      const snake = await list(fake, token, 'v3', { secretPath: '/glitchtip/application', include_imports: 'true' });
      expect(snake.body.imports).toHaveLength(1);
      const imp = snake.body.imports[0];
      expect(Object.keys(imp)).toEqual(['secretPath', 'environment', 'folderId', 'secrets']);
      expect(imp).toMatchObject({ secretPath: '/shared', environment: 'prod' });
      expect(imp.secrets[0]).toMatchObject({ secretKey: 'REDIS_URL', secretValue: 'redis://cache:6379/0', workspace: '' });
      expect(imp.secrets[0]).not.toHaveProperty('createdAt');
      expect(imp.secrets[0]).not.toHaveProperty('tags');
    });

    it('v4 defaults to includeImports=true and expandSecretReferences=true; v3 to false', async () => {
      fake.setSecret('prod', '/shared', 'SMTP_HOST', 'smtp.example.test');
      fake.setSecret('prod', '/glitchtip/application', 'SMTP', 'host=${prod.shared.SMTP_HOST}');
      fake.addImport('prod', '/glitchtip/application', 'prod', '/shared');
      const v4 = await list(fake, token, 'v4', { secretPath: '/glitchtip/application' });
      expect(v4.status).toBe(200);
      expect(values(v4.body)['SMTP']).toBe('host=smtp.example.test');
      expect(v4.body.imports).toHaveLength(1);
      const v3 = await list(fake, token, 'v3', { secretPath: '/glitchtip/application' });
      expect(values(v3.body)['SMTP']).toBe('host=${prod.shared.SMTP_HOST}');
      expect(v3.body.imports).toEqual([]);
      const v4off = await list(fake, token, 'v4', { secretPath: '/glitchtip/application', includeImports: 'false', expandSecretReferences: 'false' });
      expect(v4off.body.imports).toEqual([]);
      expect(values(v4off.body)['SMTP']).toBe('host=${prod.shared.SMTP_HOST}');
      // v4 takes projectId only.
      const noProject = await call(`${fake.url}/api/v4/secrets?workspaceId=${DEMO_PROJECT_ID}&environment=prod`, { headers: { authorization: `Bearer ${token}` } });
      expectEnvelope(noProject, 422, 'ValidationFailure');
    });

    it('accepts only the exact strings true/false for booleans (422 otherwise)', async () => {
      for (const bad of ['1', 'True', 'yes', '']) {
        const r = await list(fake, token, 'v3', { recursive: bad });
        expectEnvelope(r, 422, 'ValidationFailure');
        expect(r.body.message[0]).toMatchObject({ code: 'invalid_enum_value', path: ['recursive'] });
      }
      expect((await list(fake, token, 'v3', { recursive: 'false', tagSlugz: 'x' })).status).toBe(200);
    });

    it('sends a quoted base64 SHA-1 ETag and answers If-None-Match with an empty 304', async () => {
      const first = await list(fake, token, 'v3', { secretPath: '/glitchtip/application' });
      const etag = first.headers.get('etag');
      expect(etag).toBe(`"${createHash('sha1').update(first.text).digest('base64')}"`);
      const again = await list(fake, token, 'v3', { secretPath: '/glitchtip/application' }, { 'if-none-match': etag! });
      expect(again.status).toBe(304);
      expect(again.text).toBe('');
      fake.setSecret('prod', '/glitchtip/application', 'SECRET_KEY', 'rotated');
      const changed = await list(fake, token, 'v3', { secretPath: '/glitchtip/application' }, { 'if-none-match': etag! });
      expect(changed.status).toBe(200);
      const rotated = changed.body.secrets.find((s: { secretKey: string }) => s.secretKey === 'SECRET_KEY');
      expect(rotated).toMatchObject({ secretValue: 'rotated', version: 2 });
    });

    it('missing folder or env: 404 SecretPathNotFound; unknown project 404; no project 400', async () => {
      const r = await list(fake, token, 'v3', { secretPath: '/nope/' });
      expectEnvelope(r, 404, 'SecretPathNotFound',
        "Folder with path '/nope' in environment 'prod' was not found. Please ensure the environment slug and secret path is correct.");
      expectEnvelope(await list(fake, token, 'v3', { environment: 'staging' }), 404, 'SecretPathNotFound');
      expectEnvelope(await list(fake, token, 'v3', { workspaceId: 'no-such-project' }), 404, 'NotFound');
      const noProject = await call(`${fake.url}/api/v3/secrets/raw?environment=prod`, { headers: { authorization: `Bearer ${token}` } });
      expectEnvelope(noProject, 400, 'BadRequest', 'You must provide projectSlug or workspaceId');
      const bySlug = await call(`${fake.url}/api/v3/secrets/raw?workspaceSlug=glitchtip&environment=prod&secretPath=/glitchtip/database`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(values(bySlug.body)).toEqual(dbSecrets);
    });

    it('missing folder answers an empty list in the older-server mode', async () => {
      const old = await startFakeInfisical({ missingFolder: 'empty' });
      try {
        const r = await list(old, await login(old), 'v3', { secretPath: '/nope' });
        expect(r.status).toBe(200);
        expect(r.body).toEqual({ secrets: [], imports: [] });
      } finally {
        await old.close();
      }
      fake.removeFolder('prod', '/glitchtip/database');
      expect((await list(fake, token, 'v3', { secretPath: '/glitchtip/database' })).status).toBe(404);
    });

    it('lists recursively with each secret in its own folder, sorted by key', async () => {
      const r = await list(fake, token, 'v3', { secretPath: '/glitchtip', recursive: 'true' });
      expect(r.body.secrets.map((s: { secretKey: string; secretPath: string }) => `${s.secretPath}:${s.secretKey}`)).toEqual([
        '/glitchtip/application:DEFAULT_FROM_EMAIL',
        '/glitchtip/application:EMAIL_URL',
        '/glitchtip/database:POSTGRES_PASSWORD',
        '/glitchtip/application:SECRET_KEY',
      ]);
      expect((await list(fake, token, 'v3', { secretPath: '/glitchtip' })).body.secrets).toEqual([]);
    });

    it('hides values when viewSecretValue=false', async () => {
      const r = await list(fake, token, 'v3', { secretPath: '/glitchtip/database', viewSecretValue: 'false' });
      expect(r.body.secrets[0]).toMatchObject({ secretValue: '<hidden-by-infisical>', secretValueHidden: true });
    });

    it('expands references: local, cross-env, nested; leaves missing, empty and cyclic ones literal', async () => {
      const set = (path: string, key: string, value: string, env = 'prod'): void => fake.setSecret(env, path, key, value);
      set('/', 'DB_HOST', 'db.internal');
      set('/glitchtip/database', 'DB_USER', 'glitchtip');
      set('/glitchtip/database', 'DB_URL', 'postgres://${DB_USER}:${POSTGRES_PASSWORD}@${prod.DB_HOST}/gt');
      set('/', 'SHARED', 'from-staging', 'staging');
      set('/glitchtip/database', 'CROSS', '${staging.SHARED}|${staging.a.b.DEEP}');
      set('/a/b', 'DEEP', 'deep-${LOCAL}', 'staging');
      set('/a/b', 'LOCAL', 'staging-local', 'staging');
      set('/glitchtip/database', 'MISSING', '${NOPE} ${prod.nowhere.X}');
      set('/glitchtip/database', 'EMPTY', '');
      set('/glitchtip/database', 'USES_EMPTY', '[${EMPTY}]');
      set('/glitchtip/database', 'CYCLE_A', 'a${CYCLE_B}');
      set('/glitchtip/database', 'CYCLE_B', 'b${CYCLE_A}');
      set('/glitchtip/database', 'SELF', '${SELF}');
      const r = await list(fake, token, 'v3', { secretPath: '/glitchtip/database', expandSecretReferences: 'true' });
      const v = values(r.body);
      expect(v['DB_URL']).toBe(`postgres://glitchtip:${dbSecrets['POSTGRES_PASSWORD']!}@db.internal/gt`);
      expect(v['CROSS']).toBe('from-staging|deep-staging-local');
      expect(v['MISSING']).toBe('${NOPE} ${prod.nowhere.X}');
      expect(v['USES_EMPTY']).toBe('[${EMPTY}]');
      expect(v['CYCLE_A']).toBe('ab${CYCLE_A}');
      expect(v['SELF']).toBe('${SELF}');
    });

    it('stops expanding after 10 levels of nesting', async () => {
      for (let i = 0; i < 15; i++) fake.setSecret('prod', '/chain', `K${i}`, i === 14 ? 'end' : `\${K${i + 1}}`);
      const v = values((await list(fake, token, 'v4', { secretPath: '/chain' })).body);
      expect(v['K14']).toBe('end');
      expect(v['K4']).toBe('end'); // 10 hops away
      expect(v['K0']).toMatch(/^\$\{K\d+\}$/);
    });

    it('round-trips hostile values and keys byte-exact', async () => {
      const hostile: Record<string, string> = {
        QUOTES: `it's "quoted" \`tick\` $HOME \\n \\`,
        NEWLINES: 'line1\nline2\r\nline3\n',
        NUL: 'a\u0000b',
        UNICODE: 'ümlaut 日本語 🔑 \u200b \u2028',
        SPACES: '  padded  ',
        'dotted.key': 'x',
        'dash-key': 'y',
        'key with spaces': 'z',
        'ключ': 'unicode key',
        BIG: 'x'.repeat(1024 * 1024),
        URLISH: 'a+b/c=d%40e',
      };
      for (const [k, val] of Object.entries(hostile)) fake.setSecret('prod', '/hostile', k, val);
      expect(() => fake.setSecret('prod', '/hostile', 'a/b', 'v')).toThrow();
      expect(() => fake.setSecret('prod', '/hostile', 'a:b', 'v')).toThrow();
      const r = await list(fake, token, 'v3', { secretPath: '/hostile' });
      expect(values(r.body)).toEqual(hostile);
      // Through the control API too (what the demo and Docker e2e use).
      const put = await call(`${fake.url}/__fake/secrets`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ environment: 'prod', path: '/hostile', key: 'NUL', value: '\u0000\u0001"\'\n' }),
      });
      expect(put.status).toBe(200);
      const sdk = new InfisicalSDK({ siteUrl: fake.url });
      await sdk.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
      const viaSdk = await sdk.secrets().listSecrets({ projectId: DEMO_PROJECT_ID, environment: 'prod', secretPath: '/hostile' });
      expect(values(viaSdk)).toEqual({ ...hostile, NUL: '\u0000\u0001"\'\n' });
    });

    it('keeps the SDK query encoding intact (spaces as +) for paths with spaces', async () => {
      fake.setSecret('prod', '/with space', 'K', 'v');
      const sdk = new InfisicalSDK({ siteUrl: fake.url });
      await sdk.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
      const r = await sdk.secrets().listSecrets({ projectId: DEMO_PROJECT_ID, environment: 'prod', secretPath: '/with space' });
      expect(values(r)).toEqual({ K: 'v' });
    });
  });

  describe('faults', () => {
    it('rate limit: the real 429 envelope and a retry-after header, then recovery', async () => {
      const token = await login(fake);
      fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 42, times: 1 });
      const r = await list(fake, token, 'v3', {});
      expectEnvelope(r, 429, 'RateLimitExceeded', 'Rate limit exceeded. Please try again in 42 seconds');
      expect(r.headers.get('retry-after')).toBe('42');
      expect((await list(fake, token, 'v3', {})).status).toBe(200);
    });

    it('5xx: the InternalServerError envelope; route and path scoping', async () => {
      const token = await login(fake);
      fake.faults.add({ route: 'list', path: '/glitchtip/database/', kind: 'status', status: 500 });
      expectEnvelope(await list(fake, token, 'v3', { secretPath: '/glitchtip/database' }), 500, 'InternalServerError', 'Something went wrong');
      expect((await list(fake, token, 'v3', { secretPath: '/glitchtip/application' })).status).toBe(200);
      expect((await postJson(`${fake.url}/api/v1/auth/universal-auth/login`, { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET })).status).toBe(200);
      fake.faults.add({ route: 'login', kind: 'status', status: 502, body: '<html>Bad Gateway</html>', headers: { 'content-type': 'text/html' } });
      const gw = await postJson(`${fake.url}/api/v1/auth/universal-auth/login`, {});
      expect(gw.status).toBe(502);
      expect(gw.text).toBe('<html>Bad Gateway</html>');
      expect(gw.headers.get('content-type')).toBe('text/html');
    });

    it('latency delays, then the normal answer', async () => {
      const clock = new ManualClock();
      const slow = await startFakeInfisical({ clock });
      onTestFinished(() => slow.close());
      const token = await login(slow);
      slow.faults.add({ kind: 'latency', ms: 150, times: 1 });
      let answered = false;
      const answer = list(slow, token, 'v3', {}).finally(() => (answered = true));
      await clock.whenPending((dueIn) => dueIn === 150);
      await clock.advance(149);
      expect(answered, 'no answer 1 ms before the latency has passed').toBe(false);
      await clock.advance(1);
      expect((await answer).status).toBe(200);
      expect(slow.requests.at(-1)?.ms).toBe(150);
    });

    it('hang: no answer until the client gives up, and close() ends the hung requests instead of waiting for them', async () => {
      const clock = new ManualClock();
      const hung = await startFakeInfisical({ clock });
      hung.faults.add({ kind: 'hang' });
      const timedOut = fetch(`${hung.url}/api/v3/secrets/raw`, { signal: timeoutSignal(clock, 200) }).catch((e: unknown) => e);
      await hung.whenRequests((requests) => requests.length === 1);
      await clock.advance(200); // the client's deadline: the server never answered
      expect(((await timedOut) as Error).name).toBe('TimeoutError');
      // A second hung request, with no deadline of its own, still open when we close.
      const pending = fetch(`${hung.url}/api/v3/secrets/raw`).catch((e: unknown) => e);
      await hung.whenRequests((requests) => requests.length === 2);
      expect(hung.requests.map((r) => r.status)).toEqual([0, 0]);
      await hung.close(); // would wait forever for the open request if it did not destroy its socket
      expect(await pending).toBeInstanceOf(Error);
    });

    it('reset: the socket is destroyed, fetch fails', async () => {
      fake.faults.add({ route: 'login', kind: 'reset', times: 1 });
      const err = await postJson(`${fake.url}/api/v1/auth/universal-auth/login`, {}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toBe('fetch failed');
      expect((await postJson(`${fake.url}/api/v1/auth/universal-auth/login`, { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET })).status).toBe(200);
    });

    it('malformed: 200 with a JSON content type and an unparseable body', async () => {
      const token = await login(fake);
      fake.faults.add({ route: 'list', kind: 'malformed' });
      const r = await list(fake, token, 'v3', {});
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(() => JSON.parse(r.text)).toThrow();
    });
  });

  describe('control API, request log, webhooks', () => {
    it('drives the fake over HTTP', async () => {
      const ctl = (method: string, path: string, body?: unknown): Promise<Json> =>
        call(`${fake.url}/__fake/${path}`, body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect((await ctl('GET', 'health')).body).toMatchObject({ ok: true, url: fake.url });
      const token = await login(fake);
      await ctl('PUT', 'secrets', { environment: 'prod', path: '/glitchtip/application', key: 'NEW_KEY', value: 'new' });
      expect(values((await list(fake, token, 'v3', { secretPath: '/glitchtip/application' })).body)['NEW_KEY']).toBe('new');
      expect((await ctl('DELETE', 'secrets', { environment: 'prod', path: '/glitchtip/application', key: 'NEW_KEY' })).body.deleted).toBe(true);
      expect(values((await list(fake, token, 'v3', { secretPath: '/glitchtip/application' })).body)).toEqual(appSecrets);

      expect((await ctl('POST', 'faults', { route: 'list', kind: 'status', status: 503, times: 1 })).status).toBe(200);
      expect((await list(fake, token, 'v3', {})).status).toBe(503);
      expect((await ctl('POST', 'faults', { kind: 'bogus' })).status).toBe(400);
      await ctl('POST', 'faults', { kind: 'status', status: 500 });
      await ctl('DELETE', 'faults');
      expect((await list(fake, token, 'v3', {})).status).toBe(200);

      await ctl('POST', 'expire-tokens', { form: '401' });
      expect((await list(fake, token, 'v3', {})).status).toBe(401);

      const log = (await ctl('GET', 'requests')).body.requests as Array<{ path: string; status: number }>;
      expect(log.map((e) => e.status)).toEqual([200, 200, 200, 503, 200, 401]);
      expect(log.every((e) => !e.path.startsWith('/__fake'))).toBe(true);

      await ctl('PUT', 'secrets', { environment: 'prod', path: '/x', key: 'K', value: 'v' });
      await ctl('POST', 'reset');
      expect(fake.requests).toEqual([]);
      const fresh = await login(fake);
      expectEnvelope(await list(fake, fresh, 'v3', { secretPath: '/x' }), 404, 'SecretPathNotFound');
    });

    it('never records tokens, secrets or bodies in the request log', async () => {
      const token = await login(fake);
      await list(fake, token, 'v3', { secretPath: '/glitchtip/database' });
      await postJson(`${fake.url}/api/v1/auth/token/renew`, { accessToken: token });
      await postJson(`${fake.url}/api/v1/auth/token/revoke`, { accessToken: token });
      const dump = JSON.stringify(fake.requests);
      expect(fake.requests).toHaveLength(4);
      expect(Object.keys(fake.requests[0]!).sort()).toEqual(['at', 'method', 'ms', 'path', 'query', 'status']);
      expect(dump).not.toContain(token);
      expect(dump).not.toContain(token.split('.')[2]!);
      expect(dump).not.toContain(DEMO_CLIENT_SECRET);
      expect(dump).not.toContain(dbSecrets['POSTGRES_PASSWORD']!);
      expect(dump.toLowerCase()).not.toContain('bearer');
    });

    it('signs webhooks as Infisical does: t=<ms>;<hex hmac of the raw body>, timestamp inside the body', async () => {
      const signed = signWebhook('whsec', { event: 'secrets.modified' }, 1760000000000);
      expect(signed.body).toBe('{"event":"secrets.modified","timestamp":1760000000000}');
      expect(signed.signature).toBe(`t=1760000000000;${createHmac('sha256', 'whsec').update(signed.body).digest('hex')}`);

      const received: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
      const receiver = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => {
          received.push({ headers: req.headers, body });
          res.end('ok');
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      try {
        const delivery = await fake.sendWebhook(hookUrl, 'whsec', { environment: 'prod', secretPath: '/glitchtip/application' });
        expect(delivery.status).toBe(200);
        // And over the control API, unsigned (no secret key configured).
        await postJson(`${fake.url}/__fake/webhook`, { url: hookUrl, environment: 'prod', secretPath: '/' });
      } finally {
        await new Promise((r) => receiver.close(r));
      }
      const [signedHook, unsigned] = received;
      const payload = JSON.parse(signedHook!.body);
      expect(payload).toMatchObject({
        event: 'secrets.modified',
        project: { workspaceId: DEMO_PROJECT_ID, projectId: DEMO_PROJECT_ID, projectName: 'GlitchTip', environment: 'prod', environmentName: 'Production', secretPath: '/glitchtip/application' },
      });
      const header = signedHook!.headers['x-infisical-signature'] as string;
      const [t, hex] = header.split(';');
      expect(t).toBe(`t=${payload.timestamp as number}`);
      expect(hex).toBe(createHmac('sha256', 'whsec').update(signedHook!.body).digest('hex'));
      expect(signedHook!.headers['content-type']).toBe('application/json');
      expect(unsigned!.headers['x-infisical-signature']).toBeUndefined();
    });
  });

  describe('seed', () => {
    it('has the demo folders and awkward sample values', () => {
      expect(Object.keys(appSecrets).sort()).toEqual(['DEFAULT_FROM_EMAIL', 'EMAIL_URL', 'SECRET_KEY']);
      expect(appSecrets['SECRET_KEY']).toMatch(/^[0-9a-f]{64}$/);
      expect(appSecrets['EMAIL_URL']).toMatch(/^smtp:\/\/glitchtip%40app:.+@smtp\.example\.test:2525$/);
      expect(appSecrets['DEFAULT_FROM_EMAIL']).toBe('glitchtip@example.test');
      for (const ch of ["'", '"', '%', '@', ':', ' ']) expect(dbSecrets['POSTGRES_PASSWORD']).toContain(ch);
    });

    it('parseSeed accepts the demo seed and names the first bad field', () => {
      const copy: FakeSeed = JSON.parse(JSON.stringify(GLITCHTIP_SEED));
      expect(parseSeed(copy)).toEqual({
        ...copy,
        projects: copy.projects.map((p) => ({
          ...p,
          environments: Object.fromEntries(Object.entries(p.environments).map(([k, e]) => [
            k, { ...e, folders: Object.fromEntries(Object.entries(e.folders).map(([fp, f]) => [fp, { ...f, imports: [] }])) },
          ])),
        })),
      });
      expect(() => parseSeed({ projects: [{ id: 1 }] })).toThrow('seed.projects[0].environments must be an object');
    });
  });
});

/** What each generation answers where they differ (docs/infisical-api.md §8). */
interface GenerationAnswers {
  unknownClient: { status: number; error: string; message: string };
  validationStatus: number;
  garbageToken: string;
  /** A token past its TTL (inside its max TTL): the first answer, then every later one. */
  pastTtl: [{ status: number; error: string; message: string }, { status: number; error: string; message: string }];
  revoked: { status: number; message: string };
  /** The body's wait with 4 s left in the window. */
  rateLimitWait: string;
}

const EXPIRED = { status: 403, error: 'TokenError', message: 'Your token has expired. Please re-authenticate.' };
const NOT_FOUND_TOKEN = { status: 401, error: 'UnauthorizedError', message: 'No identity access token found' };

const ANSWERS: Record<ServerGeneration, GenerationAnswers> = {
  current: {
    unknownClient: { status: 401, error: 'UnauthorizedError', message: 'Invalid credentials' },
    validationStatus: 422,
    garbageToken: 'The provided access token is malformed. Please use a valid token or generate a new one and try again.',
    pastTtl: [EXPIRED, EXPIRED],
    revoked: { status: 401, message: 'Failed to authorize: token has been revoked' },
    rateLimitWait: '4 seconds',
  },
  v2024: {
    unknownClient: { status: 404, error: 'NotFound', message: 'No identity with specified client ID was found' },
    validationStatus: 401,
    garbageToken: 'invalid token',
    pastTtl: [{ status: 401, error: 'UnauthorizedError', message: 'Failed to renew MI access token due to TTL expiration' }, NOT_FOUND_TOKEN],
    revoked: { status: 401, message: 'No identity access token found' },
    rateLimitWait: '1 minute',
  },
};

async function startGeneration(generation: ServerGeneration, opts: FakeInfisicalOptions = {}): Promise<FakeInfisical> {
  const fake = await startFakeInfisical({ generation, ...opts });
  onTestFinished(() => fake.close());
  return fake;
}

function jwtClaims(token: string): Record<string, number> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

describe.each(SERVER_GENERATIONS)('server generation %s', (generation) => {
  const answers = ANSWERS[generation];
  const loginUrl = (fake: FakeInfisical): string => `${fake.url}/api/v1/auth/universal-auth/login`;
  const renew = (fake: FakeInfisical, accessToken: string): Promise<Json> => postJson(`${fake.url}/api/v1/auth/token/renew`, { accessToken });

  it('missing folder: 404 SecretPathNotFound (current) or 200 with empty lists (v2024), also through the SDK', async () => {
    const fake = await startGeneration(generation);
    const token = await login(fake);
    const missing = await list(fake, token, 'v3', { secretPath: '/nope' });
    const unknownEnv = await list(fake, token, 'v3', { environment: 'staging' });
    const sdk = new InfisicalSDK({ siteUrl: fake.url });
    await sdk.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
    const viaSdk = sdk.secrets().listSecrets({ projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath: '/nope' });
    if (generation === 'current') {
      expectEnvelope(missing, 404, 'SecretPathNotFound');
      expectEnvelope(unknownEnv, 404, 'SecretPathNotFound');
      await expect(viaSdk).rejects.toThrow(/\[StatusCode=404\] Folder with path '\/nope'/);
    } else {
      expect(missing.status).toBe(200);
      expect(missing.body).toEqual({ secrets: [], imports: [] });
      expect(unknownEnv.body).toEqual({ secrets: [], imports: [] });
      expect(await viaSdk).toEqual({ secrets: [], imports: [] });
    }
    // A wrong project id is a 404 on both.
    expectEnvelope(await list(fake, token, 'v3', { workspaceId: 'no-such-project' }), 404, 'NotFound');
  });

  it('an existing folder lists `imports` only when asked on v2024, always on current', async () => {
    const fake = await startGeneration(generation);
    const token = await login(fake);
    const plain = await list(fake, token, 'v3', { secretPath: '/glitchtip/database' });
    expect(values(plain.body)).toEqual(dbSecrets);
    expect('imports' in plain.body).toBe(generation === 'current');
    expect((await list(fake, token, 'v3', { secretPath: '/glitchtip/database', include_imports: 'true' })).body.imports).toEqual([]);
  });

  it('login: unknown client id, wrong secret, body validation failure', async () => {
    const fake = await startGeneration(generation);
    const { status, error, message } = answers.unknownClient;
    expectEnvelope(await postJson(loginUrl(fake), { clientId: 'nobody', clientSecret: 'x' }), status, error, message);
    expectEnvelope(await postJson(loginUrl(fake), { clientId: DEMO_CLIENT_ID, clientSecret: 'wrong' }), 401, 'UnauthorizedError', 'Invalid credentials');
    const invalid = await postJson(loginUrl(fake), { clientId: DEMO_CLIENT_ID });
    expectEnvelope(invalid, answers.validationStatus, 'ValidationFailure');
    expect(invalid.body.message).toEqual([expect.objectContaining({ path: ['clientSecret'], message: 'Required' })]);
    // The real SDK: a string message follows [StatusCode=NNN]; an issue array leaves only the status.
    const sdk = new InfisicalSDK({ siteUrl: fake.url });
    await expect(sdk.auth().universalAuth.login({ clientId: 'nobody', clientSecret: 'x' })).rejects.toThrow(`[StatusCode=${status}] ${message}`);
    await expect(sdk.auth().universalAuth.login({ clientId: DEMO_CLIENT_ID } as never)).rejects.toThrow(`Request failed with status ${answers.validationStatus}`);
  });

  it('a token past its TTL but inside its max TTL, on data calls and renew', async () => {
    let now = 7_000_000;
    const fake = await startGeneration(generation, { now: () => now, tokenTtlSeconds: 10, tokenMaxTtlSeconds: 40 });
    const r = await postJson(loginUrl(fake), { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET });
    expect(r.body).toMatchObject({ expiresIn: 10, accessTokenMaxTTL: 40 });
    const token = r.body.accessToken as string;
    // The JWT carries the TTL on current servers, the max TTL on late-2024 ones: never trust `exp`.
    const claims = jwtClaims(token);
    expect(claims['exp']! - claims['iat']!).toBe(generation === 'current' ? 10 : 40);
    now += 11_000;
    const [first, later] = answers.pastTtl;
    expectEnvelope(await list(fake, token, 'v3', {}), first.status, first.error, first.message);
    expectEnvelope(await list(fake, token, 'v3', {}), later.status, later.error, later.message);
    expectEnvelope(await renew(fake, token), later.status, later.error, later.message);
    expect((await list(fake, await login(fake), 'v3', {})).status).toBe(200);
  });

  it('garbage and revoked tokens', async () => {
    const fake = await startGeneration(generation);
    expectEnvelope(await list(fake, 'garbage', 'v3', {}), 403, 'TokenError', answers.garbageToken);
    const token = await login(fake);
    expect((await postJson(`${fake.url}/api/v1/auth/token/revoke`, { accessToken: token })).status).toBe(200);
    expectEnvelope(await list(fake, token, 'v3', {}), answers.revoked.status, 'UnauthorizedError', answers.revoked.message);
  });

  it('secret reads limited per client IP: retry-after holds the real seconds left, x-ratelimit-* on every answer', async () => {
    let now = 9_000_000;
    const fake = await startGeneration(generation, { now: () => now, secretReadsPerMinute: 3 });
    const token = await login(fake);
    const limitHeaders = (r: Json): string[] => ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'].map((h) => r.headers.get(h) ?? '-');
    expect(limitHeaders(await list(fake, token, 'v3', {}))).toEqual(['3', '2', '60']);
    now += 10_000;
    expect(limitHeaders(await list(fake, token, 'v3', {}))).toEqual(['3', '1', '50']);
    now += 10_000;
    expect(limitHeaders(await list(fake, token, 'v3', {}))).toEqual(['3', '0', '40']);
    now += 36_000;
    const limited = await list(fake, token, 'v3', {});
    expectEnvelope(limited, 429, 'RateLimitExceeded', `Rate limit exceeded. Please try again in ${answers.rateLimitWait}`);
    expect(limited.headers.get('retry-after')).toBe('4');
    expect(limitHeaders(limited)).toEqual(['3', '0', '4']);
    // Authentication runs first: a bad token is refused as such, not rate-limited; logins are not secret reads.
    expect((await list(fake, 'garbage', 'v3', {})).status).toBe(403);
    expect((await postJson(loginUrl(fake), { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET })).status).toBe(200);
    now += 4_000;
    const next = await list(fake, token, 'v3', {});
    expect(next.status).toBe(200);
    expect(limitHeaders(next)).toEqual(['3', '2', '60']);
    // The rateLimit fault words its body the same way.
    fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 4, times: 1 });
    expect((await list(fake, token, 'v3', {})).body.message).toBe(`Rate limit exceeded. Please try again in ${answers.rateLimitWait}`);
  });

  if (generation === 'v2024') {
    it('renew returns the same token with the window moved, until the next window would pass the max TTL', async () => {
      let now = 8_000_000;
      const fake = await startGeneration(generation, { now: () => now, tokenTtlSeconds: 10, tokenMaxTtlSeconds: 40 });
      const token = await login(fake);
      for (const at of [5, 14, 23]) {
        now = 8_000_000 + at * 1000;
        const renewed = await renew(fake, token);
        expect(renewed.body).toEqual({ accessToken: token, expiresIn: 10, accessTokenMaxTTL: 40, tokenType: 'Bearer' });
        expect((await list(fake, token, 'v3', {})).status).toBe(200);
      }
      now = 8_000_000 + 31_000; // 31 + 10 > 40
      expectEnvelope(await renew(fake, token), 401, 'UnauthorizedError', 'Failed to renew MI access token past its Max TTL expiration');
      expectEnvelope(await list(fake, token, 'v3', {}), NOT_FOUND_TOKEN.status, NOT_FOUND_TOKEN.error, NOT_FOUND_TOKEN.message);
    });

    it('a token past its max TTL (the JWT exp) gets 403 TokenError, renew included', async () => {
      let now = 8_000_000;
      const fake = await startGeneration(generation, { now: () => now, tokenTtlSeconds: 10, tokenMaxTtlSeconds: 40 });
      const token = await login(fake);
      now += 41_000;
      expectEnvelope(await list(fake, token, 'v3', {}), EXPIRED.status, EXPIRED.error, EXPIRED.message);
      expectEnvelope(await renew(fake, token), EXPIRED.status, EXPIRED.error, EXPIRED.message);
    });
  }

  describe("the sidecar's client classifies each answer", () => {
    /** The client's request deadline runs on a manual clock nobody moves: only the fake's answers decide. */
    function clientFor(fake: FakeInfisical, credentials: Credentials = { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET }) {
      return clientAgainst(fake, () => credentials, new ManualClock());
    }
    const failureOf = (result: FolderResult | undefined) => {
      if (result === undefined || result.ok) throw new Error(`expected a failed folder, got ${JSON.stringify(result?.ok)}`);
      return { code: result.error.code, status: result.error.status, retryAfterMs: result.error.retryAfterMs };
    };

    it('missing folder: SIDECAR_FETCH_NOT_FOUND on current, an empty folder on v2024', async () => {
      const client = clientFor(await startGeneration(generation));
      const [existing, missing] = await client.fetchFolders(['/glitchtip/database', '/nope']);
      expect(existing?.ok).toBe(true);
      if (generation === 'current') expect(failureOf(missing)).toMatchObject({ code: 'SIDECAR_FETCH_NOT_FOUND', status: 404 });
      else expect(missing).toEqual({ path: '/nope', ok: true, secrets: [] });
    });

    it('unknown client id and a body the server rejects: SIDECAR_AUTH_INVALID_CREDENTIALS', async () => {
      const fake = await startGeneration(generation);
      const [unknown] = await clientFor(fake, { clientId: 'nobody', clientSecret: 'x' }).fetchFolders(['/glitchtip/database']);
      expect(failureOf(unknown)).toMatchObject({ code: 'SIDECAR_AUTH_INVALID_CREDENTIALS', status: answers.unknownClient.status });
      const [invalid] = await clientFor(fake, { clientId: DEMO_CLIENT_ID } as Credentials).fetchFolders(['/glitchtip/database']);
      expect(failureOf(invalid)).toMatchObject({ code: 'SIDECAR_AUTH_INVALID_CREDENTIALS', status: answers.validationStatus });
    });

    it('a token past its TTL, or past its max TTL: one re-login, then the folders', async () => {
      const fake = await startGeneration(generation);
      const client = clientFor(fake);
      const paths = ['/glitchtip/database', '/glitchtip/application'];
      expect((await client.fetchFolders(paths)).every((f) => f.ok)).toBe(true);
      let relogins = 0;
      for (const form of ['401', '403'] as const) {
        fake.expireTokens(form);
        expect((await client.fetchFolders(paths)).every((f) => f.ok), form).toBe(true);
        expect(client.stats.relogins).toBe(++relogins);
      }
    });

    it('rate limited: SIDECAR_FETCH_RATE_LIMITED with retry-after from the header, not the body', async () => {
      let now = 9_000_000;
      const client = clientFor(await startGeneration(generation, { now: () => now, secretReadsPerMinute: 1 }));
      expect((await client.fetchFolders(['/glitchtip/database']))[0]?.ok).toBe(true);
      now += 45_000;
      const [limited] = await client.fetchFolders(['/glitchtip/database']);
      expect(failureOf(limited)).toEqual({ code: 'SIDECAR_FETCH_RATE_LIMITED', status: 429, retryAfterMs: 15_000 });
      expect(client.stats.rateLimited).toBe(1);
    });
  });
});
