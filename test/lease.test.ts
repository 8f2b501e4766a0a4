/**
 * One writer per output directory (issue 11 item 1): the lease in src/output/lease.ts. In-process
 * leases for the rules, and real processes (the lease transpiled from src/, see helpers/transpile.ts)
 * for what only processes can show: takers racing for one directory, and a holder frozen with
 * SIGSTOP past its TTL that must find out and stop instead of fighting.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EXIT_CODES } from '../src/errors.js';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { OutputLease } from '../src/output/lease.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from './fake-infisical/seed.js';
import { leakGuard } from './helpers/canaries.js';
import { glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { transpileFromSrc } from './helpers/transpile.js';
import { waitFor } from './helpers/wait.js';

const guard = leakGuard(2_000);
const MODE = { mode: 0o440 };
const set = (value: string) => [{ path: 'secrets.env', content: Buffer.from(`A='${value}'\n`) }];

function leaseFiles(dir: string): string[] {
  return readdirSync(dir).filter((entry) => entry.startsWith('..lease'));
}

/** Makes the lease file in `dir` look as if its holder stopped renewing `ageMs` ago. */
function age(dir: string, ageMs: number): void {
  const past = new Date(Date.now() - ageMs);
  for (const file of leaseFiles(dir)) utimesSync(path.join(dir, file), past, past);
}

function lease(dir: string, host: string, ttlMs = 600): OutputLease {
  const created = new OutputLease(dir, { ttlMs, identity: { host, pid: 4242 } });
  onTestFinished(() => created.release());
  return created;
}

describe('OutputLease', () => {
  it('a second sidecar is refused with the lease exit code and a message naming the holder', async () => {
    const dir = makeTempDir();
    const first = lease(dir, 'sidecar-a');
    await first.acquire({ waitMs: 0 });
    expect(leaseFiles(dir)).toEqual(['..lease-000001']);
    const content = JSON.parse(readFileSync(path.join(dir, '..lease-000001'), 'utf8')) as Record<string, unknown>;
    expect(content).toMatchObject({ host: 'sidecar-a', pid: 4242, instance: first.holder.instance, ttlMs: 600 });

    const started = Date.now();
    const error = await lease(dir, 'sidecar-b').acquire({ waitMs: 300 }).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(300); // it waited for a recreate's old container to let go
    expect(error).toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD', exitCode: EXIT_CODES.lease });
    expect((error as Error).message).toMatch(new RegExp(`held by sidecar-a \\(pid 4242, instance ${first.holder.instance}\\), renewed .* ago`));
    expect((error as { hint: string }).hint).toMatch(/SIDECAR_LEASE_MODE=standby/);
  });

  it('is renewed while held, so a live holder is never taken over', async () => {
    const dir = makeTempDir();
    await lease(dir, 'sidecar-a', 300).acquire({ waitMs: 0 });
    // Three TTLs later the holder is still there: its renewals kept the lease fresh.
    await expect(lease(dir, 'sidecar-b', 300).acquire({ waitMs: 900 })).rejects.toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD' });
  });

  it('a standby waits, and takes over at once when the holder releases', async () => {
    const dir = makeTempDir();
    const first = lease(dir, 'sidecar-a');
    await first.acquire({ waitMs: 0 });
    const waitingFor: string[] = [];
    const standby = lease(dir, 'sidecar-b');
    const acquired = standby.acquire({ waitMs: Number.POSITIVE_INFINITY, onWaiting: (holder) => waitingFor.push(holder.host) });
    await waitFor(() => waitingFor.length > 0, 'the standby reports whom it waits for');
    expect(waitingFor).toEqual(['sidecar-a']);

    await first.release();
    const released = Date.now();
    await acquired;
    expect(Date.now() - released).toBeLessThan(1_500);
    // Numbers are reused once every lease is released: the instance id tells holders apart.
    expect(leaseFiles(dir)).toEqual(['..lease-000001']);
    expect(JSON.parse(readFileSync(path.join(dir, '..lease-000001'), 'utf8'))).toMatchObject({ host: 'sidecar-b', instance: standby.holder.instance });
    await expect(standby.assertHeld()).resolves.toBeUndefined();
  });

  it('a lease not renewed for its TTL is taken over; the revision continues from what is on disk', async () => {
    const dir = makeTempDir();
    const first = lease(dir, 'sidecar-a');
    await first.acquire({ waitMs: 0 });
    const oldWriter = new AtomicDirWriter(dir, { fence: first });
    await oldWriter.write(set('1'), MODE);
    await oldWriter.write(set('2'), MODE);
    await first.release();
    // A holder that died without releasing: a lease file nobody renews.
    writeFileSync(path.join(dir, '..lease-000007'), JSON.stringify({ host: 'dead', pid: 1, instance: 'gone', ttlMs: 600 }));
    age(dir, 700);

    const second = lease(dir, 'sidecar-b');
    await second.acquire({ waitMs: 0 });
    expect(leaseFiles(dir)).toEqual(['..lease-000008']);
    const newWriter = new AtomicDirWriter(dir, { fence: second });
    expect(await newWriter.write(set('3'), MODE)).toMatchObject({ changed: true, revision: 3, previousRevision: 2 });
  });

  it('a holder whose lease was taken stops writing: the write is refused before the swap, the set stays', async () => {
    const dir = makeTempDir();
    // A TTL of a minute: no renewal of its own comes between the ageing below and the takeover.
    const first = lease(dir, 'sidecar-a', 60_000);
    const lost: string[] = [];
    await first.acquire({ waitMs: 0, onLost: (error) => lost.push(error.message) });
    const writer = new AtomicDirWriter(dir, { fence: first });
    await writer.write(set('1'), MODE);

    // As if the holder had been paused past its TTL (the SIGSTOP test below does it for real).
    age(dir, 61_000);
    await lease(dir, 'sidecar-b', 300).acquire({ waitMs: 0 });

    await expect(writer.write(set('2'), MODE)).rejects.toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_LOST', exitCode: EXIT_CODES.lease, message: expect.stringContaining('sidecar-b') });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe("A='1'\n");
    expect(readdirSync(dir).filter((entry) => entry.startsWith('..rev-'))).toHaveLength(1);
    await waitFor(() => lost.length > 0, 'onLost is told');
    expect(lost[0]).toMatch(/taken over by sidecar-b/);
  });

  it('release removes only its own lease file', async () => {
    const dir = makeTempDir();
    const first = lease(dir, 'sidecar-a');
    await first.acquire({ waitMs: 0 });
    await first.release();
    expect(leaseFiles(dir)).toEqual([]);
    await first.release(); // twice is harmless
  });
});

