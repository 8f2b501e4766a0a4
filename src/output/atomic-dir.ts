/**
 * All-or-nothing writes of a whole set of files, as kubelet's AtomicWriter does for Secret volumes.
 *
 *   OUTPUT_DIR/
 *     ..rev-000007-k3J9aQ/      one complete version: secrets.env, secrets.json, keys/…
 *     ..data -> ..rev-000007-k3J9aQ
 *     secrets.env -> ..data/secrets.env      (one stable symlink per top-level name)
 *     keys -> ..data/keys
 *     ..digest-key                          0400, see `digestKey()`
 *
 * A new version is written into a fresh directory (each file: create with O_EXCL, write, chmod and
 * chown before it is visible, fsync), then `..data` is replaced by a rename, which is atomic. A
 * reader therefore sees the old set or the new set, never a mix or a torn file, provided it resolves
 * `..data` once (a single-file reader always does). The previous version is kept until the next
 * change, so a reader that resolved `..data` just before a swap can still finish. Consumers must
 * mount the *directory*: a single-file bind mount pins the old inode.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { WriteError } from '../errors.js';
import type { RenderedFile } from '../render/index.js';

export interface WriteOptions {
  readonly mode: number;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

export interface WriteResult {
  /** False when the set on disk already matched byte for byte: nothing was written. */
  readonly changed: boolean;
  /** Counts up by one per written version; survives restarts (it is part of the directory name). */
  readonly revision: number;
  /** The revision before this write (0 on a volume that never held a set). */
  readonly previousRevision: number;
  readonly bytesWritten: number;
  readonly filesWritten: number;
  /** Paths whose bytes differ from the previous version (added, changed or removed). */
  readonly changedPaths: readonly string[];
  /**
   * Set when the new version was committed (`..data` points to it, readers get the new set) but a
   * later step failed: a top-level link, the directory fsync or pruning. The write counts as done;
   * the next write or repair retries what is missing.
   */
  readonly publishError?: WriteError;
}

const DATA_LINK = '..data';
/** Inside each version: the caller's manifest of the set (src/sync/manifest.ts), 0400, no top-level link. */
const MANIFEST = '..manifest';
const DIGEST_KEY = '..digest-key';
const VERSION_PREFIX = '..rev-';
const VERSION_NAME = /^\.\.rev-(\d{6,})-[A-Za-z0-9_-]+$/;

/** What the sync stage needs of a writer: `AtomicDirWriter`, or `DryRunWriter` for `check`. */
export interface SetWriter {
  readonly revision: number;
  write(files: readonly RenderedFile[], options: WriteOptions, manifest?: Buffer): Promise<WriteResult>;
  readManifest(): Promise<Buffer | undefined>;
  digestKey(): Promise<Buffer>;
  repair(options: WriteOptions): Promise<string[]>;
}

interface CurrentVersion {
  readonly version: string;
  readonly revision: number;
  readonly files: Map<string, Buffer>;
  readonly manifest: Buffer | undefined;
}

export class AtomicDirWriter implements SetWriter {
  private readonly dir: string;
  private queue: Promise<unknown> = Promise.resolve();
  /** What the current version holds, so an unchanged refresh costs no disk reads. */
  private current: CurrentVersion | undefined;

  constructor(outputDir: string) {
    this.dir = path.resolve(outputDir);
  }

  get revision(): number {
    return this.current?.revision ?? 0;
  }

  /** The manifest written with the version on disk, if any (after a restart: an earlier run's). */
  readManifest(): Promise<Buffer | undefined> {
    return this.exclusive(async () => {
      this.current ??= await this.loadCurrent();
      return this.current?.manifest;
    });
  }

