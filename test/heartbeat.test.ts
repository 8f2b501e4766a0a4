/**
 * A push heartbeat after every successful sync, a failure ping once per state change, and the URL
 * kept secret. Real syncs against the fake Infisical server, pings to a real HTTP receiver on
 * 127.0.0.1 (helpers/heartbeat-receiver.ts), the refresh loop and the heartbeat on a manual clock
 * (each pass is one the test asks for); the state-change rule itself is a pure function, tested
 * without timers.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { readCredentials } from '../src/config/credentials.js';
import { describeConfig, loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { failureUrl, heartbeatToSend, createHeartbeat, type HeartbeatForm, type HeartbeatObservation } from '../src/health/heartbeat.js';
import { buildHealthServer } from '../src/health/server.js';
import { HealthState, type HealthStatus } from '../src/health/state.js';
import { installSdkFetchFence } from '../src/infisical/call-context.js';
import { createInfisicalClient } from '../src/infisical/client.js';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { startRefreshLoop } from '../src/sync/loop.js';
import { createSyncer, type SyncOutcome } from '../src/sync/sync-once.js';
import { leakGuard } from './helpers/canaries.js';
import { ManualClock } from './helpers/clock.js';
import { heartbeatReceiver, type HeartbeatReceiver } from './helpers/heartbeat-receiver.js';
import { FAST, glitchtipEnv, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';
import type { FakeInfisical } from './fake-infisical/server.js';

const guard = leakGuard(2_000);

describe('heartbeatToSend (the state-change rule)', () => {
  const seen = (status: HealthStatus, synced: boolean, fromCache = false): HeartbeatObservation => ({ status, synced, fromCache });

  it.each<[HeartbeatForm | undefined, HeartbeatObservation, HeartbeatForm | undefined]>([
    [undefined, seen('ok', true), 'success'],
    ['success', seen('ok', true), 'success'], // one ping per successful sync, not per change
    ['success', seen('degraded', false), undefined], // a failed attempt while the files are fresh: nothing
    ['success', seen('starting', false), undefined],
    ['success', seen('stale', false), 'failure'],
    ['success', seen('failing', false), 'failure'],
    ['success', seen('missing_keys', false), 'failure'],
    ['success', seen('ok', true, true), 'failure'], // serving from the cache is a failure for the receiver
    [undefined, seen('failing', false), 'failure'], // never synced and failing at start
    ['failure', seen('stale', false), undefined], // once per state change
    ['failure', seen('ok', false, true), undefined],
    ['failure', seen('ok', true), 'success'], // recovery
  ])('after %s, %o → %s', (lastSent, observation, expected) => {
    expect(heartbeatToSend(lastSent, observation)).toBe(expected);
  });

  it('sends the failure form once through ok → stale → stale → ok → stale', () => {
    const sequence: HeartbeatObservation[] = [seen('ok', true), seen('stale', false), seen('stale', false), seen('ok', true), seen('degraded', false), seen('stale', false), seen('stale', false)];
    let lastSent: HeartbeatForm | undefined;
    const sent: (HeartbeatForm | undefined)[] = [];
    for (const observation of sequence) {
      const form = heartbeatToSend(lastSent, observation);
      sent.push(form);
      lastSent = form ?? lastSent;
    }
    expect(sent).toEqual(['success', 'failure', undefined, 'success', undefined, 'failure', undefined]);
  });
});

describe('failureUrl', () => {
  const base = { heartbeatFailUrl: undefined, heartbeatFailSuffix: undefined };
  it('appends a path suffix (healthchecks.io)', () => {
    expect(failureUrl({ ...base, heartbeatUrl: 'https://hc-ping.com/3f1e/', heartbeatFailSuffix: '/fail' })).toBe('https://hc-ping.com/3f1e/fail');
  });
  it('sets query parameters, replacing the same names (Uptime Kuma)', () => {
    expect(failureUrl({ ...base, heartbeatUrl: 'https://kuma.example.com/api/push/Tk9?status=up&msg=OK&ping=', heartbeatFailSuffix: '?status=down&msg=stale' })).toBe(
      'https://kuma.example.com/api/push/Tk9?status=down&msg=stale&ping=',
    );
  });
  it('takes a separate failure URL as it is, and has none when neither is set', () => {
    expect(failureUrl({ ...base, heartbeatUrl: 'https://a.example/x', heartbeatFailUrl: 'https://b.example/y' })).toBe('https://b.example/y');
    expect(failureUrl({ ...base, heartbeatUrl: 'https://a.example/x' })).toBeUndefined();
  });
});

describe('heartbeat settings', () => {
  const env = (extra: Record<string, string>) => ({ ...glitchtipEnv({ url: 'http://127.0.0.1:1' } as FakeInfisical, '/tmp/unused'), ...extra });
  const problems = (extra: Record<string, string>): string => {
    try {
      loadConfig(env(extra));
      return '';
    } catch (error) {
      const message = (error as Error).message;
      guard.observe(message);
      return message;
    }
  };

  it('requires https except on loopback or when clear text is allowed, naming the host only', () => {
    const token = guard.canary('hb-path', 'plain');
    expect(problems({ SIDECAR_HEARTBEAT_URL: `http://hc.example.com/${token}` })).toContain('SIDECAR_HEARTBEAT_URL: http:// to hc.example.com would send the heartbeat token in clear text');
    expect(problems({ SIDECAR_HEARTBEAT_URL: `http://127.0.0.1:9/${token}` })).toBe('');
    expect(problems({ SIDECAR_HEARTBEAT_URL: `http://hc.internal/${token}`, SIDECAR_ALLOW_INSECURE_HTTP: 'true' })).toBe('');
    expect(problems({ SIDECAR_HEARTBEAT_URL: `not a url ${token}` })).toContain('SIDECAR_HEARTBEAT_URL: not a URL');
  });

  it('takes one failure form, a suffix that starts with / or ?, and only with a heartbeat URL', () => {
    const url = 'https://hc-ping.com/3f1e';
    expect(problems({ SIDECAR_HEARTBEAT_URL: url, SIDECAR_HEARTBEAT_FAIL_URL: `${url}/fail`, SIDECAR_HEARTBEAT_FAIL_SUFFIX: '/fail' })).toContain('keep only one');
    expect(problems({ SIDECAR_HEARTBEAT_URL: url, SIDECAR_HEARTBEAT_FAIL_SUFFIX: 'fail' })).toContain('SIDECAR_HEARTBEAT_FAIL_SUFFIX: must start with /');
    expect(problems({ SIDECAR_HEARTBEAT_FAIL_SUFFIX: '/fail' })).toContain('SIDECAR_HEARTBEAT_URL: not set, but a failure form is');
    expect(problems({ SIDECAR_HEARTBEAT_URL: url, SIDECAR_HEARTBEAT_METHOD: 'PUT' })).toContain('SIDECAR_HEARTBEAT_METHOD: must be GET, POST or HEAD');
    expect(loadConfig(env({ SIDECAR_HEARTBEAT_URL: url })).heartbeatMethod).toBe('GET');
  });

  it('shows the URL in the start-up config line as its origin only', () => {
    const secret = `${guard.canary('hb-user', 'plain')}:${guard.canary('hb-pass', 'plain')}`;
    const config = loadConfig(env({ SIDECAR_HEARTBEAT_URL: `https://${secret}@hc-ping.com/${guard.canary('hb-uuid', 'plain')}?k=${guard.canary('hb-q', 'plain')}`, SIDECAR_HEARTBEAT_FAIL_SUFFIX: '/fail' }));
    const described = JSON.stringify(describeConfig(config));
    guard.observe(described);
    expect(describeConfig(config).heartbeat).toEqual({ target: 'https://hc-ping.com', method: 'GET', failure: '/fail' });
  });
});

/** The parts `createApp` wires for `run`, with the heartbeat fed after each recorded outcome as in its diff, all on one manual clock. */
async function startSidecar(receiverUrl: string, extra: Record<string, string> = {}, fake?: FakeInfisical) {
  const infisical = fake ?? (await startFake());
  const outputDir = makeTempDir();
  const clock = new ManualClock();
  const now = () => clock.now();
  const config: Config = loadConfig({ ...glitchtipEnv(infisical, outputDir), ...FAST, SIDECAR_HEARTBEAT_URL: receiverUrl, ...extra });
  const { log, logs } = testLogger();
  onTestFinished(installSdkFetchFence(config.siteUrl));
  const client = createInfisicalClient({ ...config, credentials: () => readCredentials(config), clock });
  const health = new HealthState(config, now);
  const heartbeat = createHeartbeat({ settings: { ...config, heartbeatUrl: receiverUrl }, health: () => health.report(), log: log.child({ component: 'heartbeat' }), clock });
  const syncer = createSyncer({ settings: config, client, writer: new AtomicDirWriter(config.outputDir), now });
  const outcomes: SyncOutcome[] = [];
  let nextAttemptAt: number | undefined;
  const stopping = new AbortController();
  const loop = startRefreshLoop({
    policy: config,
    signal: stopping.signal,
    syncOnce: (signal) => syncer.syncOnce(signal),
    onOutcome(outcome, next) {
      health.record(outcome, next);
      heartbeat.observe(outcome.ok);
      outcomes.push(outcome);
      nextAttemptAt = next;
    },
    clock,
  });
  health.showHeartbeat(() => heartbeat.view());
  const server = buildHealthServer({ state: health });
  /** Stops the loop; the heartbeat is stopped on its own (`heartbeat.stop()`), or at the test's end. */
  const stopLoop = async () => {
    stopping.abort();
    await loop.done;
  };
  onTestFinished(async () => {
    await stopLoop();
    const stopped = heartbeat.stop();
    await clock.advance(3_000); // the grace `stop` gives a ping in flight
    await stopped;
    await server.close();
  });
  const healthz = async () => {
    const response = await server.inject('/healthz');
    guard.observe(response.body);
    return response;
  };
  const successes = () => outcomes.filter((o) => o.ok).length;
  await waitFor(() => outcomes.length > 0, 'the first pass');
  /**
   * Runs the next pass: the loop sleeps once it has recorded an outcome, until `nextAttemptAt` (the
   * refresh interval after a success, the backoff after a failure); the clock moves there.
   */
  const nextPass = async () => {
    const before = outcomes.length;
    await clock.advance(nextAttemptAt! - clock.now());
    await waitFor(() => outcomes.length > before, `pass ${before + 1}`);
    return outcomes.at(-1)!;
  };
  return { fake: infisical, clock, heartbeat, outcomes, healthz, logs, stopLoop, nextPass, successes };
}

