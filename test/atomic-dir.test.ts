import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AtomicDirWriter, assertWritableDir } from '../src/output/atomic-dir.js';
import { WriteError } from '../src/errors.js';
import { makeTempDir } from './helpers/temp-dir.js';

const files = (env: string, key = 'v1') => [
  { path: 'secrets.env', content: Buffer.from(env) },
  { path: 'keys/A', content: Buffer.from(key) },
];

describe('AtomicDirWriter', () => {
  it('writes a versioned directory behind ..data and stable top-level links, with the requested mode', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    const result = await writer.write(files("A='1'\n"), { mode: 0o440 });

    expect(result).toMatchObject({ changed: true, revision: 1, filesWritten: 2, bytesWritten: 8, changedPaths: ['keys/A', 'secrets.env'] });
    const version = readlinkSync(path.join(dir, '..data'));
    expect(version).toMatch(/^\.\.rev-000001-/);
    expect(readlinkSync(path.join(dir, 'secrets.env'))).toBe('..data/secrets.env');
    expect(readlinkSync(path.join(dir, 'keys'))).toBe('..data/keys');
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe("A='1'\n");
    expect(readFileSync(path.join(dir, 'keys', 'A'), 'utf8')).toBe('v1');
    expect(statSync(path.join(dir, 'secrets.env')).mode & 0o777).toBe(0o440);
    expect(statSync(path.join(dir, 'keys', 'A')).mode & 0o777).toBe(0o440);
    expect(statSync(path.join(dir, version)).mode & 0o777).toBe(0o750);
  });

  it('does not touch the disk when the content is unchanged', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(files('x'), { mode: 0o440 });
    const before = readlinkSync(path.join(dir, '..data'));
    const mtime = statSync(path.join(dir, before, 'secrets.env')).mtimeMs;

    const result = await writer.write(files('x'), { mode: 0o440 });
    expect(result).toEqual({ changed: false, revision: 1, previousRevision: 1, bytesWritten: 0, filesWritten: 0, changedPaths: [] });
    expect(readlinkSync(path.join(dir, '..data'))).toBe(before);
    expect(statSync(path.join(dir, before, 'secrets.env')).mtimeMs).toBe(mtime);
  });

  it('swaps to a new version, keeps exactly one previous version, and drops vanished names', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(files('1'), { mode: 0o440 });
    await writer.write(files('2'), { mode: 0o440 });
    const third = await writer.write([{ path: 'secrets.env', content: Buffer.from('3') }], { mode: 0o440 });

    expect(third).toMatchObject({ revision: 3, changedPaths: ['keys/A', 'secrets.env'] });
    expect(readdirSync(dir).filter((e) => e.startsWith('..rev-')).sort()).toEqual([expect.stringMatching(/^\.\.rev-000002-/), expect.stringMatching(/^\.\.rev-000003-/)]);
    expect(() => lstatSync(path.join(dir, 'keys'))).toThrow(/ENOENT/);
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('3');
  });

  it('continues the revision and skips the rewrite after a restart with the same content', async () => {
    const dir = makeTempDir();
    await new AtomicDirWriter(dir).write(files('same'), { mode: 0o440 });
    const restarted = new AtomicDirWriter(dir);
    expect(await restarted.write(files('same'), { mode: 0o440 })).toMatchObject({ changed: false, revision: 1 });
    expect(await restarted.write(files('new'), { mode: 0o440 })).toMatchObject({ changed: true, revision: 2 });
  });

  it('restores a deleted top-level link even when the content is unchanged', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(files('x'), { mode: 0o440 });
    rmSync(path.join(dir, 'secrets.env'));
    expect(await writer.write(files('x'), { mode: 0o440 })).toMatchObject({ changed: true, revision: 1 });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('x');
  });

  it('leaves the previous set intact when a write fails half-way', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(files('good'), { mode: 0o440 });
    // A file and a directory of the same name cannot both exist: the second write fails mid-set.
    const broken = [{ path: 'secrets.env', content: Buffer.from('new') }, { path: 'keys', content: Buffer.from('x') }, { path: 'keys/A', content: Buffer.from('y') }];
    await expect(writer.write(broken, { mode: 0o440 })).rejects.toMatchObject({ code: 'SIDECAR_OUTPUT_UNWRITABLE' });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('good');
    expect(readdirSync(dir).filter((e) => e.startsWith('..rev-'))).toHaveLength(1);
  });

  it('refuses paths that would leave the output directory', async () => {
    const writer = new AtomicDirWriter(makeTempDir());
    for (const bad of ['../x', '/etc/passwd', 'a/../../b', '..data', 'keys/..x', '']) {
      await expect(writer.write([{ path: bad, content: Buffer.from('') }], { mode: 0o440 })).rejects.toBeInstanceOf(WriteError);
    }
  });

  it('cleans up what a crash mid-write left behind', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(files('x'), { mode: 0o440 });
    mkdirSync(path.join(dir, '..rev-000009-orphan'));
    writeFileSync(path.join(dir, '..data.tmp-abc'), '');
    await new AtomicDirWriter(dir).cleanUp();
    expect(readdirSync(dir).sort()).toEqual(['..data', readlinkSync(path.join(dir, '..data')), 'keys', 'secrets.env'].sort());
  });
});

describe('assertWritableDir', () => {
  it('passes on a writable directory and leaves nothing behind', async () => {
    const dir = makeTempDir();
    await assertWritableDir(dir);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('names the directory and the errno when it is missing, a file, or read-only', async () => {
    const dir = makeTempDir();
    await expect(assertWritableDir(path.join(dir, 'missing'))).rejects.toThrow(/SIDECAR_OUTPUT_DIR .*missing is not writable: ENOENT/);
    writeFileSync(path.join(dir, 'file'), '');
    await expect(assertWritableDir(path.join(dir, 'file'))).rejects.toThrow(/not writable: ENOTDIR/);
    if (process.getuid?.() !== 0) {
      chmodSync(dir, 0o500);
      await expect(assertWritableDir(dir)).rejects.toThrow(/not writable: EACCES/);
    }
  });
});
