/**
 * The output volume misbehaving. A real, small tmpfs (the production medium) too full for the next
 * set (bytes, then inodes; a 1 MiB value on the production-sized 4 MiB volume), and remounted
 * read-only under a running sidecar; a read-only, missing or non-directory output path at start. The
 * promises: the old set stays whole and readable, the error says what and where
 * (`SIDECAR_OUTPUT_FULL` with what the set needs and what the volume has, `SIDECAR_OUTPUT_UNWRITABLE`
 * with the errno), nothing half-written is left behind, and the sidecar recovers by itself once the
 * volume is fixed. Start-up failures exit 73 before anything listens.
 */
import { mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/errors.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';
import { leakGuard } from '../helpers/canaries.js';
import { health, outputFiles, scenario, versionDirs } from '../helpers/scenario.js';
import { FAST, glitchtipEnv, runCommand } from '../helpers/sidecar.js';
import { mountTmpfs, remount, TMPFS_SKIP_REASON } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(TMPFS_SKIP_REASON ? 1_000 : 10_000);
const PATIENCE_MS = 8_000;
const skipNote = TMPFS_SKIP_REASON ? ` — SKIPPED: ${TMPFS_SKIP_REASON}` : '';
const withTmpfs = it.skipIf(TMPFS_SKIP_REASON !== undefined);

const freeBytes = (dir: string) => {
  const stats = statfsSync(dir);
  return stats.bavail * stats.bsize;
};
const freeInodes = (dir: string) => statfsSync(dir).ffree;

describe.concurrent('a full volume', () => {
  withTmpfs(`tmpfs too full for the next set: refused before a byte is written with what it needs and what is free, old set intact, recovery when space returns${skipNote}`, async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = mountTmpfs(onTestFinished, 2048);
    const { app, logs } = s.app(glitchtipEnv(fake, dir, { ...FAST, SIDECAR_MAX_STALENESS: '30s' }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);
    const versionsBefore = versionDirs(dir);

    // A 256 KiB value lands in four outputs (~1 MiB in all); leave room for the first one or two only.
    const big = `${guard.canary('big', 'plain')}-${'x'.repeat(256 * 1024)}`;
    const filler = path.join(dir, '..filler');
    writeFileSync(filler, Buffer.alloc(freeBytes(dir) - 400 * 1024));
    const freeWhenFull = freeBytes(dir);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', big);

    const full = await waitFor(async () => {
      const h = await health(app);
      return h.body.consecutiveFailures >= 2 ? h : undefined;
    }, 'two failed writes', PATIENCE_MS);
    expect(full.statusCode).toBe(200); // still fresh: degraded, the consumer keeps running
    expect(full.body.lastError).toMatchObject({ code: 'SIDECAR_OUTPUT_FULL' });
    expect(full.body.lastError?.message).toMatch(new RegExp(`^${dir}: the new set needs \\d+ KiB and \\d+ inodes next to the live one; the volume has \\d+ KiB of \\d+ KiB`));
    expect(full.body.lastError?.hint).toMatch(/Raise the tmpfs size/);
    expect(outputFiles(dir)).toEqual(baseline);
    expect(versionDirs(dir)).toEqual(versionsBefore); // no version was started…
    expect(freeBytes(dir)).toBe(freeWhenFull); // …and no byte written
    const failure = logs.lines().find((line) => line.code === 'SIDECAR_OUTPUT_FULL')!;
    expect(failure.msg).toBe('sync failed; last good files kept');

    rmSync(filler);
    const back = await waitFor(async () => {
      const h = await health(app);
      return h.body.status === 'ok' && h.body.revision === 2 ? h : undefined;
    }, 'recovery once space returned', PATIENCE_MS);
    expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).toBe(big);
    expect(versionDirs(dir)).toHaveLength(2); // the new version and the one before it, nothing else
  });

  // The check before the write counts inodes too. (The write still makes directories one level at a
  // time: `mkdir(…, { recursive: true })` reports ENOSPC as ENOENT on Node 20.)
  withTmpfs(`tmpfs out of inodes for the next set: same promises, recovery after remounting with more inodes${skipNote}`, async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = mountTmpfs(onTestFinished, 1024, ['nr_inodes=64']);
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);
    const versionsBefore = versionDirs(dir);

    // Leave room for a few inodes only: the next version's directory fits, its files do not.
    const hog = path.join(dir, '..hog');
    mkdirSync(hog);
    for (let i = 0; freeInodes(dir) > 4 && i < 100; i++) writeFileSync(path.join(hog, String(i)), '');
    const rotated = guard.canary('inodes', 'plain');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);

    const full = await waitFor(async () => {
      const h = await health(app);
      return h.body.lastError ? h : undefined;
    }, 'a failed write', PATIENCE_MS);
    expect(full.body.lastError).toMatchObject({ code: 'SIDECAR_OUTPUT_FULL' });
    expect(outputFiles(dir)).toEqual(baseline);
    expect(versionDirs(dir)).toEqual(versionsBefore);
    const message = full.body.lastError?.message;

    remount(dir, 'nr_inodes=4096');
    await waitFor(() => readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8') === rotated, 'recovery with more inodes', PATIENCE_MS);
    expect(message, message).toMatch(/needs \d+ KiB and \d+ inodes .* and [0-4] inodes free/);
  });

  withTmpfs(`volume remounted read-only under a running sidecar: files still served, EROFS named, stale at the bound, recovery on rw${skipNote}`, async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = mountTmpfs(onTestFinished, 1024);
    const { app, logs } = s.app(glitchtipEnv(fake, dir, FAST));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.status === 'ok', 'first sync');
    const baseline = outputFiles(dir);

    remount(dir, 'ro');
    onTestFinished(() => remount(dir, 'rw'));
    const rotated = guard.canary('readonly', 'plain');
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', rotated);
    const stale = await waitFor(async () => {
      const h = await health(app);
      // Stale comes with time alone; wait for it together with the failed write it is about.
      return h.body.status === 'stale' && h.body.lastError ? h : undefined;
    }, 'stale while read-only, after a failed write', PATIENCE_MS);
    expect(stale.statusCode).toBe(503);
    expect(stale.body.lastError).toMatchObject({ code: 'SIDECAR_OUTPUT_UNWRITABLE' });
    expect(stale.body.lastError?.message).toMatch(/EROFS/);
    expect(outputFiles(dir)).toEqual(baseline);

    remount(dir, 'rw');
    await waitFor(async () => (await health(app)).body.status === 'ok', 'recovery after rw', PATIENCE_MS);
    expect(readFileSync(path.join(dir, 'keys', 'SECRET_KEY'), 'utf8')).toBe(rotated);
  });
});

