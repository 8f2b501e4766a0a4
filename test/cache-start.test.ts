/**
 * Cold start from the last-known-good cache through the CLI, against the fake Infisical, on a manual
 * clock: `once` stores the cache, serves from it when Infisical is down exactly once
 * SIDECAR_CACHE_FALLBACK_AFTER has passed (exit 0, said in its last log line), not at all with
 * SIDECAR_ONCE_ALLOW_CACHE=false, and a login refusal deletes it.
 */
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CACHE_FILE_NAME } from '../src/cache/store.js';
import { DEMO_CLIENT_ID } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const guard = leakGuard(1_000);

/** Whether `promise` has settled yet, read without waiting. */
function tracked<T>(promise: Promise<T>): { readonly promise: Promise<T>; readonly settled: () => boolean } {
  let settled = false;
  void promise.finally(() => (settled = true)).catch(() => undefined);
  return { promise, settled: () => settled };
}

describe('cold start from the cache', () => {
  it('once: writes the cache, then serves from it while Infisical is down once SIDECAR_CACHE_FALLBACK_AFTER has passed, and not at all with SIDECAR_ONCE_ALLOW_CACHE=false', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const cacheDir = makeTempDir('cache-');
    chmodSync(cacheDir, 0o700);
    const out1 = makeTempDir('out-');
    const env = (out: string, extra: Record<string, string> = {}) => glitchtipEnv(fake, out, { SIDECAR_CACHE_DIR: cacheDir, SIDECAR_CACHE_FALLBACK_AFTER: '300ms', ...extra });
    // A clock per run, each from the same instant (no timer of one run is left pending for the next).
    const first = await runCommand(['once'], env(out1), undefined, new ManualClock());
    expect(first.code, first.logs.text()).toBe(0);
    const envFile = readFileSync(path.join(out1, 'secrets.env'), 'utf8');

    await fake.close();
    const out2 = makeTempDir('out-');
    const clock = new ManualClock();
    const offline = tracked(runCommand(['once'], env(out2), undefined, clock));
    // The pass failed (connection refused): the outage is waited out for SIDECAR_CACHE_FALLBACK_AFTER, well within the 5 s deadline.
    await clock.whenPending((dueIn) => dueIn === 300);
    await clock.advance(299);
    expect(offline.settled(), 'nothing is served from the cache before 300 ms').toBe(false);
    await clock.advance(1);
    const served = await offline.promise;
    expect(served.code, served.logs.text()).toBe(0);
    expect(readFileSync(path.join(out2, 'secrets.env'), 'utf8')).toBe(envFile);
    const last = served.logs.lines().at(-1)!;
    expect(last.msg).toContain('FROM THE LAST-KNOWN-GOOD CACHE');

    const out3 = makeTempDir('out-');
    const later = new ManualClock();
    const disallowed = tracked(runCommand(['once'], env(out3, { SIDECAR_ONCE_ALLOW_CACHE: 'false' }), undefined, later));
    // It retries until its deadline instead.
    await later.whenPending((dueIn) => dueIn === 5_000);
    await later.advance(5_000);
    expect((await disallowed.promise).code).not.toBe(0);
    expect(existsSync(path.join(out3, 'secrets.env'))).toBe(false);
  });

  it('a login refusal deletes the cache: a revoked identity never serves from it in a later outage', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const cacheDir = makeTempDir('cache-');
    chmodSync(cacheDir, 0o700);
    const env = (out: string) => glitchtipEnv(fake, out, { SIDECAR_CACHE_DIR: cacheDir, SIDECAR_CACHE_FALLBACK_AFTER: '300ms', SIDECAR_ONCE_DEADLINE: '2s' });
    // A clock per run, each from the same instant (no timer of one run is left pending for the next).
    expect((await runCommand(['once'], env(makeTempDir('out-')), undefined, new ManualClock())).code).toBe(0);
    expect(existsSync(path.join(cacheDir, CACHE_FILE_NAME))).toBe(true);

    fake.revokeIdentity(DEMO_CLIENT_ID);
    const refused = await runCommand(['once'], env(makeTempDir('out-')), undefined, new ManualClock());
    expect(refused.code).toBe(77);
    expect(existsSync(path.join(cacheDir, CACHE_FILE_NAME))).toBe(false);

    await fake.close();
    const out = makeTempDir('out-');
    const clock = new ManualClock();
    const offline = tracked(runCommand(['once'], env(out), undefined, clock));
    // No cache to fall back on: it retries until its deadline.
    await clock.whenPending((dueIn) => dueIn === 2_000);
    await clock.advance(2_000);
    expect((await offline.promise).code).toBe(75);
    expect(existsSync(path.join(out, 'secrets.env'))).toBe(false);
  });
});
