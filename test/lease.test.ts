/**
 * One writer per output directory: the lease in src/output/lease.ts. In-process leases on manual
 * clocks pin the rules exactly (how long a taker waits, when a lease expires, when a standby takes
 * over, what a holder found taken over does); real processes (test/tools/lease-holder.mjs) show what
 * only processes can: takers racing for one directory, and turns taken through release and standby.
 * `run` and `once` (the CLI) hold the lease on one manual clock. A holder really frozen by SIGSTOP is
 * in test/system/lease.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi, type MockInstance } from 'vitest';
import { runCli } from '../src/cli.js';
import { EXIT_CODES, type WriteError } from '../src/errors.js';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { OutputLease, type LeaseHolder } from '../src/output/lease.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard, recordOutput } from './helpers/canaries.js';
import { CLOCK_START, ManualClock } from './helpers/clock.js';
import { buildLeaseModule, startLeaseProcess } from './helpers/lease-holder.js';
import { captureLogs, glitchtipEnv, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);
const MODE = { mode: 0o440 };
const set = (value: string) => [{ path: 'secrets.env', content: Buffer.from(`A='${value}'\n`) }];

function leaseFiles(dir: string): string[] {
  return readdirSync(dir).filter((entry) => entry.startsWith('..lease'));
}

/** Makes the lease files in `dir` look as if their holder last renewed them `ageMs` before `clock`'s now. */
function age(dir: string, clock: ManualClock, ageMs: number): void {
  const renewed = new Date(clock.now() - ageMs);
  for (const file of leaseFiles(dir)) utimesSync(path.join(dir, file), renewed, renewed);
}

/** When the highest-numbered lease file in `dir` was last renewed (its mtime), to the millisecond. */
function renewedAt(dir: string): number | undefined {
  const file = leaseFiles(dir).sort().at(-1);
  return file === undefined ? undefined : Math.round(statSync(path.join(dir, file)).mtimeMs);
}

/** The holder named in the highest-numbered lease file in `dir`. */
function holderOf(dir: string): LeaseHolder | undefined {
  const file = leaseFiles(dir).sort().at(-1);
  return file === undefined ? undefined : (JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as LeaseHolder);
}

/**
 * Every lease check this process makes (`assertHeld`: each renewal, each write's fence, by every
 * OutputLease, the CLI's included), watched so a step can wait until none is in flight: a renewal
 * still running when the next one falls due is skipped, which a loaded machine must not cause here.
 */
let leaseChecks: MockInstance<OutputLease['assertHeld']>;
beforeEach(() => {
  leaseChecks = vi.spyOn(OutputLease.prototype, 'assertHeld');
});
afterEach(() => leaseChecks.mockRestore());

/**
 * Moves `clock` on by `everyMs`, `steps` times, and after each step waits until the renewal due then
 * has reached the holder's lease file and finished: the holder renews on time however slow the
 * machine is, and what the test asserts is what a taker makes of that.
 */
async function advanceWithRenewals(clock: ManualClock, dir: string, everyMs: number, steps: number): Promise<void> {
  for (let step = 1; step <= steps; step++) {
    await clock.advance(everyMs);
    await waitFor(
      () => renewedAt(dir) === clock.now() && leaseChecks.mock.settledResults.every((result) => result.type !== 'incomplete'),
      `the holder's renewal at +${clock.now() - CLOCK_START} ms`,
    );
  }
}

function lease(dir: string, host: string, clock: ManualClock, ttlMs = 600): OutputLease {
  const created = new OutputLease(dir, { ttlMs, identity: { host, pid: 4242 }, clock });
  onTestFinished(() => created.release());
  return created;
}

/** `promise`, and whether it has settled yet (read without waiting); its rejection is handled. */
function tracked<T>(promise: Promise<T>): { readonly outcome: Promise<{ value?: T; error?: unknown }>; readonly settled: () => boolean } {
  let settled = false;
  const outcome = promise.then(
    (value) => ((settled = true), { value }),
    (error: unknown) => ((settled = true), { error }),
  );
  return { outcome, settled: () => settled };
}

/** Waits until `promise` settles: a look that never ends fails here, named, instead of hanging the test. */
async function settles<T>(promise: Promise<T>, what: string): Promise<'done' | 'failed'> {
  const watched = tracked(promise);
  await waitFor(watched.settled, what);
  return (await watched.outcome).error === undefined ? 'done' : 'failed';
}

