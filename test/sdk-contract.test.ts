/**
 * What src/infisical/call-context.ts and src/infisical/client.ts rely on in `@infisical/sdk`, none of
 * it documented by the SDK (docs/infisical-api.md §6), checked against the real SDK and the fake
 * Infisical server over real HTTP. package.json pins the SDK to the version this was verified
 * against; when an upgrade breaks one of these, the failure message says what to re-check.
 */
import { InfisicalSDK } from '@infisical/sdk';
import { describe, expect, it } from 'vitest';
import { installSdkFetchFence, runWithDeadline } from '../src/infisical/call-context.js';
import { DEMO_APPLICATION_PATH } from './fake-infisical/seed.js';
import { ManualClock } from './helpers/clock.js';
import { CREDENTIALS, LIST_PATH, LOGIN_PATH, sdkAgainstFileFake } from './helpers/sdk.js';

const contract = sdkAgainstFileFake();
const { loggedIn, listFolder, requestsTo } = contract;



/** Fenced-call options whose deadline runs on a manual clock nobody moves: only an answer (or its absence) ends a call. */
function fenced(): { siteUrl: string; timeoutMs: number; clock: ManualClock } {
  return { siteUrl: contract.fake.url, timeoutMs: 5_000, clock: new ManualClock() };
}



/**
 * Records `METHOD origin/path` of every fetch the SDK makes, on top of whatever `globalThis.fetch` is
 * now; `whenSeen(n)` resolves at the fetch that makes `n` (an event, not a poll).
 */
function recordFetches(): { readonly seen: string[]; whenSeen(count: number): Promise<void>; restore(): void } {
  const underneath = globalThis.fetch;
  const seen: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  globalThis.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : input);
    seen.push(`${init?.method ?? 'GET'} ${url.origin}${url.pathname}`);
    for (const waiter of waiters.filter((w) => seen.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return underneath(input, init);
  };
  return {
    seen,
    whenSeen: (count) => (seen.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve }))),
    restore: () => void (globalThis.fetch = underneath),
  };
}


