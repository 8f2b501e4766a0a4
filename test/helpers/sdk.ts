/**
 * The real `@infisical/sdk` against one fake Infisical for a whole test file (started before, closed
 * after, reset before each test), with the GlitchTip project's calls the contract tests make.
 */
import { InfisicalSDK } from '@infisical/sdk';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ENVIRONMENT, DEMO_PROJECT_ID } from '../fake-infisical/seed.js';
import { startFakeInfisical, type FakeInfisical } from '../fake-infisical/server.js';

export const LOGIN_PATH = '/api/v1/auth/universal-auth/login';
export const LIST_PATH = '/api/v3/secrets/raw';

export const CREDENTIALS = { clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET };

export function sdkAgainstFileFake(): {
  /** The file's fake (defined once `beforeAll` has run). */
  readonly fake: FakeInfisical;
  readonly loggedIn: () => Promise<InfisicalSDK>;
  readonly listFolder: (sdk: InfisicalSDK, secretPath: string) => ReturnType<ReturnType<InfisicalSDK['secrets']>['listSecrets']>;
  /** What reached the fake on one path, as `METHOD status` (status 0: no answer was sent). */
  readonly requestsTo: (path: string) => string[];
} {
  let fake: FakeInfisical;
  beforeAll(async () => {
    fake = await startFakeInfisical();
  });
  afterAll(() => fake.close());
  beforeEach(() => fake.reset());
  return {
    get fake() {
      return fake;
    },
    loggedIn: () => new InfisicalSDK({ siteUrl: fake.url }).auth().universalAuth.login(CREDENTIALS),
    listFolder: (sdk, secretPath) => sdk.secrets().listSecrets({ projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath }),
    requestsTo: (path) => fake.requests.filter((request) => request.path === path).map((request) => `${request.method} ${request.status}`),
  };
}
