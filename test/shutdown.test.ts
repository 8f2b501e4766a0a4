/**
 * Shutdown mid-change: reload actions still run before exit (bounded by the stop grace), a pass cut
 * short by SIGTERM is logged, `once` and `check` stop on a signal at once with their own exit code,
 * and a write abandoned between files leaves the previous set exactly as it was. Timers run on a
 * manual clock, so "at once" means with no time passing on it, and a bound is asserted exactly.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { EXIT_CODES } from '../src/errors.js';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { ReloadScheduler, type ChangeEvent } from '../src/reload/scheduler.js';
import type { Clock } from '../src/timers.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { CLOCK_START, ManualClock } from './helpers/clock.js';
import { nextPass, passAfter } from './helpers/passes.js';
import { reloadReceiver } from './helpers/reload-receiver.js';
import { FAST, glitchtipEnv, runCommand, startFake, testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);
const LIST = '/api/v3/secrets/raw';

/** A reload action that records its runs and takes `ms` on `clock` (cancellable, as the real ones are); 0 ms resolves at once. */
function recordingAction(clock: Clock, ms = 0) {
  const runs: { event: ChangeEvent; aborted: boolean }[] = [];
  return {
    runs,
    action: {
      name: 'test',
      run: (event: ChangeEvent, signal: AbortSignal) =>
        new Promise<void>((resolve, reject) => {
          const done = () => {
            runs.push({ event, aborted: false });
            resolve();
          };
          if (ms === 0) return done();
          const cancel = clock.schedule(ms, done);
          signal.addEventListener('abort', () => {
            cancel();
            runs.push({ event, aborted: true });
            reject(new Error('aborted'));
          });
        }),
    },
  };
}

