/**
 * What the writer finds on a volume it did not prepare:
 * a planted `..data`, files left by an older tool where its outputs go, an owner it cannot apply,
 * an output directory that is a symbolic link. Each is met at start with a clear code and message,
 * never by reading through a link or destroying someone else's files.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AtomicDirWriter, assertWritableDir } from '../src/output/atomic-dir.js';
import { EXIT_CODES } from '../src/errors.js';
import { leakGuard } from './helpers/canaries.js';
import { glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { transpileFromSrc } from './helpers/transpile.js';

const guard = leakGuard(500);
const MODE = { mode: 0o440 };
const set = (value: string) => [
  { path: 'secrets.env', content: Buffer.from(`A='${value}'\n`) },
  { path: 'keys/A', content: Buffer.from(value) },
];

describe('a planted ..data is reported and replaced, never read through', () => {
  it('..data pointing at a version name that is a symbolic link to another directory', async () => {
    const dir = makeTempDir();
    const elsewhere = makeTempDir('elsewhere-');
    writeFileSync(path.join(elsewhere, 'secrets.env'), 'PLANTED=1\n');
    symlinkSync(elsewhere, path.join(dir, '..rev-000999-planted'));
    symlinkSync('..rev-000999-planted', path.join(dir, '..data'));

    const writer = new AtomicDirWriter(dir);
    const found = await writer.cleanUp();
    expect(found).toEqual([expect.stringMatching(/\.\.data → \.\.rev-000999-planted, which is a symbolic link/)]);
    expect(() => lstatSync(path.join(dir, '..rev-000999-planted'))).toThrow(/ENOENT/);
    expect(await writer.readManifest()).toBeUndefined();

    const result = await writer.write(set('1'), MODE);
    expect(result).toMatchObject({ changed: true, revision: 1, previousRevision: 0 });
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe("A='1'\n");
    // The directory the link pointed at is not ours: untouched.
    expect(readdirSync(elsewhere)).toEqual(['secrets.env']);
  });

  it('..data pointing outside the directory, or a plain file or directory named ..data', async () => {
    const outside = makeTempDir('outside-');
    writeFileSync(path.join(outside, 'secrets.env'), 'PLANTED=1\n');
    for (const plant of [
      (dir: string) => symlinkSync(outside, path.join(dir, '..data')),
      (dir: string) => writeFileSync(path.join(dir, '..data'), 'x'),
      (dir: string) => mkdirSync(path.join(dir, '..data', 'inner'), { recursive: true }),
    ]) {
      const dir = makeTempDir();
      plant(dir);
      const writer = new AtomicDirWriter(dir);
      const found = await writer.cleanUp();
      expect(found).toEqual([expect.stringMatching(new RegExp(`^\\.\\.data (→ ${outside}|is a regular file|is a directory)`))]);
      expect(await writer.write(set('1'), MODE)).toMatchObject({ changed: true, revision: 1 });
      expect(readlinkSync(path.join(dir, '..data'))).toMatch(/^\.\.rev-000001-/);
    }
    expect(readdirSync(outside)).toEqual(['secrets.env']);
  });

  it('a real version directory behind ..data is trusted as before, and nothing is reported', async () => {
    const dir = makeTempDir();
    await new AtomicDirWriter(dir).write(set('1'), MODE);
    const restarted = new AtomicDirWriter(dir);
    expect(await restarted.cleanUp()).toEqual([]);
    expect(await restarted.write(set('2'), MODE)).toMatchObject({ revision: 2, previousRevision: 1 });
  });
});

describe('files left by an older tool where the outputs go', () => {
  it('a plain secrets.env and a secrets.json/ directory: the write is refused naming both, and nothing is touched', async () => {
    const dir = makeTempDir();
    writeFileSync(path.join(dir, 'secrets.env'), 'OLD=1\n');
    mkdirSync(path.join(dir, 'secrets.json'));
    writeFileSync(path.join(dir, 'secrets.json', 'inside'), 'x');
    const files = [...set('1'), { path: 'secrets.json', content: Buffer.from('{}') }];

    const writer = new AtomicDirWriter(dir);
    const error = await writer.write(files, MODE).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toMatchObject({ code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES', exitCode: EXIT_CODES.write });
    expect((error as Error).message).toMatch(/secrets\.env \(a regular file\), secrets\.json \(a directory\)/);
    // Never a volume left empty: the older tool's files are exactly as they were, nothing of ours was left.
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('OLD=1\n');
    expect(readdirSync(path.join(dir, 'secrets.json'))).toEqual(['inside']);
    expect(readdirSync(dir).sort()).toEqual(['secrets.env', 'secrets.json']);
  });

  it('with a live set, a plain file at a name added later is left alone and reported; the rest of the set goes live', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(set('1'), MODE);
    writeFileSync(path.join(dir, 'secrets.json'), '{"OLD":1}');

    const result = await writer.write([...set('2'), { path: 'secrets.json', content: Buffer.from('{"A":"2"}') }], MODE);
    expect(result).toMatchObject({ changed: true, revision: 2, publishError: { code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES' } });
    expect(result.publishError?.message).toContain('secrets.json (a regular file)');
    expect(readFileSync(path.join(dir, 'secrets.json'), 'utf8')).toBe('{"OLD":1}');
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe("A='2'\n");
    // Still not ours on the next pass, nor after a restart.
    expect((await writer.write([...set('2'), { path: 'secrets.json', content: Buffer.from('{"A":"2"}') }], MODE)).publishError?.code).toBe('SIDECAR_OUTPUT_FOREIGN_ENTRIES');
    expect((await new AtomicDirWriter(dir).write([...set('2'), { path: 'secrets.json', content: Buffer.from('{"A":"2"}') }], MODE)).publishError?.code).toBe('SIDECAR_OUTPUT_FOREIGN_ENTRIES');
    expect(readFileSync(path.join(dir, 'secrets.json'), 'utf8')).toBe('{"OLD":1}');
  });

  it('names the writer already owns are repaired, not refused: a file put over a live link is replaced', async () => {
    const dir = makeTempDir();
    const writer = new AtomicDirWriter(dir);
    await writer.write(set('1'), MODE);
    // Someone replaced our link by a plain file: that name is ours, so the set is restored (self-healing).
    writeFileSync(path.join(dir, 'secrets.env.tmp'), 'EDITED=1\n');
    const { renameSync } = await import('node:fs');
    renameSync(path.join(dir, 'secrets.env.tmp'), path.join(dir, 'secrets.env'));
    expect(await writer.repair(MODE)).toEqual(['links']);
    expect(readlinkSync(path.join(dir, 'secrets.env'))).toBe('..data/secrets.env');
  });

  it('`once` exits at start with the write code and names the entries and the fix', async () => {
    const fake = await startFake();
    guard.seed(fake);
    const dir = makeTempDir();
    writeFileSync(path.join(dir, 'secrets.env'), 'OLD=1\n');
    const { code, logs } = await runCommand(['once'], glitchtipEnv(fake, dir));
    expect(code).toBe(EXIT_CODES.write);
    const exiting = logs.lines().find((line) => line.msg === 'exiting');
    expect(exiting).toMatchObject({ code: 'SIDECAR_OUTPUT_FOREIGN_ENTRIES', err: expect.stringContaining('secrets.env (a regular file)') });
    expect(String(exiting?.hint)).toMatch(/[Mm]ove/);
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe('OLD=1\n');
  });
});

describe('the start-up probe', () => {
  it('checks that SIDECAR_FILE_GID can be applied, and names the fix', () => {
    // A process that is not root cannot give a file a group it is not a member of. As root, the
    // probe runs in a child process as nobody (65534) with no supplementary groups.
    const build = makeTempDir('probe-build-');
    const dir = makeTempDir('probe-out-');
    const modulePath = transpileFromSrc('output/atomic-dir.ts', build);
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      chmodSync(build, 0o755);
      chownSync(dir, 65_534, 65_534);
    }
    const script = `const { assertWritableDir } = await import(${JSON.stringify(modulePath)});
      try { await assertWritableDir(${JSON.stringify(dir)}, { gid: 4242 }); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, hint: e.hint })); }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      ...(asRoot ? { uid: 65_534, gid: 65_534 } : {}),
    });
    expect(child.stderr).toBe('');
    const result = JSON.parse(child.stdout) as Record<string, string>;
    expect(result).toMatchObject({ code: 'SIDECAR_OUTPUT_OWNERSHIP', message: expect.stringMatching(/SIDECAR_FILE_GID=4242.*EPERM/) });
    expect(result.hint).toMatch(/user: "65532:4242"|group_add/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('applies SIDECAR_FILE_UID/GID it is allowed to use, and leaves nothing behind', async () => {
    const dir = makeTempDir();
    await assertWritableDir(dir, { uid: process.getuid?.(), gid: process.getgid?.() });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a symbolic link as SIDECAR_OUTPUT_DIR is refused with its own code, naming where it points', async () => {
    const parent = makeTempDir();
    mkdirSync(path.join(parent, 'real'));
    symlinkSync(path.join(parent, 'real'), path.join(parent, 'link'));
    await expect(assertWritableDir(path.join(parent, 'link'))).rejects.toMatchObject({
      code: 'SIDECAR_OUTPUT_DIR_SYMLINK',
      exitCode: EXIT_CODES.write,
      message: expect.stringContaining(`is a symbolic link to ${path.join(parent, 'real')}`),
    });
  });
});