const pingsTo = (receiver: HeartbeatReceiver, path: string) => receiver.pings.filter((ping) => new URL(ping.target, receiver.origin).pathname === path);

describe('heartbeat pings from real syncs', () => {
  it('pings once per successful sync, with an empty body', async () => {
    const receiver = await heartbeatReceiver();
    const sidecar = await startSidecar(`${receiver.origin}/ping/abc`, { SIDECAR_HEARTBEAT_METHOD: 'POST' });
    for (let sync = 1; sync <= 3; sync++) {
      expect(sidecar.successes()).toBe(sync);
      await waitFor(() => sidecar.heartbeat.counts().success.ok === sync, `the ping of sync ${sync} answered`);
      if (sync < 3) expect((await sidecar.nextPass()).ok).toBe(true);
    }
    await sidecar.stopLoop();
    expect(pingsTo(receiver, '/ping/abc')).toHaveLength(3);
    expect(receiver.pings.every((ping) => ping.method === 'POST' && ping.body === '')).toBe(true);
    expect((await sidecar.healthz()).json()).toMatchObject({ heartbeat: { target: receiver.origin, lastForm: 'success', lastOutcome: 'ok', failures: 0 } });
  });

  it('sends the failure form once when the files turn stale, and again only after a recovery and a new failure', async () => {
    const receiver = await heartbeatReceiver();
    const sidecar = await startSidecar(`${receiver.origin}/ping/abc`, { SIDECAR_HEARTBEAT_FAIL_SUFFIX: '/fail' });
    const failures = () => pingsTo(receiver, '/ping/abc/fail').length;
    const status = async () => (await sidecar.healthz()).json().status as string;
    /** Failed passes (the backoff between them) until the files are older than SIDECAR_MAX_STALENESS (2 s): the last one observes them stale. */
    const failUntilStale = async () => {
      const lastSuccessAt = Date.parse((await sidecar.healthz()).json().lastSuccessAt);
      for (let pass = 0; pass < 40 && (await status()) !== 'stale'; pass++) {
        expect((await sidecar.nextPass()).ok).toBe(false);
        const age = sidecar.clock.now() - lastSuccessAt;
        expect(await status(), `at ${age} ms`).toBe(age > 2_000 ? 'stale' : 'degraded');
        if (age <= 2_000) expect(failures(), 'no failure ping while the files are fresh').toBe(failuresBefore);
      }
    };
    await waitFor(() => sidecar.heartbeat.counts().success.ok === 1, 'the first ping answered');

    let failuresBefore = 0;
    sidecar.fake.faults.add({ route: 'any', kind: 'status', status: 503 });
    await failUntilStale();
    await waitFor(() => sidecar.heartbeat.counts().failure.ok === 1, 'one failure ping, answered');
    expect(failures()).toBe(1);
    for (let more = 0; more < 3; more++) expect((await sidecar.nextPass()).ok, 'three more failed attempts while stale').toBe(false);
    expect(failures()).toBe(1);

    sidecar.fake.faults.clear();
    expect((await sidecar.nextPass()).ok).toBe(true);
    await waitFor(() => sidecar.heartbeat.counts().success.ok === 2, 'the recovery ping, answered');
    expect(pingsTo(receiver, '/ping/abc')).toHaveLength(2);
    expect(failures()).toBe(1);

    failuresBefore = 1;
    sidecar.fake.faults.add({ route: 'any', kind: 'status', status: 503 });
    await failUntilStale();
    await waitFor(() => failures() === 2, 'a second failure ping after the new failure');
  });

  it('a hanging receiver delays neither the syncs nor /healthz, holds at most one ping, and is cut by stop() after its 3 s grace', async () => {
    const receiver = await heartbeatReceiver();
    receiver.answer('hang');
    const sidecar = await startSidecar(`${receiver.origin}/ping/abc`, { SIDECAR_HEARTBEAT_TIMEOUT: '1m' });
    await waitFor(() => receiver.waiting() === 1, 'a ping left hanging');
    // Three more syncs, each at its refresh time: the clock never moved for the ping.
    const started = sidecar.clock.now();
    for (let sync = 0; sync < 3; sync++) expect((await sidecar.nextPass()).ok).toBe(true);
    expect(sidecar.clock.now() - started).toBe(3_000);
    const response = await sidecar.healthz();
    expect(response.statusCode).toBe(200);
    expect(receiver.waiting()).toBe(1);
    expect(sidecar.heartbeat.counts().success.skipped).toBe(3);

    // stop() lets a ping in flight finish for up to 3 s (an init container's only ping), then aborts it.
    await sidecar.stopLoop();
    let stopped = false;
    const stopping = sidecar.heartbeat.stop().then(() => (stopped = true));
    await sidecar.clock.advance(2_999);
    expect(stopped, 'still waiting for the ping 2,999 ms into the stop').toBe(false);
    await sidecar.clock.advance(1);
    await stopping;
    expect(sidecar.clock.now() - started).toBe(6_000);
    await waitFor(() => receiver.waiting() === 0, 'the hanging ping is given up');
  });

  it('does not follow a redirect to another host, and counts it as a failed ping', async () => {
    const elsewhere = await heartbeatReceiver();
    const receiver = await heartbeatReceiver();
    receiver.answer({ redirectTo: `${elsewhere.origin}/stolen` });
    const sidecar = await startSidecar(`${receiver.origin}/ping/abc`);
    await waitFor(() => sidecar.heartbeat.counts().success.failed === 1, 'the first ping, redirected');
    await sidecar.nextPass();
    await waitFor(() => sidecar.heartbeat.counts().success.failed === 2, 'two redirected pings');
    expect(elsewhere.pings).toEqual([]);
    expect((await sidecar.healthz()).json().heartbeat).toMatchObject({ lastOutcome: 'failed', lastError: 'HTTP 302: redirect not followed' });
  });

  it("keeps the URL's userinfo, path and query out of every log line, error, /healthz and count", async () => {
    const receiver = await heartbeatReceiver();
    receiver.answer({ status: 500 });
    const user = guard.canary('hb-user', 'plain');
    const password = guard.canary('hb-password', 'plain');
    const token = guard.canary('hb-token', 'plain');
    const query = guard.canary('hb-query', 'plain');
    const url = `http://${user}:${password}@${receiver.origin.slice('http://'.length)}/ping/${token}?key=${query}`;
    const sidecar = await startSidecar(url, { SIDECAR_HEARTBEAT_FAIL_SUFFIX: '/fail' });
    await waitFor(() => sidecar.heartbeat.counts().success.failed === 1, 'a failed ping (500), which is logged');
    receiver.answer({ status: 200 });
    await sidecar.nextPass();
    await waitFor(() => sidecar.heartbeat.counts().success.ok === 1, 'an answered ping');
    sidecar.fake.faults.add({ route: 'any', kind: 'status', status: 503 });
    for (let pass = 0; pass < 40 && (await sidecar.healthz()).json().status !== 'stale'; pass++) await sidecar.nextPass();
    await waitFor(() => sidecar.heartbeat.counts().failure.ok === 1, 'the failure ping');

    // The receiver got everything: the token in the path and query, the userinfo as basic authentication.
    expect(receiver.pings[0]).toMatchObject({ target: `/ping/${token}?key=${query}`, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
    expect(pingsTo(receiver, `/ping/${token}/fail`)).toHaveLength(1);
    // …and nothing the sidecar produced holds any of it (the file's leak guard checks logs and all observed text).
    const report = await sidecar.healthz();
    expect(report.json().heartbeat.target).toBe(receiver.origin);
    guard.observe(JSON.stringify(sidecar.heartbeat.counts()), JSON.stringify(sidecar.heartbeat.view()));
    expect(sidecar.logs.lines().some((line) => line.msg === 'heartbeat failed' && line.target === receiver.origin)).toBe(true);
  });
});