  /**
   * A random key for the caller's keyed digests, kept beside the versions (`..digest-key`, 0400,
   * owned by the sidecar) so a restart finds it again, and gone with them when the tmpfs is. Only
   * the sidecar's user can read it; without it a digest in a manifest says nothing about a value.
   */
  digestKey(): Promise<Buffer> {
    return this.exclusive(async () => {
      const file = path.join(this.dir, DIGEST_KEY);
      try {
        const key = await readFile(file);
        if (key.length === 32) return key;
        await unlink(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw writeError(error, file);
      }
      const key = randomBytes(32);
      try {
        await writeDurably(file, key, { mode: 0o400 });
      } catch (error) {
        throw writeError(error, file);
      }
      return key;
    });
  }

  /**
   * Writes `files` as the new complete set, unless it equals what is on disk. On any error the
   * previous set stays exactly as it was and the partial new version is removed.
   */
  write(files: readonly RenderedFile[], options: WriteOptions, manifest?: Buffer): Promise<WriteResult> {
    return this.exclusive(() => this.writeNow(files, options, manifest, false));
  }

  /**
   * Checks the files on disk against the last written set and, if someone deleted or edited one,
   * writes the same set again as a new version with the *same* revision (the content did not
   * change, so consumers watching the revision are not restarted). Returns what was wrong.
   */
  repair(options: WriteOptions): Promise<string[]> {
    return this.exclusive(async () => {
      const current = this.current;
      if (!current) return [];
      const problems = await this.findDamage(current.version, current.files);
      if (problems.length > 0) {
        const files = [...current.files].map(([file, content]) => ({ path: file, content }));
        await this.writeNow(files, options, current.manifest, true);
      }
      return problems;
    });
  }

  /** One operation at a time: a repair triggered by a file event never interleaves with a sync's write. */
  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.queue.then(operation, operation);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * The write, in the order kubelet's atomic_writer.go takes it. What a failure costs depends on the
   * step it happens in:
   *
   *   1. prepare  the new version directory: mkdir, every file (mode and owner set before it is
   *               visible), fsync of every directory. Failure: the new version is removed; the
   *               live set and the revision are as before.
   *   2. commit   rename a temp link over `..data`: the one atomic step that switches readers to the
   *               new set. Failure: the new version is removed; nothing changed.
   *   3. publish  top-level links for new names, unlink vanished names, fsync the output directory,
   *               prune versions older than the previous one. From here on the new set IS the live
   *               set: a failure is returned as `publishError` (the sync succeeded, the next pass
   *               retries the publish), and the live version is never removed.
   */
  private async writeNow(files: readonly RenderedFile[], options: WriteOptions, manifest: Buffer | undefined, sameRevision: boolean): Promise<WriteResult> {
    assertRelativePaths(files);
    this.current ??= await this.loadCurrent();
    const previous = this.current;
    const next = new Map(files.map((file) => [file.path, file.content]));
    const changedPaths = diffPaths(previous?.files, next);
    const previousRevision = previous?.revision ?? 0;
    if (!sameRevision && previous && changedPaths.length === 0 && (await this.linksIntact(previous.version, next))) {
      return { changed: false, revision: previous.revision, previousRevision, bytesWritten: 0, filesWritten: 0, changedPaths: [] };
    }

    const revision = previousRevision + (sameRevision || (previous && changedPaths.length === 0) ? 0 : 1);
    const version = `${VERSION_PREFIX}${String(revision).padStart(6, '0')}-${randomBytes(6).toString('base64url')}`;
    const versionDir = path.join(this.dir, version);

    let bytesWritten: number;
    try {
      bytesWritten = await this.prepareVersion(versionDir, files, options, manifest); // step 1
      await replaceSymlink(path.join(this.dir, DATA_LINK), version); // step 2
    } catch (error) {
      await rm(versionDir, { recursive: true, force: true }).catch(() => undefined);
      throw writeError(error, versionDir);
    }
    // Readers now see the new version: from here on it must never be deleted.
    this.current = { version, revision, files: next, manifest };
    const publishError = await this.publish(version, previous?.version, next); // step 3
    return { changed: true, revision, previousRevision, bytesWritten, filesWritten: files.length, changedPaths, ...(publishError ? { publishError } : {}) };
  }

  /** Step 1: a complete, durable version directory nobody can see yet. Returns the bytes written. */
  private async prepareVersion(versionDir: string, files: readonly RenderedFile[], options: WriteOptions, manifest: Buffer | undefined): Promise<number> {
    const dirMode = directoryModeFor(options.mode);
    let bytesWritten = 0;
    await mkdir(versionDir, { mode: dirMode });
    await this.applyOwnership(versionDir, dirMode, options);
    const subdirs = new Set<string>();
    for (const file of files) {
      const parent = path.posix.dirname(file.path);
      if (parent !== '.' && !subdirs.has(parent)) {
        // One plain mkdir per level: `mkdir(…, { recursive: true })` reports ENOSPC as ENOENT on
        // Node 20 (a full volume would read as a missing directory), and it would leave the
        // intermediate levels without our mode and owner.
        const segments = parent.split('/');
        for (let depth = 1; depth <= segments.length; depth++) {
          const level = segments.slice(0, depth).join('/');
          if (subdirs.has(level)) continue;
          await mkdir(path.join(versionDir, level), { mode: dirMode });
          await this.applyOwnership(path.join(versionDir, level), dirMode, options);
          subdirs.add(level);
        }
      }
      await writeDurably(path.join(versionDir, file.path), file.content, options);
      bytesWritten += file.content.length;
    }
    // Not chowned to SIDECAR_FILE_UID/GID: only the sidecar reads it.
    if (manifest) await writeDurably(path.join(versionDir, MANIFEST), manifest, { mode: 0o400 });
    for (const subdir of subdirs) await fsyncPath(path.join(versionDir, subdir));
    await fsyncPath(versionDir);
    return bytesWritten;
  }

  /**
   * Step 3. Every part is attempted even when an earlier one fails (one bad name must not keep the
   * other names from their links); the first failure is returned, never thrown.
   */
  private async publish(version: string, previous: string | undefined, files: Map<string, Buffer>): Promise<WriteError | undefined> {
    const failures: WriteError[] = [];
    const attempt = async (part: () => Promise<void>, where: string) => {
      try {
        await part();
      } catch (error) {
        failures.push(writeError(error, where));
      }
    };
    const wanted = topLevelNames(files);
    for (const name of wanted) {
      const link = path.join(this.dir, name);
      await attempt(async () => {
        if ((await readLinkOrUndefined(link)) !== `${DATA_LINK}/${name}`) await replaceSymlink(link, `${DATA_LINK}/${name}`);
      }, link);
    }
    await attempt(async () => {
      for (const entry of await readdir(this.dir)) {
        if (entry.startsWith('..') || wanted.has(entry)) continue;
        const target = await readLinkOrUndefined(path.join(this.dir, entry));
        if (target?.startsWith(`${DATA_LINK}/`)) await unlink(path.join(this.dir, entry));
      }
    }, this.dir);
    await attempt(() => fsyncPath(this.dir), this.dir);
    await attempt(() => this.removeOldVersions(version, previous), this.dir);
    return failures[0];
  }
  /** Removes leftovers of a crash mid-write (temp links, unreferenced versions). Called at start. */
  async cleanUp(): Promise<void> {
    const target = await readLinkOrUndefined(path.join(this.dir, DATA_LINK));
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith(`${DATA_LINK}.tmp`) || (entry.startsWith(VERSION_PREFIX) && entry !== target)) {
        await rm(path.join(this.dir, entry), { recursive: true, force: true });
      }
    }
  }

  /** Reads the version `..data` points to (after a restart the tmpfs may still hold it). */
  private async loadCurrent(): Promise<CurrentVersion | undefined> {
    const version = await readLinkOrUndefined(path.join(this.dir, DATA_LINK));
    const match = version === undefined ? null : VERSION_NAME.exec(version);
    if (!version || !match) return undefined;
    try {
      const files = new Map<string, Buffer>();
      await readTree(path.join(this.dir, version), '', files);
      const manifest = await readFile(path.join(this.dir, version, MANIFEST)).catch(() => undefined);
      return { version, revision: Number(match[1]), files, manifest };
    } catch {
      return undefined;
    }
  }

  private async findDamage(version: string, files: Map<string, Buffer>): Promise<string[]> {
    const problems: string[] = [];
    if (!(await this.linksIntact(version, files))) problems.push('links');
    for (const [file, content] of files) {
      try {
        if (!(await readFile(path.join(this.dir, version, file))).equals(content)) problems.push(file);
      } catch {
        problems.push(file);
      }
    }
    return problems;
  }

  private async linksIntact(version: string, files: Map<string, Buffer>): Promise<boolean> {
    if ((await readLinkOrUndefined(path.join(this.dir, DATA_LINK))) !== version) return false;
    for (const name of topLevelNames(files)) {
      if ((await readLinkOrUndefined(path.join(this.dir, name))) !== `${DATA_LINK}/${name}`) return false;
    }
    try {
      await stat(path.join(this.dir, version));
      return true;
    } catch {
      return false;
    }
  }

  private async removeOldVersions(current: string, previous: string | undefined): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith(VERSION_PREFIX) && entry !== current && entry !== previous) {
        await rm(path.join(this.dir, entry), { recursive: true, force: true });
      }
    }
  }

  private async applyOwnership(target: string, mode: number, options: WriteOptions): Promise<void> {
    const handle = await open(target, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    try {
      await handle.chmod(mode);
      if (options.uid !== undefined || options.gid !== undefined) await handle.chown(options.uid ?? -1, options.gid ?? -1);
    } finally {
      await handle.close();
    }
  }
}