describe('OutputLease', () => {
  it('a second sidecar waits exactly its waitMs for a live holder, then is refused with the lease exit code and a message naming the holder', async () => {
    const dir = makeTempDir();
    const clock = new ManualClock();
    const first = lease(dir, 'sidecar-a', clock);
    await first.acquire({ waitMs: 0 });
    expect(leaseFiles(dir)).toEqual(['..lease-000001']);
    const content = JSON.parse(readFileSync(path.join(dir, '..lease-000001'), 'utf8')) as Record<string, unknown>;
    expect(content).toMatchObject({ host: 'sidecar-a', pid: 4242, instance: first.holder.instance, ttlMs: 600, acquiredAt: new Date(CLOCK_START).toISOString() });
    expect(renewedAt(dir), 'the lease file carries the time of its clock').toBe(CLOCK_START);

    // The wait is for a recreate's old container to let go; it looks again every third of the TTL.
    const second = tracked(lease(dir, 'sidecar-b', clock).acquire({ waitMs: 300 }));
    await advanceWithRenewals(clock, dir, 200, 1);
    await clock.advance(99);
    expect(second.settled(), 'still waiting 299 ms in').toBe(false);
    await clock.advance(1);
    const { error } = await second.outcome;
    expect(clock.now() - CLOCK_START).toBe(300);
    expect(error).toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD', exitCode: EXIT_CODES.lease });
    expect((error as Error).message).toMatch(new RegExp(`held by sidecar-a \\(pid 4242, instance ${first.holder.instance}\\), renewed .* ago, lease \\.\\.lease-000001; this sidecar waited 0s`));
    expect((error as { hint: string }).hint).toMatch(/SIDECAR_LEASE_MODE=standby/);
  });

  it('is renewed every third of its TTL while held, so a live holder is never taken over', async () => {
    const dir = makeTempDir();
    const clock = new ManualClock();
    await lease(dir, 'sidecar-a', clock, 300).acquire({ waitMs: 0 });
    const taker = tracked(lease(dir, 'sidecar-b', clock, 300).acquire({ waitMs: 900 }));
    // Three TTLs: the file carries the time of every renewal, at +100, +200, … +900 ms.
    await advanceWithRenewals(clock, dir, 100, 9);
    expect((await taker.outcome).error).toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD' });
    expect(leaseFiles(dir)).toEqual(['..lease-000001']);
    expect(holderOf(dir)?.host).toBe('sidecar-a');
  });

  it('a standby waits, and takes over at its first look after the holder releases', async () => {
    const dir = makeTempDir();
    const clock = new ManualClock();
    const first = lease(dir, 'sidecar-a', clock);
    await first.acquire({ waitMs: 0 });
    let reportWaiting!: (host: string) => void;
    const waitingFor = new Promise<string>((resolve) => (reportWaiting = resolve));
    const standby = lease(dir, 'sidecar-b', clock);
    const acquired = tracked(standby.acquire({ waitMs: Number.POSITIVE_INFINITY, onWaiting: (holder) => reportWaiting(holder.host) }));
    expect(await waitingFor).toBe('sidecar-a');
    // The holder's renewal and the standby's next look, both a third of the TTL away.
    expect(clock.pending()).toEqual([200, 200]);

    await first.release();
    expect(clock.pending(), 'a released lease is no longer renewed').toEqual([200]);
    await clock.advance(200);
    await waitFor(acquired.settled, 'the standby holds the lease after one look, without the clock moving on');
    expect((await acquired.outcome).error).toBeUndefined();
    expect(clock.now() - CLOCK_START).toBe(200);
    // Numbers are reused once every lease is released: the instance id tells holders apart.
    expect(leaseFiles(dir)).toEqual(['..lease-000001']);
    expect(holderOf(dir)).toMatchObject({ host: 'sidecar-b', instance: standby.holder.instance });
    await expect(standby.assertHeld()).resolves.toBeUndefined();
  });

  it('a lease not renewed for its TTL is taken over, not a millisecond earlier; the revision continues from what is on disk', async () => {
    const dir = makeTempDir();
    const clock = new ManualClock();
    const first = lease(dir, 'sidecar-a', clock);
    await first.acquire({ waitMs: 0 });
    const oldWriter = new AtomicDirWriter(dir, { fence: first });
    await oldWriter.write(set('1'), MODE);
    await oldWriter.write(set('2'), MODE);
    await first.release();
    // A holder that died without releasing: a lease file nobody renews, judged by the TTL written in it.
    writeFileSync(path.join(dir, '..lease-000007'), JSON.stringify({ host: 'dead', pid: 1, instance: 'gone', ttlMs: 600 }));
    age(dir, clock, 599);
    await expect(lease(dir, 'sidecar-b', clock, 60_000).acquire({ waitMs: 0 })).rejects.toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD', message: expect.stringContaining('held by dead') });
    age(dir, clock, 600);

    const second = lease(dir, 'sidecar-b', clock, 60_000);
    await second.acquire({ waitMs: 0 });
    expect(leaseFiles(dir)).toEqual(['..lease-000008']);
    const newWriter = new AtomicDirWriter(dir, { fence: second });
    expect(await newWriter.write(set('3'), MODE)).toMatchObject({ changed: true, revision: 3, previousRevision: 2 });
  });

  it('a holder whose lease was taken stops writing: the write is refused before the swap, the set stays', async () => {
    const dir = makeTempDir();
    const clock = new ManualClock();
    const first = lease(dir, 'sidecar-a', clock, 60_000);
    const lost: string[] = [];
    await first.acquire({ waitMs: 0, onLost: (error) => lost.push(error.message) });
    const writer = new AtomicDirWriter(dir, { fence: first });
    await writer.write(set('1'), MODE);

    // As if the holder had been paused past its TTL: the clock stands still, so no renewal of its own comes between.
    age(dir, clock, 60_000);
    await lease(dir, 'sidecar-b', clock, 300).acquire({ waitMs: 0 });

    await expect(writer.write(set('2'), MODE)).rejects.toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_LOST', exitCode: EXIT_CODES.lease, message: expect.stringContaining('sidecar-b') });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe("A='1'\n");
    expect(readdirSync(dir).filter((entry) => entry.startsWith('..rev-'))).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(/taken over by sidecar-b/);
  });

  it('a holder frozen past its TTL finds the takeover at its next renewal, tells onLost once and stops renewing', async () => {
    const dir = makeTempDir();
    // Two clocks from one instant: the holder's stands still while it is frozen, the taker's runs on.
    const frozen = new ManualClock();
    const running = new ManualClock();
    const lost: WriteError[] = [];
    const holder = lease(dir, 'sidecar-a', frozen);
    await holder.acquire({ waitMs: 0, onLost: (error) => lost.push(error) });

    const taker = lease(dir, 'sidecar-b', running);
    const taken = tracked(taker.acquire({ waitMs: Number.POSITIVE_INFINITY }));
    await running.next(); // +200: renewed 200 ms ago
    await running.next(); // +400
    await running.whenPending();
    expect(taken.settled(), 'not taken over before the TTL').toBe(false);
    await running.next(); // +600: the TTL has passed
    expect((await taken.outcome).error).toBeUndefined();
    expect(running.now() - CLOCK_START).toBe(600);
    expect(leaseFiles(dir)).toEqual(['..lease-000002']);
    expect(lost, 'nothing is told while the holder is frozen').toEqual([]);

    // The holder wakes: its renewal, overdue, fires first.
    await frozen.advance(200);
    await waitFor(() => lost.length > 0, 'the woken holder is told at its renewal');
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_LOST', message: expect.stringContaining(`taken over by sidecar-b (pid 4242, instance ${taker.holder.instance})`) });
    expect(frozen.pending(), 'no more renewals: it never fights for the lease').toEqual([]);
    await expect(holder.assertHeld()).rejects.toBe(lost[0]);
    expect(leaseFiles(dir)).toEqual(['..lease-000002']);
    expect(holderOf(dir)?.instance).toBe(taker.holder.instance);
  });

  it('release removes only its own lease file', async () => {
    const dir = makeTempDir();
    const first = lease(dir, 'sidecar-a', new ManualClock());
    await first.acquire({ waitMs: 0 });
    await first.release();
    expect(leaseFiles(dir)).toEqual([]);
    await first.release(); // twice is harmless
  });
});

