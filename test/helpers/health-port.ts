/**
 * A sidecar in this process serving its health port on a real socket, after its first sync, on the
 * tier's clock (helpers/clock.ts, tierClock): in the fast tier a manual clock nobody moves, so no
 * refresh comes; in the system tier the real one.
 */
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { FakeInfisical } from '../fake-infisical/server.js';
import { tierClock } from './clock.js';
import { glitchtipEnv, startFake, testLogger } from './sidecar.js';
import { makeTempDir } from './temp-dir.js';
import { waitFor } from './wait.js';

/** `seed`: the file's leak guard's seeding of the fake (canaries in every secret). */
export async function startSidecar(extra: Record<string, string>, seed: (fake: FakeInfisical) => void) {
  const fake = await startFake();
  seed(fake);
  const env = glitchtipEnv(fake, makeTempDir(), { SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h', ...extra });
  const { log } = testLogger();
  const app = createApp(loadConfig(env), log, { clock: tierClock() });
  await app.start();
  onTestFinished(() => app.stop());
  await waitFor(async () => (await app.server.inject('/healthz')).statusCode === 200, 'the first sync');
  const port = (app.server.server.address() as AddressInfo).port;
  return { app, port, env: { ...env, SIDECAR_HEALTH_PORT: String(port) } };
}