/** Writes a new file and makes it durable; mode and owner are set before anyone can see it. */
async function writeDurably(target: string, content: Buffer, options: WriteOptions): Promise<void> {
  const handle = await open(target, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(content);
    await handle.chmod(options.mode);
    if (options.uid !== undefined || options.gid !== undefined) await handle.chown(options.uid ?? -1, options.gid ?? -1);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `ln -sfn` done right: a temp link renamed over the old one, so the name never disappears. */
async function replaceSymlink(link: string, target: string): Promise<void> {
  const temp = `${path.join(path.dirname(link), DATA_LINK)}.tmp-${randomBytes(6).toString('hex')}`;
  await symlink(target, temp);
  try {
    await rename(temp, link);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

async function fsyncPath(target: string): Promise<void> {
  const handle = await open(target, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readLinkOrUndefined(link: string): Promise<string | undefined> {
  try {
    return await readlink(link);
  } catch {
    return undefined;
  }
}

async function readTree(root: string, prefix: string, into: Map<string, Buffer>): Promise<void> {
  for (const entry of await readdir(path.join(root, prefix), { withFileTypes: true })) {
    if (prefix === '' && entry.name === MANIFEST) continue;
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) await readTree(root, relative, into);
    else if (entry.isFile()) into.set(relative, await readFile(path.join(root, relative)));
  }
}

function topLevelNames(files: Map<string, Buffer>): Set<string> {
  return new Set([...files.keys()].map((file) => file.split('/')[0]!));
}

function diffPaths(previous: Map<string, Buffer> | undefined, next: Map<string, Buffer>): string[] {
  const changed = new Set<string>();
  for (const [file, content] of next) {
    if (!previous?.get(file)?.equals(content)) changed.add(file);
  }
  for (const file of previous?.keys() ?? []) if (!next.has(file)) changed.add(file);
  return [...changed].sort();
}

/** Directories need the execute bit wherever the files grant read: 0440 → 0550, 0640 → 0750. */
function directoryModeFor(fileMode: number): number {
  let mode = 0o700;
  if (fileMode & 0o070) mode |= 0o050;
  return mode;
}

function assertRelativePaths(files: readonly RenderedFile[]): void {
  for (const file of files) {
    const segments = file.path.split('/');
    if (file.path === '' || file.path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..' || s.startsWith('..') || s.includes('\0'))) {
      throw new WriteError('SIDECAR_UNEXPECTED', `refusing to write outside the output directory: ${JSON.stringify(file.path)}`);
    }
  }
}

/**
 * Not retryable: `once` (an init container) exits 73 at once rather than waiting out its deadline
 * on a full or read-only volume. `run` retries every failure anyway, and recovers when space returns.
 */
function writeError(error: unknown, where: string): WriteError {
  if (error instanceof WriteError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
  const syscall = (error as NodeJS.ErrnoException).syscall ?? 'write';
  return new WriteError('SIDECAR_OUTPUT_UNWRITABLE', `${syscall} ${where}: ${code}${code === 'ENOSPC' ? ' (volume full)' : ''}`, { cause: error });
}

/**
 * Start-up probe: the output directory exists, is a directory, and accepts a file. Fails fast with
 * a hint instead of on the first sync.
 */
export async function assertWritableDir(outputDir: string): Promise<void> {
  const dir = path.resolve(outputDir);
  try {
    const info = await lstat(dir);
    if (!info.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR', syscall: 'stat' });
    const probe = path.join(dir, `..probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    await writeDurably(probe, Buffer.from('probe'), { mode: 0o600 });
    await unlink(probe);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
    throw new WriteError('SIDECAR_OUTPUT_UNWRITABLE', `SIDECAR_OUTPUT_DIR ${dir} is not writable: ${code}`, { cause: error });
  }
}