describe('OutputLease between real processes', () => {
  it('takers racing for an expired lease: exactly one wins, the others are refused naming it', async () => {
    const modulePath = buildLeaseModule();
    const dir = makeTempDir();
    writeFileSync(path.join(dir, '..lease-000003'), JSON.stringify({ host: 'dead', pid: 1, instance: 'gone', ttlMs: 500 }));
    const longAgo = new Date(Date.UTC(2000, 0, 1));
    utimesSync(path.join(dir, '..lease-000003'), longAgo, longAgo);

    // Their clock stands still: the winner's lease cannot expire while the others decide, however slowly they start.
    const takers = Array.from({ length: 4 }, () => startLeaseProcess([modulePath, dir, 'hold', '5000', '0', 'frozen']));
    await waitFor(() => takers.every((taker) => taker.events.length > 0), 'every taker decided', 15_000);
    const events = takers.map((taker) => taker.events[0]!);
    const winners = events.filter((event) => event.event === 'acquired');
    expect(winners).toHaveLength(1);
    const winner = (winners[0]!.holder as { instance: string }).instance;
    for (const loser of events.filter((event) => event.event !== 'acquired')) {
      expect(loser).toMatchObject({ event: 'refused', code: 'SIDECAR_OUTPUT_LEASE_HELD', message: expect.stringContaining(winner) });
    }
    expect(leaseFiles(dir)).toEqual(['..lease-000004']);
  });

  it('processes taking turns through release and standby are never inside at the same time', async () => {
    const modulePath = buildLeaseModule();
    const dir = makeTempDir();
    const marker = path.join(makeTempDir('marker-'), 'inside');
    // No lease expires on a clock that stands still: every turn is handed over by a release, to a standby looking every 10 ms.
    const workers = Array.from({ length: 4 }, () => startLeaseProcess([modulePath, dir, 'turns', '30', '0', 'frozen', marker, '10']));
    await Promise.all(workers.map((worker) => worker.exited));
    expect(workers.map((worker) => worker.events)).toEqual(workers.map(() => [{ event: 'done', violations: 0 }]));
    expect(leaseFiles(dir)).toEqual([]);
  });
});

