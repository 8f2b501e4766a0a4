/**
 * What the core promises, end to end against the fake server:
 * - a failure after the `..data` swap is a successful sync of the new revision: reload actions run,
 *   `/healthz` reports the publish error until a later pass repairs it;
 * - `check` and the restart diff take key names from the sync, never by parsing a rendered file, so
 *   they work whatever outputs are configured and cannot quote a value in an error;
 * - the manifest and its digest key are readable by the sidecar's user only;
 * - a reload owed when the sidecar died runs at the next start, and only then.
 * Running sidecars are on a manual clock: passes, the reload debounce and cooldown run when the test moves it.
 */
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { EXIT_CODES } from '../src/errors.js';
import type { Clock } from '../src/timers.js';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { ManualClock } from './helpers/clock.js';
import { nextPass, passAfter } from './helpers/passes.js';
import { glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { reloadReceiver } from './helpers/reload-receiver.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const FAST = { SIDECAR_REFRESH_INTERVAL: '1s', SIDECAR_MAX_STALENESS: '10s', SIDECAR_REFRESH_JITTER: '0', SIDECAR_RELOAD_DEBOUNCE: '50ms', SIDECAR_RELOAD_COOLDOWN: '50ms' };
const RELOAD_DEBOUNCE_MS = 50;
const RELOAD_COOLDOWN_MS = 50;

function appFor(env: Record<string, string>, clock?: Clock) {
  const { log, logs } = testLogger();
  const app = createApp(loadConfig(env), log, { reloadConfig: () => loadConfig(env), ...(clock ? { clock } : {}) });
  onTestFinished(() => app.stop());
  return { app, logs };
}

describe('a failure after the ..data swap', () => {
  it('counts as a sync of the new revision: reload runs, /healthz is degraded with the error until a pass repairs it', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const configFile = path.join(makeTempDir(), 'sidecar.json');
    writeFileSync(configFile, JSON.stringify({ outputs: [{ format: 'env', path: 'secrets.env' }] }));
    const { app, logs } = appFor(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_CONFIG_FILE: configFile, SIDECAR_RELOAD_URL: receiver.url, SIDECAR_WATCH: 'false' }), clock);
    await app.start();
    expect(await passAfter(clock, app, null)).toMatchObject({ revision: 1 });

    // A directory sits where the next configuration's new output goes; the same pass rotates a value.
    mkdirSync(path.join(dir, 'secrets.json'));
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'rotated-secret-key-value-0123456789');
    writeFileSync(configFile, JSON.stringify({ outputs: [{ format: 'env', path: 'secrets.env' }, { format: 'json', path: 'secrets.json' }] }));
    app.reconfigure(loadConfig(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_CONFIG_FILE: configFile })));

    // The pass the change triggers (one minimum gap after the first: at the interval here).
    const degraded = await nextPass(clock, app);
    expect(degraded.revision).toBe(2);
    // Not renamed over: an entry the writer did not make is left alone and named.
    expect(degraded).toMatchObject({ status: 'degraded', healthy: true, lastError: { code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES' } });
    expect(degraded.lastError?.message).toMatch(/secrets\.json \(a directory\)/);
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toContain('rotated-secret-key-value-0123456789');
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 1, 'the reload for revision 2');
    expect(receiver.calls[0]).toMatchObject({ revision: 2, changedKeys: ['SECRET_KEY'] });
    expect(logs.lines().some((line) => line.msg === 'new secrets are live, but a step after the swap failed; retrying at the next refresh')).toBe(true);

    // The operator removes the directory: the next pass publishes the link, same revision, no reload.
    rmSync(path.join(dir, 'secrets.json'), { recursive: true });
    const scheduledBefore = clock.scheduled.length;
    expect(await nextPass(clock, app)).toMatchObject({ status: 'ok', revision: 2 });
    expect(JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8'))).toMatchObject({ SECRET_KEY: 'rotated-secret-key-value-0123456789' });
    // No reload was even scheduled (its debounce would be the only timer that short), and none runs.
    expect(clock.scheduled.slice(scheduledBefore).filter((delay) => delay <= RELOAD_DEBOUNCE_MS + RELOAD_COOLDOWN_MS)).toEqual([]);
    await clock.advance(RELOAD_DEBOUNCE_MS + RELOAD_COOLDOWN_MS);
    expect(receiver.calls).toHaveLength(1);
  });
});

