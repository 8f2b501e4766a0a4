/**
 * Shutdown mid-change: reload actions still run before exit (bounded), a pass cut short by SIGTERM
 * is logged, `once` and `check` stop promptly on a signal with their own exit code, and a write
 * abandoned between files leaves the previous set exactly as it was.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { EXIT_CODES } from '../src/errors.js';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { ReloadScheduler, type ChangeEvent } from '../src/reload/scheduler.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { reloadReceiver } from './helpers/reload-receiver.js';
import { FAST, glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);

/** A reload action that records its runs and takes `ms` (cancellable, as the real ones are). */
function recordingAction(ms = 0) {
  const runs: { event: ChangeEvent; aborted: boolean }[] = [];
  return {
    runs,
    action: {
      name: 'test',
      run: (event: ChangeEvent, signal: AbortSignal) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            runs.push({ event, aborted: false });
            resolve();
          }, ms);
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            runs.push({ event, aborted: true });
            reject(new Error('aborted'));
          });
        }),
    },
  };
}

describe('reload actions at shutdown', () => {
  it('run a change still inside its debounce window before stop() returns', async () => {
    const { log, logs } = testLogger();
    const { action, runs } = recordingAction();
    const results: string[] = [];
    const scheduler = new ReloadScheduler({ actions: [action], reloadOnFirstWrite: false, debounceMs: 60_000, cooldownMs: 60_000, log, onResult: (name, outcome) => results.push(`${name}:${outcome}`) });
    scheduler.onSynced({ ok: true, revision: 2, previousRevision: 1, changedKeys: ['SECRET_KEY'] });
    await scheduler.stop();
    expect(runs).toEqual([{ event: { revision: 2, changedKeys: ['SECRET_KEY'] }, aborted: false }]);
    expect(results).toEqual(['test:success']);
    expect(logs.text()).toContain('stopping: running the pending reload before exit');
  });

  it('let a run in progress finish, then run the change that arrived during it, skipping the cooldown', async () => {
    const { log } = testLogger();
    const { action, runs } = recordingAction(100);
    const scheduler = new ReloadScheduler({ actions: [action], reloadOnFirstWrite: false, debounceMs: 1, cooldownMs: 60_000, log });
    scheduler.notify({ revision: 2, changedKeys: ['A'] });
    await new Promise((resolve) => setTimeout(resolve, 30)); // the run for revision 2 is in progress
    scheduler.notify({ revision: 3, changedKeys: ['B'] });
    const started = Date.now();
    await scheduler.stop();
    expect(runs.map((r) => [r.event.revision, r.aborted])).toEqual([
      [2, false],
      [3, false],
    ]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('are bounded: what the stop grace cuts short is aborted, logged with its revision and counted as a failure', async () => {
    const { log, logs } = testLogger();
    const { action, runs } = recordingAction(60_000);
    const results: string[] = [];
    const scheduler = new ReloadScheduler({ actions: [action], reloadOnFirstWrite: false, debounceMs: 60_000, cooldownMs: 0, log, stopGraceMs: 200, onResult: (name, outcome) => results.push(`${name}:${outcome}`) });
    scheduler.notify({ revision: 7, changedKeys: ['A'] });
    const started = Date.now();
    await scheduler.stop();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(runs).toEqual([{ event: { revision: 7, changedKeys: ['A'] }, aborted: true }]);
    expect(results).toEqual(['test:failure']);
    expect(logs.lines().find((line) => line.msg === 'reload action cut short: the stop grace ran out')).toMatchObject({ revision: 7, changedKeys: ['A'] });
  });

  it('reach the app when SIGTERM follows a rotation within the debounce window (the restart would not run them: the files match)', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const env = glitchtipEnv(fake, dir, { ...FAST, SIDECAR_MAX_STALENESS: '30s', SIDECAR_RELOAD_DEBOUNCE: '20s', SIDECAR_RELOAD_URL: receiver.url });
    const { log, logs } = testLogger();
    const app = createApp(loadConfig(env), log);
    await app.start();
    onTestFinished(() => app.stop());
    const health = async () => (await app.server.inject('/healthz')).json() as { revision: number };
    await waitFor(async () => (await health()).revision === 1, 'the first sync');

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated', 'plain'));
    await waitFor(async () => (await health()).revision === 2, 'revision 2 written');
    expect(receiver.calls).toEqual([]); // still inside the 20 s debounce
    await app.stop();
    expect(receiver.calls).toEqual([{ event: 'secrets.changed', revision: 2, changedKeys: ['SECRET_KEY'] }]);
    guard.observe(logs.text());
  }, 20_000);

  it('a pass cut short by SIGTERM is logged, with the last good files kept', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    const { log, logs } = testLogger();
    const app = createApp(loadConfig(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_REQUEST_TIMEOUT: '10s', SIDECAR_MAX_STALENESS: '30s' })), log);
    await app.start();
    onTestFinished(() => app.stop());
    await waitFor(async () => (await app.server.inject('/healthz')).json().revision === 1, 'the first sync');
    const before = readFileSync(path.join(dir, 'secrets.env'));

    fake.faults.add({ route: 'list', kind: 'hang' });
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('unseen', 'plain'));
    fake.clearRequests();
    await waitFor(() => fake.requests.some((r) => r.path.startsWith('/api/v3/secrets') && r.status === 0), 'a pass waiting on the hung list call');
    await app.stop();
    expect(logs.lines().filter((line) => line.msg === 'sync failed; last good files kept').at(-1)).toMatchObject({ err: expect.stringContaining('shutdown') });
    expect(readFileSync(path.join(dir, 'secrets.env')).equals(before)).toBe(true);
    guard.observe(logs.text());
  }, 20_000);
});

