/**
 * When a failed start may be answered from the last-known-good cache: the pure policy as a table,
 * and the coordinator the sync pass uses, against a real cache file, its waits on a manual clock.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCacheFallback } from '../src/cache/fallback.js';
import { decideFallback, type FallbackDecision } from '../src/cache/policy.js';
import { cacheScopeOf, createLastKnownGood } from '../src/cache/store.js';
import { AuthError, FetchError, SidecarError, WriteError, type ErrorCode } from '../src/errors.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { makeTempDir } from './helpers/temp-dir.js';

const guard = leakGuard(200);

/** The errors src/infisical/client.ts produces for each situation, as it builds them. */
const failures: Record<string, SidecarError> = {
  'ECONNREFUSED (nothing listens)': new FetchError('SIDECAR_FETCH_UNAVAILABLE', 'POST https://i.test/api/v1/auth/universal-auth/login: connect ECONNREFUSED', { retryable: true }),
  'DNS failure': new FetchError('SIDECAR_FETCH_UNAVAILABLE', 'getaddrinfo ENOTFOUND i.test', { retryable: true }),
  'timeout': new FetchError('SIDECAR_FETCH_TIMEOUT', 'no answer within 10000 ms', { retryable: true }),
  "a reverse proxy's 502 HTML page": new FetchError('SIDECAR_FETCH_UNAVAILABLE', 'GET …: 502', { status: 502, retryable: true }),
  '503 from Infisical': new FetchError('SIDECAR_FETCH_UNAVAILABLE', 'GET …: 503', { status: 503, retryable: true }),
  "a reverse proxy's 404 page (not Infisical's JSON envelope)": new FetchError('SIDECAR_SITE_URL_WRONG', 'GET …: 404', { status: 404 }),
  '429 rate limited': new FetchError('SIDECAR_FETCH_RATE_LIMITED', 'GET …: 429', { status: 429, retryable: true, retryAfterMs: 30_000 }),
};
const refusals: Record<string, SidecarError> = {
  'login refused (401)': new AuthError('SIDECAR_AUTH_INVALID_CREDENTIALS', 'POST …: 401', { status: 401 }),
  'unknown client id (404 with envelope at login)': new AuthError('SIDECAR_AUTH_INVALID_CREDENTIALS', 'POST …: 404', { status: 404 }),
  '403 after a fresh login': new AuthError('SIDECAR_AUTH_FORBIDDEN', 'GET …: 403 (again after a fresh login)', { status: 403 }),
  '401 after a fresh login': new AuthError('SIDECAR_AUTH_FORBIDDEN', 'GET …: 401 (again after a fresh login)', { status: 401 }),
  'value hidden from the identity': new AuthError('SIDECAR_AUTH_FORBIDDEN', 'may list but not read'),
};
const infisicalAnswers: Record<string, SidecarError> = {
  "folder not found (Infisical's 404)": new FetchError('SIDECAR_FETCH_NOT_FOUND', 'GET …: 404', { status: 404 }),
  'request rejected (400/422)': new FetchError('SIDECAR_FETCH_REJECTED', 'GET …: 400', { status: 400 }),
};
const notOutages: ErrorCode[] = ['SIDECAR_MISSING_REQUIRED_KEYS', 'SIDECAR_TEMPLATE_MISSING_KEY', 'SIDECAR_OUTPUT_UNWRITABLE', 'SIDECAR_OUTPUT_LEASE_HELD', 'SIDECAR_STOPPED', 'SIDECAR_UNEXPECTED'];

const question = (error: SidecarError, sinceStartMs: number, servedThisProcess = false) => ({ error, sinceStartMs, fallbackAfterMs: 5_000, servedThisProcess });

describe('cache fallback policy', () => {
  it.each(Object.entries(failures))('%s → the cache, once SIDECAR_CACHE_FALLBACK_AFTER has passed', (_name, error) => {
    expect(decideFallback(question(error, 1_200))).toEqual<FallbackDecision>({ action: 'wait', waitMs: 3_800 });
    expect(decideFallback(question(error, 5_000))).toEqual<FallbackDecision>({ action: 'use-cache' });
    expect(decideFallback(question(error, 3_600_000))).toEqual<FallbackDecision>({ action: 'use-cache' });
  });

  it.each(Object.entries(refusals))('%s → never, at any time', (_name, error) => {
    for (const since of [0, 5_000, 3_600_000]) expect(decideFallback(question(error, since))).toEqual<FallbackDecision>({ action: 'never', reason: 'refused-by-infisical' });
  });

  it.each(Object.entries(infisicalAnswers))("%s → never: Infisical's own answer says the configuration is wrong", (_name, error) => {
    expect(decideFallback(question(error, 60_000))).toEqual<FallbackDecision>({ action: 'never', reason: 'answered-by-infisical' });
  });

  it.each(notOutages)('%s → never: not about reaching Infisical', (code) => {
    expect(decideFallback(question(new SidecarError(code, 'x'), 60_000))).toEqual<FallbackDecision>({ action: 'never', reason: 'not-an-outage' });
  });

  it('never once this process has written a set: the volume holds the same or newer content', () => {
    expect(decideFallback(question(failures['503 from Infisical']!, 60_000, true))).toEqual<FallbackDecision>({ action: 'never', reason: 'already-served' });
  });

  it('SIDECAR_CACHE_FALLBACK_AFTER=0s uses the cache at the first outage', () => {
    expect(decideFallback({ ...question(failures['timeout']!, 0), fallbackAfterMs: 0 })).toEqual<FallbackDecision>({ action: 'use-cache' });
  });
});