describe('@infisical/sdk, as the fetch fence relies on it', () => {
  it('looks up globalThis.fetch at each request (not a reference taken at import or construction), one request per login and per list', async () => {
    const sdk = new InfisicalSDK({ siteUrl: contract.fake.url });
    const fetches = recordFetches();
    try {
      await sdk.auth().universalAuth.login(CREDENTIALS);
      await listFolder(sdk, DEMO_APPLICATION_PATH);
    } finally {
      fetches.restore();
    }
    expect(
      fetches.seen,
      'The SDK no longer sends each request through globalThis.fetch at call time, or no longer one request per call: ' +
        'the fence in src/infisical/call-context.ts cannot see or bound its requests; re-verify it before upgrading.',
    ).toEqual([`POST ${contract.fake.url}${LOGIN_PATH}`, `GET ${contract.fake.url}${LIST_PATH}`]);
  });

  it('keeps the HTTP status and the server message in its error text as `[StatusCode=NNN] message`', async () => {
    const refused = new InfisicalSDK({ siteUrl: contract.fake.url }).auth().universalAuth.login({ ...CREDENTIALS, clientSecret: 'wrong' });
    const format = 'The SDK changed its error text: serverMessageOf in src/infisical/call-context.ts no longer finds the server message.';
    await expect(refused, format).rejects.toThrow(/\[StatusCode=401\] Invalid credentials$/);

    // The same error read through the fence, as src/infisical/client.ts reads it.
    const removeFence = installSdkFetchFence(contract.fake.url);
    try {
      const sdk = await loggedIn();
      contract.fake.faults.add({ route: 'list', kind: 'status', status: 403, body: { statusCode: 403, message: 'You do not have permission', error: 'PermissionDenied' } });
      const outcome = await runWithDeadline(() => listFolder(sdk, DEMO_APPLICATION_PATH), fenced());
      expect(outcome, format).toEqual({ ok: false, requests: 1, failure: { kind: 'http', status: 403, serverMessage: 'You do not have permission', retryAfterMs: undefined } });
    } finally {
      removeFence();
    }
  });

  it('hands out the access token of its login through auth().getAccessToken()', async () => {
    contract.fake.faults.add({ route: 'list', kind: 'echoCredential', status: 403, message: 'token {credential}' });
    const sdk = await loggedIn();
    const echoed = await listFolder(sdk, DEMO_APPLICATION_PATH).then(
      () => undefined,
      (error: Error) => /token (\S+)$/.exec(error.message)?.[1],
    );
    expect(
      echoed === sdk.auth().getAccessToken() && echoed !== undefined,
      'The SDK no longer returns the token it sends from auth().getAccessToken(): src/infisical/client.ts can no longer scrub it from server messages.',
    ).toBe(true);
  });

  it('still reads the body of a 404 the fence copied, so the server message survives the envelope check', async () => {
    const removeFence = installSdkFetchFence(contract.fake.url);
    try {
      const unknownRoute = await runWithDeadline(() => new InfisicalSDK({ siteUrl: `${contract.fake.url}/wrong` }).auth().universalAuth.login(CREDENTIALS), fenced());
      expect(unknownRoute).toEqual({
        ok: false,
        requests: 1,
        failure: { kind: 'http', status: 404, serverMessage: `Route POST:/wrong${LOGIN_PATH} not found`, retryAfterMs: undefined, infisicalEnvelope: false },
      });
      contract.fake.faults.add({ route: 'login', kind: 'status', status: 404 });
      const infisical404 = await runWithDeadline(() => loggedIn(), fenced());
      expect(infisical404).toMatchObject({ ok: false, failure: { kind: 'http', status: 404, serverMessage: 'Not Found', infisicalEnvelope: true } });
    } finally {
      removeFence();
    }
  });

});

describe('the fence around the real SDK', () => {
  it('holds a login against a reset and a list against a 429 to one request each, through the SDK’s retries', async () => {
    const original = globalThis.fetch;
    const removeFence = installSdkFetchFence(contract.fake.url);
    // Above the fence, to see the SDK's retries arrive (and the fence turn them away).
    const attempts = recordFetches();
    try {
      const sdk = await loggedIn();
      contract.fake.clearRequests();
      attempts.seen.length = 0;
      contract.fake.faults.add({ route: 'login', kind: 'reset' });
      contract.fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 60 });
      const [login, list] = await Promise.all([runWithDeadline(() => loggedIn(), fenced()), runWithDeadline(() => listFolder(sdk, DEMO_APPLICATION_PATH), fenced())]);
      // The SDK retries each call after a sleep of about 1 s: both calls ended before either retry.
      expect(attempts.seen, 'both calls end at their first answer, not after the SDK’s sleeps').toHaveLength(2);
      expect(login).toMatchObject({ ok: false, requests: 1, failure: { kind: 'transport', error: { code: 'SIDECAR_FETCH_UNAVAILABLE' } } });
      expect(list).toEqual({ ok: false, requests: 1, failure: { kind: 'http', status: 429, serverMessage: undefined, retryAfterMs: 60_000 } });

      // The SDK's own retries come after its sleeps; the fence keeps them off the network.
      await attempts.whenSeen(4);
      expect(attempts.seen.sort()).toEqual([`GET ${contract.fake.url}${LIST_PATH}`, `GET ${contract.fake.url}${LIST_PATH}`, `POST ${contract.fake.url}${LOGIN_PATH}`, `POST ${contract.fake.url}${LOGIN_PATH}`]);
      expect(requestsTo(LOGIN_PATH)).toEqual(['POST 0']);
      expect(requestsTo(LIST_PATH)).toEqual(['GET 429']);
    } finally {
      attempts.restore();
      removeFence();
    }
    expect(globalThis.fetch).toBe(original);
  });
});
