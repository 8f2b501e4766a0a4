/**
 * Leak guard: canary values go through every path the sidecar has (success, rotation, failures,
 * config errors, `check`, every HTTP route), and nothing it prints or serves may contain one, in
 * plain, URL-encoded, JSON-escaped or base64 form.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { DEMO_APPLICATION_PATH, DEMO_CLIENT_SECRET, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { glitchtipEnv, printed, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { forms } from './helpers/canaries.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const tag = randomBytes(4).toString('hex');
const CANARIES = {
  POSTGRES_PASSWORD: `canary-pg-${tag} 'q' "d" $x @:/`,
  SECRET_KEY: `canary-sk-${tag}`,
  EMAIL_URL: `smtp://user%40x:canary-mail-${tag}@smtp.example.test:2525`,
  DEFAULT_FROM_EMAIL: `canary-from-${tag}@example.test`,
  ROTATED: `canary-rotated-${tag}\nsecond line`,
  WRONG_CLIENT_SECRET: `canary-wrong-client-secret-${tag}`,
};
const served: string[] = [];


async function seededFake() {
  const fake = await startFake();
  fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', CANARIES.POSTGRES_PASSWORD);
  fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', CANARIES.SECRET_KEY);
  fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', CANARIES.EMAIL_URL);
  fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'DEFAULT_FROM_EMAIL', CANARIES.DEFAULT_FROM_EMAIL);
  return fake;
}

describe('no secret value leaks', () => {
  it('through run mode: sync, rotation, failures, and every HTTP route', async () => {
    const fake = await seededFake();
    const { log, logs } = testLogger('trace');
    const app = createApp(loadConfig(glitchtipEnv(fake, makeTempDir(), { SIDECAR_REFRESH_INTERVAL: '1s', SIDECAR_MAX_STALENESS: '2s' })), log);
    await app.start();
    try {
      const grab = async (url: string) => {
        const response = await app.server.inject(url);
        served.push(response.body, JSON.stringify(response.headers));
      };
      await waitFor(async () => (await app.server.inject('/healthz')).statusCode === 200, 5_000);
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', CANARIES.ROTATED);
      await waitFor(async () => (await app.server.inject('/healthz')).json().revision === 2, 5_000);
      fake.faults.add({ route: 'list', kind: 'status', status: 500, times: 1 });
      fake.faults.add({ route: 'list', kind: 'malformed', times: 1 });
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      for (const url of ['/healthz', '/readyz', '/livez', '/nope', `/healthz?x=${CANARIES.SECRET_KEY}`.replace(CANARIES.SECRET_KEY, 'q')]) await grab(url);
    } finally {
      await app.stop();
    }
    served.push(logs.text());
  }, 20_000);

  it('through failures that name keys: missing required key, missing template key, auth refused', async () => {
    const fake = await seededFake();
    const dir = makeTempDir();
    const env = glitchtipEnv(fake, dir);
    const results = await Promise.all([
      runCommand(['once'], { ...env, SIDECAR_REQUIRED_KEYS: 'NOT_THERE' }),
      runCommand(['once'], { ...env, SIDECAR_DERIVE_X: 'a{{ NOT_THERE | url }}b' }),
      runCommand(['once'], { ...env, INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: CANARIES.WRONG_CLIENT_SECRET }),
      runCommand(['check'], env),
      runCommand(['once'], env),
    ]);
    expect(results.map((r) => r.code)).toEqual([65, 65, 77, 0, 0]);
    for (const result of results) served.push(result.stdout, result.stderr, result.logs.text());
  });

  it('finds no canary in anything printed or served above', () => {
    const everything = [...printed, ...served].join('\n');
    expect(everything.length).toBeGreaterThan(1_000);
    const secrets = [...Object.values(CANARIES), DEMO_CLIENT_SECRET];
    for (const secret of secrets) {
      for (const form of forms(secret, 8)) {
        // Report which canary leaked, not the surrounding text (which would print it again).
        expect(everything.includes(form), `a form of canary #${secrets.indexOf(secret)} leaked`).toBe(false);
      }
    }
  });
});