describe('cache fallback coordinator', () => {
  const clientSecret = `client-secret-${guard.tag}-${randomBytes(16).toString('hex')}`;
  guard.protect('client secret', clientSecret);
  const scope = cacheScopeOf({ siteUrl: 'https://i.test', projectId: 'p', environment: 'prod', secretPaths: ['/app'] });
  const folders = [{ path: '/app', secrets: [{ key: 'SECRET_KEY', value: guard.canary('sk', 'plain') }] }];

  function setUp(fallbackAfterMs: number, loggedIn: string | undefined = clientSecret) {
    const clock = new ManualClock();
    const store = createLastKnownGood({ dir: makeTempDir('cache-'), scope, maxAgeMs: 3 * 24 * 3_600_000, now: () => clock.now() });
    return { clock, store, fallback: createCacheFallback({ store, fallbackAfterMs, configuredClientSecret: () => clientSecret, loggedInClientSecret: () => loggedIn, clock }) };
  }

  it('an outage at cold start waits out SIDECAR_CACHE_FALLBACK_AFTER, then answers from the cache', async () => {
    const { clock, store, fallback } = setUp(300);
    await store.save(folders, clientSecret, clock.now());
    let answered = false;
    const answer = fallback.instead(failures['ECONNREFUSED (nothing listens)']!).finally(() => (answered = true));
    await clock.whenPending();
    expect(clock.pending()).toEqual([300]);
    await clock.advance(299);
    expect(answered, 'no answer before SIDECAR_CACHE_FALLBACK_AFTER has passed').toBe(false);
    await clock.advance(1);
    expect(await answer).toMatchObject({ cache: { folders, ageMs: 300 } });
    expect(clock.scheduled).toEqual([300]);
    fallback.served();
    expect(await fallback.instead(failures['ECONNREFUSED (nothing listens)']!)).toEqual({ cache: undefined, refusal: undefined });
    expect(clock.scheduled, 'served: no further wait').toEqual([300]);
  });

  it('an outage later in cold start waits only for what is left of SIDECAR_CACHE_FALLBACK_AFTER', async () => {
    const { clock, store, fallback } = setUp(300);
    await store.save(folders, clientSecret, clock.now());
    await clock.advance(120);
    const answer = fallback.instead(failures['timeout']!);
    await clock.whenPending();
    expect(clock.pending()).toEqual([180]);
    await clock.advance(180);
    expect(await answer).toMatchObject({ cache: { folders, ageMs: 300 } });
  });

  it('a refusal never reads the cache, and deletes it', async () => {
    const { clock, store, fallback } = setUp(0);
    await store.save(folders, clientSecret, clock.now());
    expect(await fallback.instead(refusals['403 after a fresh login']!)).toEqual({ cache: undefined, refusal: undefined });
    expect(await store.load(clientSecret)).toMatchObject({ status: 'absent' });
  });

  it('a refused cache comes back as the refusal to log', async () => {
    const { clock, store, fallback } = setUp(0);
    await store.save(folders, `other-${clientSecret}`, clock.now());
    const answer = await fallback.instead(failures['503 from Infisical']!);
    expect(answer.cache).toBeUndefined();
    expect(answer.cache === undefined && answer.refusal?.code).toBe('SIDECAR_CACHE_KEY_MISMATCH');
    guard.observe(JSON.stringify(answer));
  });

  it('a wait cut short by shutdown answers nothing', async () => {
    const { clock, store, fallback } = setUp(60_000);
    await store.save(folders, clientSecret, clock.now());
    const stop = new AbortController();
    const answer = fallback.instead(failures['timeout']!, stop.signal);
    await clock.whenPending((dueIn) => dueIn === 60_000);
    await clock.advance(50);
    stop.abort();
    expect(await answer).toEqual({ cache: undefined, refusal: undefined });
    expect(clock.pending(), 'the wait is cancelled with it').toEqual([]);
  });

  it('confirmed() stores under the secret that logged in, ends cold start, and returns a write failure instead of throwing', async () => {
    const { clock, store, fallback } = setUp(0);
    expect(await fallback.confirmed(folders, clock.now())).toBeUndefined();
    expect(await store.load(clientSecret)).toMatchObject({ status: 'loaded', folders });
    expect(await fallback.instead(failures['timeout']!)).toEqual({ cache: undefined, refusal: undefined });

    const broken = createCacheFallback({
      store: { ...store, save: () => Promise.reject(new WriteError('SIDECAR_CACHE_UNWRITABLE', 'cannot write /cache/x (ENOSPC)')) },
      fallbackAfterMs: 0,
      configuredClientSecret: () => clientSecret,
      loggedInClientSecret: () => clientSecret,
    });
    const error = await broken.confirmed(folders, clock.now());
    expect(error?.code).toBe('SIDECAR_CACHE_UNWRITABLE');
    guard.observe(JSON.stringify(error));
  });
});
