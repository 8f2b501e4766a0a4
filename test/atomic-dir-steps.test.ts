/**
 * The writer's promise at every step of a write (src/output/atomic-dir.ts, steps 1–3): a failure
 * before the `..data` rename leaves the old set and the old revision; a failure after it leaves the
 * new set, complete, behind every name that existed before, and is reported, never undone.
 *
 * Faults that a real file system produces on demand (EISDIR from a planted directory) are made that
 * way; the rest (ENOSPC, EMFILE at one exact call) are injected into node:fs/promises, because a
 * full volume or a descriptor limit cannot be made to hit one particular call.
 */
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { makeTempDir } from './helpers/temp-dir.js';

/** Which fs call fails next, and how; consulted by the mock below. */
const faults = vi.hoisted(() => ({
  plan: undefined as undefined | { call: 'symlink' | 'rename' | 'open' | 'mkdir' | 'readdir'; when: (target: string) => boolean; code: string },
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const failing =
    <A extends unknown[], R>(call: NonNullable<typeof faults.plan>['call'], original: (...args: A) => Promise<R>, targetOf: (...args: A) => string) =>
    async (...args: A): Promise<R> => {
      const plan = faults.plan;
      if (plan?.call === call && plan.when(targetOf(...args))) {
        throw Object.assign(new Error(`${plan.code}: injected, ${call} '${targetOf(...args)}'`), { code: plan.code, syscall: call });
      }
      return original(...args);
    };
  return {
    ...real,
    symlink: failing('symlink', real.symlink, (_target, link) => String(link)),
    rename: failing('rename', real.rename, (_from, to) => String(to)),
    open: failing('open', real.open, (file) => String(file)),
    mkdir: failing('mkdir', real.mkdir, (dir) => String(dir)),
    readdir: failing('readdir', real.readdir as (dir: string, options?: unknown) => Promise<unknown>, (dir) => String(dir)),
  };
});

afterEach(() => {
  faults.plan = undefined;
});

const MODE = { mode: 0o440 };
const v1 = [
  { path: 'secrets.env', content: Buffer.from("A='1'\n") },
  { path: 'keys/A', content: Buffer.from('1') },
];
/** Version 2 changes A and adds a top-level name (`secrets.json`) that version 1 did not have. */
const v2 = [
  { path: 'secrets.env', content: Buffer.from("A='2'\n") },
  { path: 'secrets.json', content: Buffer.from('{"A":"2"}') },
  { path: 'keys/A', content: Buffer.from('2') },
];

function readSet(dir: string): Record<string, string> {
  return { env: readFileSync(path.join(dir, 'secrets.env'), 'utf8'), key: readFileSync(path.join(dir, 'keys', 'A'), 'utf8') };
}

function versions(dir: string): string[] {
  return readdirSync(dir).filter((entry) => entry.startsWith('..rev-'));
}

async function writtenOnce(): Promise<{ dir: string; writer: AtomicDirWriter }> {
  const dir = makeTempDir();
  const writer = new AtomicDirWriter(dir);
  await writer.write(v1, MODE);
  return { dir, writer };
}

describe('a failure in step 1 (prepare) or step 2 (commit) keeps the old set and revision', () => {
  const cases = [
    { step: 'prepare: mkdir of the version directory', plan: { call: 'mkdir', when: (p: string) => /\.\.rev-000002-[^/]+$/.test(p), code: 'ENOSPC' } },
    { step: 'prepare: a file (EMFILE)', plan: { call: 'open', when: (p: string) => p.endsWith('/keys/A') && p.includes('..rev-000002'), code: 'EMFILE' } },
    { step: 'commit: the temp link for ..data (inodes)', plan: { call: 'symlink', when: (p: string) => p.includes('..data.tmp-'), code: 'ENOSPC' } },
    { step: 'commit: the rename over ..data', plan: { call: 'rename', when: (p: string) => p.endsWith('/..data'), code: 'EIO' } },
  ] as const;

  for (const { step, plan } of cases) {
    it(step, async () => {
      const { dir, writer } = await writtenOnce();
      const live = readlinkSync(path.join(dir, '..data'));
      faults.plan = plan;
      await expect(writer.write(v2, MODE)).rejects.toMatchObject({ code: plan.code === 'ENOSPC' ? 'SIDECAR_OUTPUT_FULL' : 'SIDECAR_OUTPUT_UNWRITABLE', message: expect.stringContaining(plan.code) });
      faults.plan = undefined;

      expect(readSet(dir)).toEqual({ env: "A='1'\n", key: '1' });
      expect(readlinkSync(path.join(dir, '..data'))).toBe(live);
      expect(versions(dir)).toEqual([live]);
      expect(writer.revision).toBe(1);
      expect(readdirSync(dir).filter((entry) => entry.startsWith('..data.tmp'))).toEqual([]);
      // The next write succeeds and continues the revision.
      expect(await writer.write(v2, MODE)).toMatchObject({ changed: true, revision: 2 });
      expect(readSet(dir)).toEqual({ env: "A='2'\n", key: '2' });
    });
  }
});

describe('a failure in step 3 (publish) keeps the new set live and is reported, not undone', () => {
  it('a directory planted where a new top-level name goes is left alone and reported, and never makes the live set unreadable', async () => {
    const { dir, writer } = await writtenOnce();
    mkdirSync(path.join(dir, 'secrets.json', 'in-the-way'), { recursive: true });

    const result = await writer.write(v2, MODE);
    // Not a rename that fails with EISDIR any more: an entry the writer did not make is never
    // replaced, and is named as such (a plain file there would have been destroyed).
    expect(result).toMatchObject({ changed: true, revision: 2, publishError: { code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES' } });
    expect(result.publishError?.message).toMatch(/secrets\.json \(a directory\); those names are not published/);

    // Every name that existed before reads the new set, complete.
    expect(readSet(dir)).toEqual({ env: "A='2'\n", key: '2' });
    const live = readlinkSync(path.join(dir, '..data'));
    expect(live).toMatch(/^\.\.rev-000002-/);
    expect(statSync(path.join(dir, live)).isDirectory()).toBe(true);
    expect(writer.revision).toBe(2);
    // The planted directory is not ours: left as it was.
    expect(readdirSync(path.join(dir, 'secrets.json'))).toEqual(['in-the-way']);
  });

  const linkFaults = [
    { name: 'ENOSPC (inodes) at a top-level link', plan: { call: 'symlink', when: (p: string) => p.includes('..data.tmp-'), code: 'ENOSPC' } },
    { name: 'EMFILE at the rename of a top-level link', plan: { call: 'rename', when: (p: string) => p.endsWith('/secrets.json'), code: 'EMFILE' } },
    { name: 'EMFILE at the directory fsync', plan: { call: 'open', when: (p: string) => !p.includes('..rev-') && !p.includes('..data'), code: 'EMFILE' } },
    { name: 'EIO while pruning old versions', plan: { call: 'readdir', when: () => true, code: 'EIO' } },
  ] as const;

  for (const { name, plan } of linkFaults) {
    it(name, async () => {
      const { dir, writer } = await writtenOnce();
      // Fail only after the commit: let the ..data rename through, then arm the fault.
      const realDataTarget = () => readlinkSync(path.join(dir, '..data'));
      const before = realDataTarget();
      faults.plan = { ...plan, when: (p: string) => realDataTarget() !== before && plan.when(p) };

      const result = await writer.write(v2, MODE);
      faults.plan = undefined;
      expect(result).toMatchObject({ changed: true, revision: 2, publishError: { code: plan.code === 'ENOSPC' ? 'SIDECAR_OUTPUT_FULL' : 'SIDECAR_OUTPUT_UNWRITABLE' } });
      expect(result.publishError?.message).toContain(plan.code);
      if (plan.code === 'ENOSPC') expect(result.publishError?.message).toContain('the new set is live');
      expect(readSet(dir)).toEqual({ env: "A='2'\n", key: '2' });
      expect(readlinkSync(path.join(dir, '..data'))).toMatch(/^\.\.rev-000002-/);

      // The next write of the same content repairs what is missing, same revision.
      const repaired = await writer.write(v2, MODE);
      expect(repaired.publishError).toBeUndefined();
      expect(repaired.revision).toBe(2);
      expect(readFileSync(path.join(dir, 'secrets.json'), 'utf8')).toBe('{"A":"2"}');
      expect(versions(dir).length).toBeLessThanOrEqual(2);
      expect(await writer.write(v2, MODE)).toMatchObject({ changed: false, revision: 2 });
    });
  }

  it('the live version survives a publish failure followed by a restart of the writer', async () => {
    const { dir, writer } = await writtenOnce();
    mkdirSync(path.join(dir, 'secrets.json'));
    await writer.write(v2, MODE);
    const restarted = new AtomicDirWriter(dir);
    await restarted.cleanUp();
    expect(readSet(dir)).toEqual({ env: "A='2'\n", key: '2' });
    expect(restarted.revision).toBe(0); // not loaded yet
    await restarted.readManifest(); // loads the version on disk
    expect(restarted.revision).toBe(2);
  });
});

describe('odd states a volume can be left in', () => {
  it('every remaining name is still linked when one new name cannot be (publish goes on past a failure)', async () => {
    const { dir, writer } = await writtenOnce();
    mkdirSync(path.join(dir, 'secrets.json'));
    const result = await writer.write([...v2, { path: 'secrets.dotenv', content: Buffer.from('A=2\n') }], MODE);
    expect(result.publishError).toBeDefined();
    expect(readFileSync(path.join(dir, 'secrets.dotenv'), 'utf8')).toBe('A=2\n');
  });

  it('a ..data pointing to a deleted version: the newest complete version is served again and the revision never goes back', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(v1, MODE, Buffer.from('{}'));
    await writer.write(v2, MODE, Buffer.from('{}'));
    rmSync(path.join(dir, readlinkSync(path.join(dir, '..data'))), { recursive: true });

    const restarted = new AtomicDirWriter(dir);
    const found = await restarted.cleanUp();
    expect(found.join('\n')).toMatch(/newest complete version again: \.\.rev-000001-/);
    expect(readSet(dir)).toEqual({ env: "A='1'\n", key: '1' });
    expect(await restarted.write(v2, MODE, Buffer.from('{}'))).toMatchObject({ revision: 2, previousRevision: 1 });
  });

  it('a ..data that is not trusted and no complete version: the next write continues above the highest revision on disk', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(v1, MODE);
    await writer.write(v2, MODE); // no manifest: not known to be complete
    rmSync(path.join(dir, '..data'));
    const restarted = new AtomicDirWriter(dir);
    await restarted.cleanUp();
    expect(await restarted.write(v1, MODE)).toMatchObject({ revision: 3, previousRevision: 2 });
  });

  for (const [name, plant] of [
    ['a directory', (file: string) => mkdirSync(file)],
    ['a short file', (file: string) => writeFileSync(file, 'short')],
    ['a symbolic link', (file: string) => symlinkSync('/dev/zero', file)],
  ] as const) {
    it(`a ..digest-key that is ${name} is replaced by a fresh key, never read through`, async () => {
      const dir = makeTempDir();
      const writer = new AtomicDirWriter(dir);
      plant(path.join(dir, '..digest-key'));
      const key = await writer.digestKey();
      expect(key).toHaveLength(32);
      expect(lstatSync(path.join(dir, '..digest-key')).isFile()).toBe(true);
      expect(await writer.digestKey()).toEqual(key);
    });
  }

  it('repair with a directory in the way of a published name reports it and writes no new version (no loop of swaps)', async () => {
    const { dir, writer } = await writtenOnce();
    rmSync(path.join(dir, 'secrets.env'));
    mkdirSync(path.join(dir, 'secrets.env', 'full'), { recursive: true });
    const before = versions(dir);
    await expect(writer.repair(MODE)).rejects.toMatchObject({ code: expect.stringMatching(/^SIDECAR_OUTPUT_/) });
    expect(versions(dir)).toEqual(before);
    expect(readFileSync(path.join(dir, 'keys', 'A'), 'utf8')).toBe('1');
  });
});