describe('once and check on SIGTERM or SIGINT', () => {
  it('once stops retrying at once, exits 143 (SIDECAR_STOPPED) and leaves the previous set as it was', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    const env = glitchtipEnv(fake, dir, { SIDECAR_ONCE_DEADLINE: '60s' });
    expect((await runCommand(['once'], env)).code).toBe(EXIT_CODES.ok);
    const before = readFileSync(path.join(dir, 'secrets.env'));
    const liveVersion = readlinkSync(path.join(dir, '..data'));

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('never-written', 'plain'));
    fake.faults.add({ route: 'list', kind: 'status', status: 503 });
    const signalled = new Promise<void>((resolve) => setTimeout(resolve, 500));
    const started = Date.now();
    const result = await runCommand(['once'], env, signalled);
    guard.observe(result.stdout, result.stderr, result.logs.text());
    expect(result.code).toBe(EXIT_CODES.stopped);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(result.logs.lines().at(-1)).toMatchObject({ code: 'SIDECAR_STOPPED' });
    expect(readlinkSync(path.join(dir, '..data'))).toBe(liveVersion);
    expect(readFileSync(path.join(dir, 'secrets.env')).equals(before)).toBe(true);
  }, 20_000);

  it('check stops waiting on a hung request at once and exits 143', async () => {
    const fake = await startFake();
    guard.seed(fake);
    fake.faults.add({ route: 'list', kind: 'hang' });
    const env = glitchtipEnv(fake, makeTempDir(), { SIDECAR_REQUEST_TIMEOUT: '10s' });
    const signalled = new Promise<void>((resolve) => setTimeout(resolve, 500));
    const started = Date.now();
    const result = await runCommand(['check'], env, signalled);
    guard.observe(result.stdout, result.stderr, result.logs.text());
    expect(result.code).toBe(EXIT_CODES.stopped);
    expect(Date.now() - started).toBeLessThan(3_000);
  }, 20_000);
});

describe('a write abandoned at shutdown', () => {
  it('stops between files, removes the partial version and leaves the previous set live', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    const set = (value: string, count: number) => Array.from({ length: count }, (_, i) => ({ path: `keys/K${i}`, content: Buffer.from(`${value}-${i}`) }));
    await writer.write(set('old', 3), { mode: 0o440 });
    const liveVersion = readlinkSync(path.join(dir, '..data'));

    const stop = new AbortController();
    const writing = writer.write(set('new', 3_000), { mode: 0o440 }, undefined, stop.signal);
    // Abort once the new version holds some files, but far from all.
    await waitFor(() => {
      const partial = readdirSync(dir).find((entry) => entry.startsWith('..rev-') && entry !== liveVersion);
      return partial !== undefined && readdirSync(path.join(dir, partial, 'keys')).length >= 10;
    }, 'a partly written version', 8_000, 1);
    stop.abort();
    await expect(writing).rejects.toMatchObject({ code: 'SIDECAR_STOPPED' });
    expect(readdirSync(dir).filter((entry) => entry.startsWith('..rev-'))).toEqual([liveVersion]);
    expect(readlinkSync(path.join(dir, '..data'))).toBe(liveVersion);
    expect(readFileSync(path.join(dir, 'keys', 'K0'), 'utf8')).toBe('old-0');
    expect(writer.revision).toBe(1);
  });
});
