/**
 * A co-tenant of the volume cannot make the sidecar spin: a planted lease file at the highest lease
 * number there can be is refused at once with the file named and the fix, and `once` keeps its
 * deadline; every retry of the lease loop waits.
 */
import { existsSync, lutimesSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { OutputLease } from '../src/output/lease.js';
import { ManualClock } from './helpers/clock.js';
import { FAST, glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const HIGHEST = '..lease-999999999999999';

function plant(dir: string, name: string, clock: ManualClock, ageMs: number): void {
  const file = path.join(dir, name);
  writeFileSync(file, '{"host":"planted","pid":1,"instance":"x","ttlMs":1000,"acquiredAt":""}\n');
  const at = new Date(clock.now() - ageMs);
  utimesSync(file, at, at);
}

describe('a planted lease file', () => {
  it('at the highest number, expired: once fails at once naming the file and the fix, instead of spinning', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir('lease-planted-');
    plant(dir, HIGHEST, clock, 3_600_000);
    const result = await runCommand(['once'], glitchtipEnv(fake, dir, { ...FAST, SIDECAR_WATCH: 'false' }), undefined, clock);
    expect(result.code).not.toBe(0);
    const failure = result.logs.lines().find((line) => typeof line.code === 'string' && String(line.code).startsWith('SIDECAR_OUTPUT_LEASE')) as { code: string; err?: string; msg: string } | undefined;
    expect(JSON.stringify(failure ?? result.stderr)).toContain(HIGHEST);
    expect(`${result.stderr}\n${result.logs.text()}`).toContain('remove it');
    expect(fake.requests, 'nothing was fetched for a directory it cannot hold').toEqual([]);
  });

  it('a dangling symbolic link under a lease name is judged as an unreadable lease, never followed: once takes over after it and writes', async () => {
    const clock = new ManualClock();
    const fake = await startFake({ clock });
    const dir = makeTempDir('lease-planted-');
    const link = path.join(dir, '..lease-000009');
    symlinkSync('/nonexistent/lease', link);
    const old = new Date(clock.now() - 3_600_000);
    lutimesSync(link, old, old);
    const result = await runCommand(['once'], glitchtipEnv(fake, dir, { ...FAST, SIDECAR_WATCH: 'false' }), undefined, clock);
    expect(result.code, result.logs.text()).toBe(0);
    expect(existsSync(path.join(dir, 'secrets.env'))).toBe(true);
    expect(existsSync(link), 'the expired link is cleaned up like any lower lease').toBe(false);
  });

  it('one below the highest number, expired: taken over as usual', async () => {
    const clock = new ManualClock();
    const dir = makeTempDir('lease-planted-');
    plant(dir, '..lease-999999999999998', clock, 3_600_000);
    const lease = new OutputLease(dir, { ttlMs: 1_000, clock });
    onTestFinished(() => lease.release());
    await lease.acquire({ waitMs: 1_000 });
    await expect(lease.assertHeld()).resolves.toBeUndefined();
  });
});