describe('the lease in `run` and `once` (the CLI, against the fake Infisical)', () => {
  /** The CLI in-process on `clock`, its logs readable while it runs; `stop()` ends a `run` as SIGTERM would (and the test's end does). */
  function cli(argv: string[], env: Record<string, string>, clock: ManualClock) {
    const logs = captureLogs();
    let stop = () => undefined as void;
    const shutdown = new Promise<void>((resolve) => (stop = resolve));
    const result = runCli(argv, { env, stdout: recordOutput, stderr: recordOutput, shutdown, logDestination: logs.stream as never, clock });
    onTestFinished(async () => {
      stop();
      await result;
    });
    const waiting = () => logs.lines().some((line) => line.msg === 'another sidecar holds the output directory; waiting for it to stop or its lease to expire');
    return { result, logs, stop, waiting };
  }
  const revisionOf = (dir: string) => Number(/^\.\.rev-(\d+)-/.exec(readlinkSync(path.join(dir, '..data')))?.[1]);

  it('a second `run` on the same directory exits 74 naming the first; a standby takes over when it stops; the revision continues', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    const clock = new ManualClock();
    // A 3 s TTL: the holder renews every second, a waiting sidecar looks every second.
    const env = glitchtipEnv(fake, dir, { SIDECAR_LEASE_TTL: '3s', SIDECAR_WATCH: 'false', SIDECAR_REFRESH_INTERVAL: '1h', SIDECAR_MAX_STALENESS: '2h' });
    const first = cli(['run'], env, clock);
    await waitFor(() => existsSync(path.join(dir, 'secrets.env')), 'the first sidecar wrote its set');
    const holder = holderOf(dir)!;
    expect(leaseFiles(dir)).toEqual(['..lease-000001']);

    // `run` waits one TTL (a recreate's old container may still be stopping), then gives up.
    const second = cli(['run'], env, clock);
    await waitFor(second.waiting, 'the second `run` waits for the lease');
    await advanceWithRenewals(clock, dir, 1_000, 3);
    expect(await second.result).toBe(EXIT_CODES.lease);
    expect(second.logs.lines().find((line) => line.msg === 'exiting')).toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD', err: expect.stringContaining(holder.instance) });

    // `once` waits within its deadline.
    const once = cli(['once'], { ...env, SIDECAR_ONCE_DEADLINE: '2s' }, clock);
    await waitFor(once.waiting, '`once` waits for the lease');
    await advanceWithRenewals(clock, dir, 1_000, 2);
    expect(await once.result).toBe(EXIT_CODES.lease);

    // A standby waits as long as the holder lives (a whole TTL here)…
    const standby = cli(['run'], { ...env, SIDECAR_LEASE_MODE: 'standby' }, clock);
    await waitFor(standby.waiting, 'the standby waits for the lease');
    const revision = revisionOf(dir);
    await advanceWithRenewals(clock, dir, 1_000, 3);
    expect(holderOf(dir)).toMatchObject({ instance: holder.instance });
    // The standby has had its look and sleeps until its next one, a second away, as the holder until its next renewal.
    await clock.whenPending(() => clock.pending().filter((dueIn) => dueIn <= 1_000).length === 2);
    // …and takes over at that next look once the holder stops; its first pass writes what changed
    // meanwhile (the holder, asleep for its hour-long refresh, never fetched it).
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated', 'plain'));
    first.stop();
    expect(await first.result).toBe(EXIT_CODES.ok);
    expect(clock.pending().filter((dueIn) => dueIn <= 1_000), 'the released lease is no longer renewed').toEqual([1_000]);
    await clock.advance(1_000);
    await waitFor(() => holderOf(dir)?.instance !== holder.instance && leaseFiles(dir).length === 1, 'the standby holds the lease after that one look');
    await waitFor(() => revisionOf(dir) === revision + 1, 'the standby writes the next revision');
    standby.stop();
    expect(await standby.result).toBe(EXIT_CODES.ok);
    expect(leaseFiles(dir)).toEqual([]);
  });

  it("`run` stops at start with the write code when another tool's files hold the output names", async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    writeFileSync(path.join(dir, 'secrets.env'), 'OLD=1\n');
    // If it did not stop by itself, the test would time out and its end stop the `run`.
    const run = cli(['run'], glitchtipEnv(fake, dir, { SIDECAR_WATCH: 'false' }), new ManualClock());
    expect(await run.result).toBe(EXIT_CODES.write);
    expect(run.logs.lines().find((line) => line.msg === 'exiting')).toMatchObject({ code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES' });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('OLD=1\n');
    expect(leaseFiles(dir)).toEqual([]);
  });
});

