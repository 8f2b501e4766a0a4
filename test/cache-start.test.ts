/**
 * Cold start from the last-known-good cache through the CLI, against the fake Infisical (issue 15):
 * `once` stores the cache, serves from it when Infisical is down (exit 0, said in its last log
 * line), not at all with SIDECAR_ONCE_ALLOW_CACHE=false, and a login refusal deletes it.
 */
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CACHE_FILE_NAME } from '../src/cache/store.js';
import { DEMO_CLIENT_ID } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const guard = leakGuard(1_000);

describe('cold start from the cache', () => {
  it('once: writes the cache, then serves from it while Infisical is down, and not at all with SIDECAR_ONCE_ALLOW_CACHE=false', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const cacheDir = makeTempDir('cache-');
    chmodSync(cacheDir, 0o700);
    const out1 = makeTempDir('out-');
    const env = (out: string, extra: Record<string, string> = {}) => glitchtipEnv(fake, out, { SIDECAR_CACHE_DIR: cacheDir, SIDECAR_CACHE_FALLBACK_AFTER: '300ms', ...extra });
    const first = await runCommand(['once'], env(out1));
    expect(first.code, first.logs.text()).toBe(0);
    const envFile = readFileSync(path.join(out1, 'secrets.env'), 'utf8');

    await fake.close();
    const out2 = makeTempDir('out-');
    const started = Date.now();
    const offline = await runCommand(['once'], env(out2));
    expect(offline.code, offline.logs.text()).toBe(0);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(readFileSync(path.join(out2, 'secrets.env'), 'utf8')).toBe(envFile);
    const last = offline.logs.lines().at(-1)!;
    expect(last.msg).toContain('FROM THE LAST-KNOWN-GOOD CACHE');

    const out3 = makeTempDir('out-');
    const disallowed = await runCommand(['once'], env(out3, { SIDECAR_ONCE_ALLOW_CACHE: 'false' }));
    expect(disallowed.code).not.toBe(0);
  });

  it('a login refusal deletes the cache: a revoked identity never serves from it in a later outage', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const cacheDir = makeTempDir('cache-');
    chmodSync(cacheDir, 0o700);
    const env = (out: string) => glitchtipEnv(fake, out, { SIDECAR_CACHE_DIR: cacheDir, SIDECAR_CACHE_FALLBACK_AFTER: '300ms', SIDECAR_ONCE_DEADLINE: '2s' });
    expect((await runCommand(['once'], env(makeTempDir('out-')))).code).toBe(0);
    expect(existsSync(path.join(cacheDir, CACHE_FILE_NAME))).toBe(true);

    fake.revokeIdentity(DEMO_CLIENT_ID);
    const refused = await runCommand(['once'], env(makeTempDir('out-')));
    expect(refused.code).toBe(77);
    expect(existsSync(path.join(cacheDir, CACHE_FILE_NAME))).toBe(false);

    await fake.close();
    const out = makeTempDir('out-');
    const offline = await runCommand(['once'], env(out));
    expect(offline.code).toBe(75);
    expect(existsSync(path.join(out, 'secrets.env'))).toBe(false);
  });
});