/** Whether `promise` has settled, after what is already queued has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await Promise.resolve().then(() => undefined);
  return done;
}

describe('reload actions at shutdown', () => {
  it('run a change still inside its debounce window before stop() returns', async () => {
    const clock = new ManualClock();
    const { log, logs } = testLogger();
    const { action, runs } = recordingAction(clock);
    const results: string[] = [];
    const scheduler = new ReloadScheduler({ actions: [action], reloadOnFirstWrite: false, debounceMs: 60_000, cooldownMs: 60_000, log, clock, onResult: (name, outcome) => results.push(`${name}:${outcome}`) });
    scheduler.onSynced({ ok: true, revision: 2, previousRevision: 1, changedKeys: ['SECRET_KEY'] });
    await scheduler.stop();
    expect(clock.now()).toBe(CLOCK_START); // not one millisecond of the debounce waited for
    expect(runs).toEqual([{ event: { revision: 2, changedKeys: ['SECRET_KEY'] }, aborted: false }]);
    expect(results).toEqual(['test:success']);
    expect(logs.text()).toContain('stopping: running the pending reload before exit');
  });

  it('let a run in progress finish, then run the change that arrived during it, skipping the cooldown', async () => {
    const clock = new ManualClock();
    const { log } = testLogger();
    const { action, runs } = recordingAction(clock, 100);
    const scheduler = new ReloadScheduler({ actions: [action], reloadOnFirstWrite: false, debounceMs: 1, cooldownMs: 60_000, log, clock });
    scheduler.notify({ revision: 2, changedKeys: ['A'] });
    await clock.advance(30); // the run for revision 2 starts after the 1 ms debounce and is in progress
    expect(runs).toEqual([]);
    scheduler.notify({ revision: 3, changedKeys: ['B'] });
    const stopping = scheduler.stop();
    // Revision 2's run (from 1 ms) ends 100 ms after it started; revision 3's runs right after, not after the 60 s cooldown.
    await clock.advance(71);
    expect(runs.map((r) => [r.event.revision, r.aborted])).toEqual([[2, false]]);
    expect(await settled(stopping)).toBe(false);
    await clock.whenPending((dueIn) => dueIn === 100); // revision 3's run has started
    await clock.advance(100);
    await stopping;
    expect(runs.map((r) => [r.event.revision, r.aborted])).toEqual([
      [2, false],
      [3, false],
    ]);
    expect(clock.now() - CLOCK_START).toBe(201);
  });

  it('are bounded: what the stop grace cuts short is aborted, logged with its revision and counted as a failure', async () => {
    const clock = new ManualClock();
    const { log, logs } = testLogger();
    const { action, runs } = recordingAction(clock, 60_000);
    const results: string[] = [];
    const scheduler = new ReloadScheduler({ actions: [action], reloadOnFirstWrite: false, debounceMs: 60_000, cooldownMs: 0, log, clock, stopGraceMs: 200, onResult: (name, outcome) => results.push(`${name}:${outcome}`) });
    scheduler.notify({ revision: 7, changedKeys: ['A'] });
    const stopping = scheduler.stop();
    await clock.advance(199);
    expect(await settled(stopping)).toBe(false);
    expect(runs).toEqual([]);
    await clock.advance(1);
    await stopping;
    expect(runs).toEqual([{ event: { revision: 7, changedKeys: ['A'] }, aborted: true }]);
    expect(results).toEqual(['test:failure']);
    expect(logs.lines().find((line) => line.msg === 'reload action cut short: the stop grace ran out')).toMatchObject({ revision: 7, changedKeys: ['A'], ms: 200 });
  });

  it('reach the app when SIGTERM follows a rotation within the debounce window (the restart would not run them: the files match)', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    guard.seed(fake);
    const dir = makeTempDir();
    const receiver = await reloadReceiver();
    const env = glitchtipEnv(fake, dir, { ...FAST, SIDECAR_MAX_STALENESS: '30s', SIDECAR_RELOAD_DEBOUNCE: '20s', SIDECAR_RELOAD_URL: receiver.url });
    const { log, logs } = testLogger();
    const app = createApp(loadConfig(env), log, { clock });
    await app.start();
    onTestFinished(() => app.stop());
    expect(await passAfter(clock, app, null)).toMatchObject({ revision: 1 });

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated', 'plain'));
    expect(await nextPass(clock, app)).toMatchObject({ revision: 2 });
    expect(clock.pending()).toContain(20_000); // the reload waits for its 20 s debounce
    expect(receiver.calls).toEqual([]);
    await app.stop();
    expect(receiver.calls).toEqual([{ event: 'secrets.changed', revision: 2, changedKeys: ['SECRET_KEY'] }]);
    guard.observe(logs.text());
  });

  it('a pass cut short by SIGTERM is logged, with the last good files kept', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    guard.seed(fake);
    const dir = makeTempDir();
    const { log, logs } = testLogger();
    const app = createApp(loadConfig(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_REQUEST_TIMEOUT: '10s', SIDECAR_MAX_STALENESS: '30s' })), log, { clock });
    await app.start();
    onTestFinished(() => app.stop());
    expect(await passAfter(clock, app, null)).toMatchObject({ revision: 1 });
    const before = readFileSync(path.join(dir, 'secrets.env'));

    fake.faults.add({ route: 'list', kind: 'hang' });
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('unseen', 'plain'));
    fake.clearRequests();
    await clock.advance(1_000);
    await fake.whenRequests((requests) => requests.filter((r) => r.path === LIST).length === 2); // a pass waiting on the hung list calls
    await app.stop();
    expect(logs.lines().filter((line) => line.msg === 'sync failed; last good files kept').at(-1)).toMatchObject({ err: expect.stringContaining('shutdown') });
    expect(readFileSync(path.join(dir, 'secrets.env')).equals(before)).toBe(true);
    guard.observe(logs.text());
  });
});

describe('once and check on SIGTERM or SIGINT', () => {
  it('once stops retrying at once, exits 143 (SIDECAR_STOPPED) and leaves the previous set as it was', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    guard.seed(fake);
    const dir = makeTempDir();
    const env = glitchtipEnv(fake, dir, { SIDECAR_ONCE_DEADLINE: '60s' });
    expect((await runCommand(['once'], env, undefined, clock)).code).toBe(EXIT_CODES.ok);
    const before = readFileSync(path.join(dir, 'secrets.env'));
    const liveVersion = readlinkSync(path.join(dir, '..data'));

    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('never-written', 'plain'));
    fake.faults.add({ route: 'list', kind: 'status', status: 503 });
    fake.clearRequests();
    let signal!: () => void;
    const signalled = new Promise<void>((resolve) => (signal = resolve));
    const running = runCommand(['once'], env, signalled, clock);
    // The first pass failed and `once` sleeps on its backoff (at most the 200 ms cap): the signal comes now.
    await clock.whenPending((dueIn) => dueIn <= 200);
    const signalledAt = clock.now();
    signal();
    const result = await running;
    guard.observe(result.stdout, result.stderr, result.logs.text());
    expect(result.code).toBe(EXIT_CODES.stopped);
    expect(clock.now()).toBe(signalledAt); // no backoff, no deadline waited for
    expect(fake.requests.filter((r) => r.path === LIST).map((r) => r.status)).toEqual([503, 503]);
    expect(result.logs.lines().at(-1)).toMatchObject({ code: 'SIDECAR_STOPPED' });
    expect(readlinkSync(path.join(dir, '..data'))).toBe(liveVersion);
    expect(readFileSync(path.join(dir, 'secrets.env')).equals(before)).toBe(true);
  });

  it('check stops waiting on a hung request at once and exits 143', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    guard.seed(fake);
    fake.faults.add({ route: 'list', kind: 'hang' });
    const env = glitchtipEnv(fake, makeTempDir(), { SIDECAR_REQUEST_TIMEOUT: '10s' });
    let signal!: () => void;
    const signalled = new Promise<void>((resolve) => (signal = resolve));
    const running = runCommand(['check'], env, signalled, clock);
    await fake.whenRequests((requests) => requests.filter((r) => r.path === LIST).length === 2);
    signal();
    const result = await running;
    guard.observe(result.stdout, result.stderr, result.logs.text());
    expect(result.code).toBe(EXIT_CODES.stopped);
    expect(clock.now()).toBe(CLOCK_START); // the 10 s request timeout never came into it
  });
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