describe.concurrent('an unusable output directory at start: exit 73, before serving anything', () => {
  withTmpfs(`read-only volume: run and once both exit 73 naming EROFS${skipNote}`, async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const dir = mountTmpfs(onTestFinished, 64, ['ro']);
    for (const command of ['run', 'once']) {
      const result = await runCommand([command], glitchtipEnv(fake, dir, FAST));
      expect(result.code, command).toBe(EXIT_CODES.write);
      const exiting = result.logs.lines().find((line) => line.msg === 'exiting')!;
      expect(exiting.code).toBe('SIDECAR_OUTPUT_UNWRITABLE');
      expect(exiting.err).toBe(`SIDECAR_OUTPUT_DIR ${dir} is not writable: EROFS`);
      expect(exiting.hint).toMatch(/Mount a writable volume at SIDECAR_OUTPUT_DIR/);
      expect(result.logs.lines().some((line) => line.msg === 'health server listening')).toBe(false);
    }
    expect(fake.requests).toEqual([]); // it did not even log in
  });

  it('missing directory and a file in its place: run and once exit 73 naming ENOENT / ENOTDIR', async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    const parent = s.tempDir();
    writeFileSync(path.join(parent, 'a-file'), '');
    for (const [name, errno] of [
      ['missing', 'ENOENT'],
      ['a-file', 'ENOTDIR'],
    ] as const) {
      for (const command of ['run', 'once']) {
        const dir = path.join(parent, name);
        const result = await runCommand([command], glitchtipEnv(fake, dir, FAST));
        expect(result.code, `${command} ${name}`).toBe(EXIT_CODES.write);
        expect(result.logs.lines().find((line) => line.msg === 'exiting')).toMatchObject({
          code: 'SIDECAR_OUTPUT_UNWRITABLE',
          err: `SIDECAR_OUTPUT_DIR ${dir} is not writable: ${errno}`,
        });
      }
    }
    expect(fake.requests).toEqual([]);
  });

  withTmpfs(`a 1 MiB value on the production-sized 4 MiB tmpfs in all four formats: once exits 73 with SIDECAR_OUTPUT_FULL naming the need, nothing written; in the files format alone it fits${skipNote}`, async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', `${guard.canary('mib', 'plain')}${'m'.repeat(1024 * 1024)}`);
    const dir = mountTmpfs(onTestFinished, 4096);
    const free = freeBytes(dir);
    const all = await runCommand(['once'], glitchtipEnv(fake, dir, { ...FAST, SIDECAR_OUTPUTS: 'env,dotenv,json,files' }));
    expect(all.code).toBe(EXIT_CODES.write);
    const exiting = all.logs.lines().find((line) => line.msg === 'exiting') as { code: string; err: string };
    expect(exiting.code).toBe('SIDECAR_OUTPUT_FULL');
    expect(exiting.err).toMatch(/the new set needs (\d+) KiB .* the volume has (\d+) KiB of 4096 KiB/);
    expect(freeBytes(dir), 'no byte of the set; at most the lease and probe bookkeeping').toBeGreaterThanOrEqual(free - 8 * 1024);
    expect(versionDirs(dir)).toEqual([]);

    const filesOnly = await runCommand(['once'], glitchtipEnv(fake, dir, { ...FAST, SIDECAR_OUTPUTS: 'files' }));
    expect(filesOnly.code).toBe(0);
    expect(readFileSync(path.join(dir, 'keys', 'EMAIL_URL')).length).toBeGreaterThan(1024 * 1024);
  });

  withTmpfs(`volume already full at start: exit 73 naming ENOSPC${skipNote}`, async ({ onTestFinished, expect }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    const dir = mountTmpfs(onTestFinished, 64);
    writeFileSync(path.join(dir, '..filler'), Buffer.alloc(freeBytes(dir)));
    const result = await runCommand(['once'], glitchtipEnv(fake, dir, FAST));
    expect(result.code).toBe(EXIT_CODES.write);
    expect(result.logs.lines().find((line) => line.msg === 'exiting')).toMatchObject({
      code: 'SIDECAR_OUTPUT_UNWRITABLE',
      err: `SIDECAR_OUTPUT_DIR ${dir} is not writable: ENOSPC`,
    });
  });
});