describe('key names come from the sync, never from a rendered file', () => {
  it('check with only an env output prints every key name', async () => {
    const fake = await startFake();
    const result = await runCommand(['check'], glitchtipEnv(fake, makeTempDir(), { SIDECAR_OUTPUTS: 'env' }));
    expect(result.code).toBe(EXIT_CODES.ok);
    expect(result.stdout).toMatch(/keys \(5, values not shown\):\n  DATABASE_URL\n  DEFAULT_FROM_EMAIL\n  EMAIL_URL\n  POSTGRES_PASSWORD\n  SECRET_KEY\n/);
  });

  it('check with a key named A.json, files before json, prints the name and no fragment of any value', async () => {
    const fake = await startFake();
    const value = '{"not json at all: 7c1d9e0f-value-fragment';
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'A.json', value);
    const result = await runCommand(['check'], glitchtipEnv(fake, makeTempDir(), { SIDECAR_OUTPUTS: 'files,json' }));
    expect(result.code).toBe(EXIT_CODES.ok);
    expect(result.stdout).toMatch(/^ {2}A\.json$/m);
    const everything = result.stdout + result.stderr + result.logs.text();
    for (const fragment of [value.slice(0, 8), '7c1d9e0f', 'value-fragment']) expect(everything).not.toContain(fragment);
  });

  it('after a restart, only the keys that changed while the sidecar was down are reported and reloaded, with an env output only', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const env = glitchtipEnv(fake, dir, { ...FAST, SIDECAR_OUTPUTS: 'env', SIDECAR_RELOAD_URL: receiver.url });
    const first = appFor(env, clock);
    expect(await first.app.once()).toMatchObject({ ok: true, revision: 1 });
    await first.app.stop();

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', 'changed-while-down');
    const second = appFor(env, clock);
    await second.app.start();
    expect(await passAfter(clock, second.app, null)).toMatchObject({ revision: 2 });
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 1, 'a reload for the change made while down');
    // DATABASE_URL is derived from POSTGRES_PASSWORD, so it changed too; nothing else did.
    expect(receiver.calls[0]).toMatchObject({ revision: 2, changedKeys: ['DATABASE_URL', 'POSTGRES_PASSWORD'] });
    expect(second.app.health.report().changedKeys).toEqual(['DATABASE_URL', 'POSTGRES_PASSWORD']);
  });

  it('the manifest and its digest key are 0400, hold no value, and an unreadable manifest means "everything changed"', async () => {
    const fake = await startFake();
    const dir = makeTempDir();
    const env = glitchtipEnv(fake, dir, { SIDECAR_OUTPUTS: 'env' });
    const { app } = appFor(env);
    await app.once();
    const version = readlinkSync(path.join(dir, '..data'));
    const manifest = path.join(dir, version, '..manifest');
    const key = path.join(dir, '..digest-key');
    expect(statSync(manifest).mode & 0o777).toBe(0o400);
    expect(statSync(key).mode & 0o777).toBe(0o400);
    expect(readdirSync(dir)).not.toContain('..manifest'); // no top-level link: consumers never see it
    const text = readFileSync(manifest, 'utf8');
    const values = readFileSync(path.join(dir, 'secrets.env'), 'utf8').match(/'([^']{4,})'/g) ?? [];
    expect(values.length).toBeGreaterThan(3);
    for (const quoted of values) expect(text).not.toContain(quoted.slice(1, 9));
    expect((JSON.parse(text) as { digests: [string, string][] }).digests.map(([name]) => name).sort()).toEqual(['DATABASE_URL', 'DEFAULT_FROM_EMAIL', 'EMAIL_URL', 'POSTGRES_PASSWORD', 'SECRET_KEY']);

    // A lost digest key, like an older version's volume without a manifest: every key counts as changed.
    rmSync(key);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'another-value-for-the-key-0123456789');
    const { app: restarted } = appFor(env);
    const outcome = await restarted.once();
    expect(outcome).toMatchObject({ ok: true, revision: 2 });
    expect(outcome.changedKeys).toEqual(['DATABASE_URL', 'DEFAULT_FROM_EMAIL', 'EMAIL_URL', 'POSTGRES_PASSWORD', 'SECRET_KEY']);
  });
});