describe('OutputLease between real processes', () => {
  const HOLDER = `
    import { openSync, closeSync, unlinkSync } from 'node:fs';
    const [modulePath, dir, mode, ttl, wait, marker, rounds] = process.argv.slice(1);
    const { OutputLease } = await import(modulePath);
    const say = (event) => process.stdout.write(JSON.stringify(event) + '\\n');
    if (mode === 'hold') {
      const lease = new OutputLease(dir, { ttlMs: Number(ttl) });
      try {
        await lease.acquire({ waitMs: Number(wait), onLost: (error) => { say({ event: 'lost', code: error.code, message: error.message }); process.exit(3); } });
      } catch (error) {
        say({ event: 'refused', code: error.code, message: error.message });
        process.exit(2);
      }
      say({ event: 'acquired', holder: lease.holder });
      process.on('SIGTERM', async () => { await lease.release(); process.exit(0); });
      setInterval(() => undefined, 1000);
    } else {
      // 'take turns': acquire as a standby, be the only one inside (an O_EXCL marker), let go; repeat.
      let violations = 0;
      for (let round = 0; round < Number(rounds); round++) {
        const lease = new OutputLease(dir, { ttlMs: Number(ttl) });
        await lease.acquire({ waitMs: Infinity });
        try { closeSync(openSync(marker, 'wx')); } catch { violations++; }
        await new Promise((resolve) => setTimeout(resolve, 5));
        await lease.assertHeld();
        try { unlinkSync(marker); } catch { violations++; }
        await lease.release();
      }
      say({ event: 'done', violations });
    }
  `;

  function startHolder(args: string[]): { child: ChildProcess; events: Record<string, unknown>[]; exited: Promise<number | null> } {
    const child = spawn(process.execPath, ['--input-type=module', '-e', HOLDER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const events: Record<string, unknown>[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, events, exited };
  }

  function build(): string {
    return transpileFromSrc('output/lease.ts', makeTempDir('lease-build-'));
  }

  it('takers racing for an expired lease: exactly one wins, the others are refused naming it', async () => {
    const modulePath = build();
    const dir = makeTempDir();
    writeFileSync(path.join(dir, '..lease-000003'), JSON.stringify({ host: 'dead', pid: 1, instance: 'gone', ttlMs: 500 }));
    age(dir, 5_000);

    const takers = Array.from({ length: 4 }, () => startHolder([modulePath, dir, 'hold', '5000', '0']));
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
    const modulePath = build();
    const dir = makeTempDir();
    const marker = path.join(makeTempDir('marker-'), 'inside');
    const workers = Array.from({ length: 4 }, () => startHolder([modulePath, dir, 'turns', '900', '0', marker, '10']));
    await Promise.all(workers.map((worker) => worker.exited));
    expect(workers.map((worker) => worker.events)).toEqual(workers.map(() => [{ event: 'done', violations: 0 }]));
    expect(leaseFiles(dir)).toEqual([]);
  });

  it('a holder frozen past its TTL is taken over, and on waking stops and says so instead of fighting', async () => {
    const modulePath = build();
    const dir = makeTempDir();
    const frozen = startHolder([modulePath, dir, 'hold', '600', '0']);
    await waitFor(() => frozen.events[0]?.event === 'acquired', 'the first holder has the lease');
    frozen.child.kill('SIGSTOP');

    const recreated = startHolder([modulePath, dir, 'hold', '600', String(Number.POSITIVE_INFINITY)]);
    await waitFor(() => recreated.events[0]?.event === 'acquired', 'the new holder takes over the expired lease', 5_000);
    frozen.child.kill('SIGCONT');

    expect(await frozen.exited).toBe(3);
    expect(frozen.events[1]).toMatchObject({ event: 'lost', code: 'SIDECAR_OUTPUT_LEASE_LOST', message: expect.stringContaining((recreated.events[0]!.holder as { instance: string }).instance) });
    // The new holder keeps it: its file is the only one, and it is still renewed.
    expect(leaseFiles(dir)).toEqual(['..lease-000002']);
    recreated.child.kill('SIGTERM');
    expect(await recreated.exited).toBe(0);
    expect(leaseFiles(dir)).toEqual([]);
  });
});

describe('the lease in `run` and `once` (the CLI, against the fake Infisical)', () => {
  /** A `run` sidecar on `dir`, stopped by the returned function (as SIGTERM would). */
  function runSidecar(env: Record<string, string>) {
    let stop = () => undefined as void;
    const shutdown = new Promise<void>((resolve) => (stop = resolve));
    const result = runCommand(['run'], env, shutdown);
    onTestFinished(async () => {
      stop();
      await result;
    });
    return { result, stop };
  }
  const revisionOf = (dir: string) => Number(/^\.\.rev-(\d+)-/.exec(readlinkSync(path.join(dir, '..data')))?.[1]);

  it('a second `run` on the same directory exits 74 naming the first; a standby takes over when it stops; the revision continues', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    // A 1 s refresh: the rotation below must reach the standby whether its first pass ran before or after it.
    const env = glitchtipEnv(fake, dir, { SIDECAR_LEASE_TTL: '3s', SIDECAR_WATCH: 'false', SIDECAR_REFRESH_INTERVAL: '1s', SIDECAR_REFRESH_JITTER: '0', SIDECAR_MAX_STALENESS: '10s' });
    const first = runSidecar(env);
    await waitFor(() => existsSync(path.join(dir, 'secrets.env')), 'the first sidecar wrote its set');
    const holder = JSON.parse(readFileSync(path.join(dir, '..lease-000001'), 'utf8')) as { instance: string };

    const second = await runCommand(['run'], env);
    expect(second.code).toBe(EXIT_CODES.lease);
    expect(second.logs.lines().find((line) => line.msg === 'exiting')).toMatchObject({ code: 'SIDECAR_OUTPUT_LEASE_HELD', err: expect.stringContaining(holder.instance) });

    const once = await runCommand(['once'], { ...env, SIDECAR_ONCE_DEADLINE: '2s' });
    expect(once.code).toBe(EXIT_CODES.lease);

    const standby = runSidecar({ ...env, SIDECAR_LEASE_MODE: 'standby' });
    const revision = revisionOf(dir);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(JSON.parse(readFileSync(path.join(dir, '..lease-000001'), 'utf8'))).toMatchObject({ instance: holder.instance });
    first.stop();
    expect((await first.result).code).toBe(EXIT_CODES.ok);
    await waitFor(() => leaseFiles(dir).length === 1 && JSON.parse(readFileSync(path.join(dir, leaseFiles(dir)[0]!), 'utf8')).instance !== holder.instance, 'the standby holds the lease');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', guard.canary('rotated', 'plain'));
    await waitFor(() => revisionOf(dir) === revision + 1, 'the standby writes the next revision', 10_000);
    standby.stop();
    expect((await standby.result).code).toBe(EXIT_CODES.ok);
    expect(leaseFiles(dir)).toEqual([]);
  });

  it('`run` stops at start with the write code when another tool\'s files hold the output names', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    writeFileSync(path.join(dir, 'secrets.env'), 'OLD=1\n');
    // Stopped after 10 s if it does not stop by itself, so a regression fails here instead of running on.
    const { code, logs } = await runCommand(['run'], glitchtipEnv(fake, dir, { SIDECAR_WATCH: 'false' }), new Promise((resolve) => setTimeout(resolve, 10_000)));
    expect(code).toBe(EXIT_CODES.write);
    expect(logs.lines().find((line) => line.msg === 'exiting')).toMatchObject({ code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES' });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('OLD=1\n');
    expect(leaseFiles(dir)).toEqual([]);
  });
});

describe('odd lease files (review of issue 11)', () => {
  const settle = <T>(promise: Promise<T>, ms: number) => Promise.race([promise.then(() => 'done' as const, () => 'failed' as const), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms))]);

  for (const name of ['..lease-0000001', `..lease-${'9'.repeat(25)}`, '..lease-9007199254740993']) {
    it(`a planted ${name.slice(0, 20)}… is not a lease of this code: no hang, the lease is taken`, async () => {
      const dir = makeTempDir();
      writeFileSync(path.join(dir, name), '{}');
      const taker = lease(dir, 'sidecar-a');
      expect(await settle(taker.acquire({ waitMs: 0 }), 3_000)).toBe('done');
      expect(await settle(taker.assertHeld(), 3_000)).toBe('done');
    });
  }

  it('a lease file that is a link to /dev/zero or a FIFO is never read through; it is taken over as unreadable after the TTL', async () => {
    const dir = makeTempDir();
    symlinkSync('/dev/zero', path.join(dir, '..lease-000001'));
    execFileSync('mkfifo', [path.join(dir, '..lease-000002')]);
    const taker = lease(dir, 'sidecar-a', 300);
    expect(await settle(taker.acquire({ waitMs: 2_000 }), 5_000)).toBe('done');
  });

  it('a lease dated far in the future (a clock stepped back) or claiming a huge TTL does not hold the directory forever', async () => {
    const future = makeTempDir();
    await lease(future, 'gone').acquire({ waitMs: 0 });
    const ahead = new Date(Date.now() + 3_600_000);
    utimesSync(path.join(future, '..lease-000001'), ahead, ahead);
    expect(await settle(lease(future, 'sidecar-b').acquire({ waitMs: 0 }), 3_000)).toBe('done');

    const huge = makeTempDir();
    writeFileSync(path.join(huge, '..lease-000001'), JSON.stringify({ host: 'x', pid: 1, instance: 'i', ttlMs: 1e300, acquiredAt: '' }));
    const past = new Date(Date.now() - 3_700_000);
    utimesSync(path.join(huge, '..lease-000001'), past, past);
    expect(await settle(lease(huge, 'sidecar-c').acquire({ waitMs: 0 }), 3_000)).toBe('done');
  });
});
