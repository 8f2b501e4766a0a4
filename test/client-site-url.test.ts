/**
 * A wrong INFISICAL_SITE_URL path is reported as such, not as bad credentials.
 *
 * A 404 at login can be Infisical's own answer (the late-2024 server answers an unknown client id
 * with 404 in its JSON error envelope: docs/infisical-api.md §8) or something else's: the fake's
 * router, which like Fastify answers unknown routes without Infisical's envelope, or a web server or
 * proxy answering HTML. Only the first is about the credentials.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EXIT_CODES } from '../src/errors.js';
import { leakGuard } from './helpers/canaries.js';
import { glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const guard = leakGuard(1_000);

/** A plain web server that answers every request with an HTML 404, as nginx or a proxy would. */
async function htmlNotFoundServer(): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/html' }).end('<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function check(siteUrl: string, env: Record<string, string>) {
  const result = await runCommand(['check'], { ...env, INFISICAL_SITE_URL: siteUrl });
  guard.observe(result.stdout, result.stderr);
  return { ...result, exiting: result.logs.lines().find((line) => line['msg'] === 'exiting') };
}

describe('check, when nothing at the site URL is Infisical', () => {
  it('a path the fake Infisical does not serve: SIDECAR_SITE_URL_WRONG, naming INFISICAL_SITE_URL', async () => {
    const fake = await startFake();
    const result = await check(`${fake.url}/wrong`, glitchtipEnv(fake, makeTempDir()));

    expect(result.code).toBe(EXIT_CODES.config);
    expect(result.stdout).toContain('infisical-sidecar check: FAILED (SIDECAR_SITE_URL_WRONG)');
    expect(result.exiting).toMatchObject({ code: 'SIDECAR_SITE_URL_WRONG', status: 404 });
    expect(result.exiting?.['err']).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/wrong\/api\/v1\/auth\/universal-auth\/login: 404 /);
    expect(result.exiting?.['hint']).toContain('INFISICAL_SITE_URL');
  });

  it('a web server answering HTML: SIDECAR_SITE_URL_WRONG', async () => {
    const fake = await startFake();
    const result = await check(await htmlNotFoundServer(), glitchtipEnv(fake, makeTempDir()));

    expect(result.code).toBe(EXIT_CODES.config);
    expect(result.exiting).toMatchObject({ code: 'SIDECAR_SITE_URL_WRONG', status: 404 });
    expect(result.exiting?.['hint']).toContain('INFISICAL_SITE_URL');
  });
});

describe("check, when Infisical itself answers 404 at login", () => {
  it('an unknown client id on a late-2024 server is still bad credentials', async () => {
    const fake = await startFake({ generation: 'v2024' });
    const env = { ...glitchtipEnv(fake, makeTempDir()), INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: 'nobody-by-this-id' };
    const result = await check(fake.url, env);

    expect(result.code).toBe(EXIT_CODES.auth);
    expect(result.exiting).toMatchObject({ code: 'SIDECAR_AUTH_INVALID_CREDENTIALS', status: 404 });
    expect(result.exiting?.['err']).toMatch(/login: 404 No identity with specified client ID was found$/);
  });
});