describe('lint findings in check', () => {
  it('check against the fake prints the finding for an EMAIL_URL with an unescaped / in its password, naming the key and rule, never the value', async () => {
    const fake = await startFake();
    const value = 'smtp://glitchtip%40app:pa/ss-7e1f0c@smtp.example.test:2525';
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', value);
    const result = await runCommand(['check'], glitchtipEnv(fake, makeTempDir(), { SIDECAR_CONSUMER: 'glitchtip' }));
    expect(result.code).toBe(EXIT_CODES.ok);
    expect(result.stdout).toMatch(/^lint findings \(\d+; docs\/lint-rules\.md\):$/m);
    expect(result.stdout).toMatch(/^ {2}EMAIL_URL: .*url-userinfo-delimiter, breaks/m);
    const everything = result.stdout + result.stderr + result.logs.text();
    for (const fragment of ['pa/ss', '7e1f0c', 'ss-7e1f']) expect(everything).not.toContain(fragment);
  });
});

describe('a reload owed when the sidecar died', () => {
  it('runs at the next start when the ledger is behind the volume, and not when there is no ledger (an older version left the volume)', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const env = glitchtipEnv(fake, dir, { ...FAST, SIDECAR_RELOAD_URL: receiver.url, SIDECAR_WATCH: 'false' });
    const ledger = () => readFileSync(path.join(dir, '..reloaded'), 'utf8');
    const first = appFor(env, clock);
    await first.app.start();
    expect(await passAfter(clock, first.app, null)).toMatchObject({ revision: 1 });
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', 'rotated-before-the-crash-0123456789');
    expect(await nextPass(clock, first.app)).toMatchObject({ revision: 2 });
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 1, 'the reload for revision 2');
    await first.app.stop();
    await waitFor(() => ledger() === '2\n', 'the ledger at revision 2');

    // As if SIGKILL had hit between writing revision 2 and running its reload.
    writeFileSync(path.join(dir, '..reloaded'), '1\n');
    const second = appFor(env, clock);
    await second.app.start();
    await passAfter(clock, second.app, null);
    await clock.advance(RELOAD_DEBOUNCE_MS);
    await waitFor(() => receiver.calls.length === 2, 'the owed reload');
    expect(receiver.calls[1]).toMatchObject({ revision: 2 });
    await second.app.stop();

    rmSync(path.join(dir, '..reloaded'));
    const third = appFor(env, clock);
    const scheduledBefore = clock.scheduled.length;
    await third.app.start();
    expect(await passAfter(clock, third.app, null)).toMatchObject({ status: 'ok', revision: 2 });
    // Nothing owed: no reload is even scheduled (its debounce would be the only timer that short), and none runs.
    expect(clock.scheduled.slice(scheduledBefore).filter((delay) => delay <= RELOAD_DEBOUNCE_MS + RELOAD_COOLDOWN_MS)).toEqual([]);
    await clock.advance(RELOAD_DEBOUNCE_MS + RELOAD_COOLDOWN_MS);
    expect(receiver.calls).toHaveLength(2);
    await waitFor(() => ledger() === '2\n', 'the ledger started at the revision on the volume');
  });
});