describe('odd lease files', () => {
  for (const name of ['..lease-0000001', `..lease-${'9'.repeat(25)}`, '..lease-9007199254740993']) {
    it(`a planted ${name.slice(0, 20)}… is not a lease of this code: no hang, the lease is taken`, async () => {
      const dir = makeTempDir();
      writeFileSync(path.join(dir, name), '{}');
      const taker = lease(dir, 'sidecar-a', new ManualClock());
      expect(await settles(taker.acquire({ waitMs: 0 }), 'acquire')).toBe('done');
      expect(await settles(taker.assertHeld(), 'assertHeld')).toBe('done');
    });
  }

  it('a lease file that is a link to /dev/zero or a FIFO is never read through; it is taken over as unreadable after the TTL', async () => {
    const dir = makeTempDir();
    const clock = new ManualClock();
    symlinkSync('/dev/zero', path.join(dir, '..lease-000001'));
    execFileSync('mkfifo', [path.join(dir, '..lease-000002')]);
    utimesSync(path.join(dir, '..lease-000002'), new Date(clock.now()), new Date(clock.now()));
    const waitingFor: string[] = [];
    const taker = tracked(lease(dir, 'sidecar-a', clock, 300).acquire({ waitMs: 2_000, onWaiting: (holder) => waitingFor.push(holder.host) }));
    await clock.next(); // +100
    await clock.next(); // +200
    await clock.whenPending();
    expect(taker.settled(), 'an unreadable lease is judged by the taker’s own TTL: held until it passes').toBe(false);
    expect(waitingFor).toEqual(['an unknown holder (unreadable lease file)']);
    await clock.next(); // +300
    await waitFor(taker.settled, 'the taker holds the lease');
    expect((await taker.outcome).error).toBeUndefined();
    expect(clock.now() - CLOCK_START).toBe(300);
    expect(leaseFiles(dir)).toEqual(['..lease-000003']);
  });

  it('a lease dated far in the future (a clock stepped back) or claiming a huge TTL does not hold the directory forever', async () => {
    const clock = new ManualClock();
    const future = makeTempDir();
    await lease(future, 'gone', clock).acquire({ waitMs: 0 });
    const ahead = new Date(clock.now() + 3_600_000);
    utimesSync(path.join(future, '..lease-000001'), ahead, ahead);
    expect(await settles(lease(future, 'sidecar-b', clock).acquire({ waitMs: 0 }), 'acquire past a future lease')).toBe('done');

    const huge = makeTempDir();
    writeFileSync(path.join(huge, '..lease-000001'), JSON.stringify({ host: 'x', pid: 1, instance: 'i', ttlMs: 1e300, acquiredAt: '' }));
    age(huge, clock, 3_700_000);
    expect(await settles(lease(huge, 'sidecar-c', clock).acquire({ waitMs: 0 }), 'acquire past a huge TTL')).toBe('done');
  });
});
