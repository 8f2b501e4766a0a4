/**
 * The real SDK's own retries, unfenced: what src/infisical/call-context.ts's one-request budget exists
 * for. Real time: the SDK sleeps about 1 s (±20 %) between its retries and times its requests on
 * Node's timers, inside node_modules where no test clock reaches; on a loaded machine a slow answer can
 * cost one more retry, so this belongs with the other wall-clock tests.
 */
import { describe, expect, it } from 'vitest';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH } from '../fake-infisical/seed.js';
import { LIST_PATH, LOGIN_PATH, sdkAgainstFileFake } from '../helpers/sdk.js';

const contract = sdkAgainstFileFake();
const { loggedIn, listFolder, requestsTo } = contract;

describe('@infisical/sdk, as the fetch fence relies on it', () => {
  it('retries a reset and a 429 on its own, ignoring retry-after (so the one-request budget matters), and does not retry a 500', async () => {
    const sdk = await loggedIn();
    contract.fake.clearRequests();
    contract.fake.faults.add({ route: 'login', kind: 'reset', times: 1 });
    contract.fake.faults.add({ route: 'list', path: DEMO_APPLICATION_PATH, kind: 'rateLimit', retryAfterSeconds: 60, times: 1 });
    contract.fake.faults.add({ route: 'list', path: DEMO_DATABASE_PATH, kind: 'status', status: 500, times: 1 });

    // Unfenced, the SDK sleeps about 1 s (±20 %) before its first retry.
    const [login, rateLimited, failed] = await Promise.allSettled([loggedIn(), listFolder(sdk, DEMO_APPLICATION_PATH), listFolder(sdk, DEMO_DATABASE_PATH)]);
    const retries = 'The SDK no longer retries resets and 429s (or now retries 5xx): re-verify the one-request budget in src/infisical/call-context.ts.';
    expect(login.status, retries).toBe('fulfilled');
    expect(rateLimited.status, retries).toBe('fulfilled');
    expect(failed, retries).toMatchObject({ status: 'rejected', reason: { message: expect.stringMatching(/\[StatusCode=500\]/) } });
    expect(requestsTo(LOGIN_PATH), retries).toEqual(['POST 0', 'POST 200']);
    expect(contract.fake.requests.filter((r) => r.path === LIST_PATH).map((r) => `${r.query['secretPath']} ${r.status}`), retries).toEqual([
      `${DEMO_APPLICATION_PATH} 429`,
      `${DEMO_DATABASE_PATH} 500`,
      `${DEMO_APPLICATION_PATH} 200`,
    ]);
  });
});
