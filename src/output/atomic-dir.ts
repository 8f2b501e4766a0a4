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
import type { Stats } from 'node:fs';
import { chown, lstat, mkdir, open, readdir, readFile, readlink, rename, rm, stat, statfs, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { WriteError, type SidecarError } from '../errors.js';
import type { RenderedFile } from '../render/index.js';
import { printable } from '../text.js';
import type { WriteFence } from './lease.js';

/** SIDECAR_FILE_UID / SIDECAR_FILE_GID: undefined leaves the process's own. */
export interface Ownership {
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

export interface WriteOptions extends Ownership {
  readonly mode: number;
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
// At most 12 digits: a planted ..rev-99999999999999999999 would freeze the revision (1e20 + 1 is 1e20 in a double).
const VERSION_NAME = /^\.\.rev-(\d{6,12})-[A-Za-z0-9_-]+$/;

/** What the sync stage needs of a writer: `AtomicDirWriter`, or `DryRunWriter` for `check`. */
export interface SetWriter {
  readonly revision: number;
  write(files: readonly RenderedFile[], options: WriteOptions, manifest?: Buffer, signal?: AbortSignal): Promise<WriteResult>;
  readManifest(): Promise<Buffer | undefined>;
  digestKey(): Promise<Buffer>;
  repair(options: WriteOptions, scope?: RepairScope): Promise<string[]>;
}

/** What a repair checks: the links only (after a change at the top level), or every file's bytes too. */
export type RepairScope = 'links' | 'contents';

interface CurrentVersion {
  readonly version: string;
  readonly revision: number;
  readonly files: Map<string, Buffer>;
  readonly manifest: Buffer | undefined;
  /** The version before it, kept for readers that resolved `..data` just before the swap. */
  readonly previousVersion?: string | undefined;
}

export interface WriterOptions {
  /**
   * Asked before each `..data` swap and before old versions are pruned: the directory's lease
   * (src/output/lease.ts), so a sidecar whose lease was taken over stops writing at once.
   */
  readonly fence?: WriteFence;
}

export class AtomicDirWriter implements SetWriter {
  private readonly dir: string;
  private readonly fence: WriteFence | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** What the current version holds, so an unchanged refresh costs no disk reads. */
  private current: CurrentVersion | undefined;
  /**
   * Top-level names whose link this writer put in place (after a restart: found in place). Whatever
   * later stands at one of them is damage and is replaced; any other name is left to an entry this
   * writer did not make.
   */
  private published = new Set<string>();
  /**
   * The highest revision any version directory on the volume carried at start: a `..data` that is
   * missing or untrusted must never make the revision go backwards (consumers compare it).
   */
  private revisionFloor = 0;

  constructor(outputDir: string, options: WriterOptions = {}) {
    this.dir = path.resolve(outputDir);
    this.fence = options.fence;
  }

  get revision(): number {
    return this.current?.revision ?? 0;
  }

  /** The revision on the volume (after a restart: what an earlier run left; 0 on an empty volume). */
  revisionOnVolume(): Promise<number> {
    return this.exclusive(async () => {
      this.current ??= await this.loadCurrent();
      return this.current?.revision ?? this.revisionFloor;
    });
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
      const existing = await readDigestKey(file);
      if (existing) return existing;
      // Anything else at that name (a directory, a link, a short or unreadable file left by another
      // uid) is replaced: the key is disposable, losing it only makes the next pass report every key.
      try {
        await rm(file, { recursive: true, force: true });
        const key = randomBytes(32);
        await writeDurably(file, key, { mode: 0o400 });
        return key;
      } catch (error) {
        throw writeError(error, file);
      }
    });
  }

  /**
   * Writes `files` as the new complete set, unless it equals what is on disk. On any error the
   * previous set stays exactly as it was and the partial new version is removed. `signal`
   * (shutdown) abandons the write between two files of step 1 the same way, with SIDECAR_STOPPED;
   * once step 2 has run, the write completes.
   */
  write(files: readonly RenderedFile[], options: WriteOptions, manifest?: Buffer, signal?: AbortSignal): Promise<WriteResult> {
    return this.exclusive(() => this.writeNow(files, options, manifest, false, signal));
  }

  /**
   * Checks the files on disk against the last written set and, if someone deleted or edited one,
   * writes the same set again as a new version with the *same* revision (the content did not
   * change, so consumers watching the revision are not restarted). Returns what was wrong.
   */
  repair(options: WriteOptions, scope: RepairScope = 'contents'): Promise<string[]> {
    return this.exclusive(async () => {
      const current = this.current;
      if (!current) return [];
      const problems = await this.findDamage(current.version, current.files, scope);
      if (problems.length === 0) return problems;
      const dataIntact = (await readLinkOrUndefined(path.join(this.dir, DATA_LINK))) === current.version && (await isDirectory(path.join(this.dir, current.version)));
      if (dataIntact && problems.every((problem) => problem === 'links')) {
        // Only top-level links are off: publish them again. No new version, no swap of ..data,
        // so a name that cannot be linked (a directory in the way) cannot make a loop of rewrites.
        const publishError = await this.publish(current.version, current.previousVersion, current.files);
        if (publishError) throw publishError;
        return problems;
      }
      const files = [...current.files].map(([file, content]) => ({ path: file, content }));
      const { publishError } = await this.writeNow(files, options, current.manifest, true);
      if (publishError) throw publishError;
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
   *   1. prepare  on a volume without a live set of ours, refuse names held by entries this
   *               writer did not make; the new version directory: mkdir, every file (mode and
   *               owner set before it is visible), fsync of every directory. Failure: the new
   *               version is removed; the live set and the revision are as before.
   *   2. commit   ask the fence (the lease), then rename a temp link over `..data`: the one atomic
   *               step that switches readers to the new set. Failure: the new version is removed;
   *               nothing changed.
   *   3. publish  top-level links for new names (never over an entry this writer did not make),
   *               unlink vanished names, fsync the output directory, prune versions older than the
   *               previous one. From here on the new set IS the live
   *               set: a failure is returned as `publishError` (the sync succeeded, the next pass
   *               retries the publish), and the live version is never removed.
   */
  private async writeNow(files: readonly RenderedFile[], options: WriteOptions, manifest: Buffer | undefined, sameRevision: boolean, signal?: AbortSignal): Promise<WriteResult> {
    assertRelativePaths(files);
    this.current ??= await this.loadCurrent();
    const previous = this.current;
    const next = new Map(files.map((file) => [file.path, file.content]));
    const changedPaths = diffPaths(previous?.files, next);
    const previousRevision = previous?.revision ?? this.revisionFloor;
    if (!sameRevision && previous && changedPaths.length === 0 && (await this.linksIntact(previous.version, next))) {
      return { changed: false, revision: previous.revision, previousRevision, bytesWritten: 0, filesWritten: 0, changedPaths: [] };
    }

    const revision = previousRevision + (sameRevision || (previous && changedPaths.length === 0) ? 0 : 1);
    const version = `${VERSION_PREFIX}${String(revision).padStart(6, '0')}-${randomBytes(6).toString('base64url')}`;
    const versionDir = path.join(this.dir, version);

    if (!previous) await this.assertNamesFree(next); // step 1, before anything is written
    await this.assertRoomFor(files, manifest); // step 1, before anything is written
    let bytesWritten: number;
    try {
      bytesWritten = await this.prepareVersion(versionDir, files, options, manifest, signal); // step 1
      await this.fence?.assertHeld(); // step 2: the last moment a taken-over writer can back out
      await replaceSymlink(path.join(this.dir, DATA_LINK), version); // step 2
    } catch (error) {
      await rm(versionDir, { recursive: true, force: true }).catch(() => undefined);
      throw writeError(error, versionDir);
    }
    // Readers now see the new version: from here on it must never be deleted.
    this.current = { version, revision, files: next, manifest, previousVersion: previous?.version };
    const publishError = await this.publish(version, previous?.version, next); // step 3
    return { changed: true, revision, previousRevision, bytesWritten, filesWritten: files.length, changedPaths, ...(publishError ? { publishError } : {}) };
  }

  /**
   * Step 1 on a volume that holds no set of ours: every name must be free or one of this writer's
   * links. Replacing a plain `secrets.env` or a `secrets.json/` directory left by an older tool
   * would destroy what the consumers read today, and claiming only the free names would give them
   * a mix of two tools' files: the whole write is refused.
   */
  private async assertNamesFree(next: Map<string, Buffer>): Promise<void> {
    const conflicts = await this.foreignEntries(topLevelNames(next));
    if (conflicts.size > 0) throw foreignEntriesError(this.dir, conflicts, 'nothing was written');
  }

  /**
   * Step 1 on a volume with a size (a tmpfs with `size=`): the new version must fit beside the live
   * one, which stays until the swap. Checked before the first byte, so a set that cannot fit is
   * refused with what it needs and what the volume has, not half-written into ENOSPC. A volume that
   * reports no size (statfs unsupported, or an unlimited tmpfs) is written as before; ENOSPC then
   * still names the volume as full.
   */
  private async assertRoomFor(files: readonly RenderedFile[], manifest: Buffer | undefined): Promise<void> {
    const volume = await statfs(this.dir).catch(() => undefined);
    if (volume === undefined || volume.blocks === 0 || volume.bsize <= 0) return;
    const blocks = (bytes: number) => Math.ceil(bytes / volume.bsize);
    const directories = new Set(files.map((file) => path.posix.dirname(file.path)).filter((dir) => dir !== '.')).size + 1;
    const neededBlocks = files.reduce((sum, file) => sum + blocks(file.content.length), 0) + blocks(manifest?.length ?? 0);
    const neededInodes = files.length + directories + (manifest ? 1 : 0);
    const inodesShort = volume.files > 0 && neededInodes > volume.ffree;
    if (neededBlocks <= volume.bavail && !inodesShort) return;
    const kib = (count: number) => `${Math.ceil((count * volume.bsize) / 1024)} KiB`;
    throw new WriteError(
      'SIDECAR_OUTPUT_FULL',
      `${this.dir}: the new set needs ${kib(neededBlocks)} and ${neededInodes} inodes next to the live one; the volume has ${kib(volume.bavail)} of ${kib(volume.blocks)} and ${volume.ffree} inodes free. Nothing was written; the live set is kept`,
    );
  }

  /** Each of `names` held by an entry this writer did not make, with what is there. */
  private async foreignEntries(names: Iterable<string>): Promise<Map<string, string>> {
    const conflicts = new Map<string, string>();
    for (const name of names) {
      const found = await foreignEntry(path.join(this.dir, name));
      if (found) conflicts.set(name, found);
    }
    return conflicts;
  }

  /** Step 1: a complete, durable version directory nobody can see yet. Returns the bytes written. */
  private async prepareVersion(versionDir: string, files: readonly RenderedFile[], options: WriteOptions, manifest: Buffer | undefined, signal: AbortSignal | undefined): Promise<number> {
    const dirMode = directoryModeFor(options.mode);
    let bytesWritten = 0;
    await mkdir(versionDir, { mode: dirMode });
    await this.applyOwnership(versionDir, dirMode, options);
    const subdirs = new Set<string>();
    for (const file of files) {
      if (signal?.aborted) throw new WriteError('SIDECAR_STOPPED', `stopped before the new version was complete (${files.length} files); the previous set is unchanged`);
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
        failures.push(writeError(error, where, 'published'));
      }
    };
    const wanted = topLevelNames(files);
    // A name new to this writer (a config reload added an output) is left to an entry it did not make.
    let foreign = new Map<string, string>();
    await attempt(async () => {
      foreign = await this.foreignEntries([...wanted].filter((name) => !this.published.has(name)));
      if (foreign.size > 0) throw foreignEntriesError(this.dir, foreign, 'those names are not published; the rest of the new set is live');
    }, this.dir);
    for (const name of wanted) {
      const link = path.join(this.dir, name);
      if (foreign.has(name)) continue;
      await attempt(async () => {
        if ((await readLinkOrUndefined(link)) !== `${DATA_LINK}/${name}`) await replaceSymlink(link, `${DATA_LINK}/${name}`);
      }, link);
    }
    this.published = new Set([...wanted].filter((name) => !foreign.has(name)));
    await attempt(async () => {
      for (const entry of await readdir(this.dir)) {
        if (entry.startsWith('..') || wanted.has(entry)) continue;
        const target = await readLinkOrUndefined(path.join(this.dir, entry));
        if (target?.startsWith(`${DATA_LINK}/`)) await unlink(path.join(this.dir, entry));
      }
    }, this.dir);
    await attempt(() => fsyncPath(this.dir), this.dir);
    await attempt(async () => {
      // A writer frozen between its fence and the swap must not prune the new holder's versions.
      await this.fence?.assertHeld();
      await this.removeOldVersions(version, previous);
    }, this.dir);
    return failures[0];
  }
  /**
   * Called at start, while holding the lease: removes leftovers of a crash mid-write (temp links,
   * unreferenced versions) and a `..data` this writer cannot trust (see `inspectDataLink`), which
   * is never read through. Returns what was wrong with `..data`, for the caller to report; the
   * first write puts a trusted one in its place.
   */
  async cleanUp(): Promise<string[]> {
    const data = await inspectDataLink(this.dir);
    const untrusted = data !== undefined && 'untrusted' in data ? [data.untrusted] : [];
    if (untrusted.length > 0) {
      // A real directory is removed as one; a link or a file is unlinked, never followed.
      await rm(path.join(this.dir, DATA_LINK), { recursive: true, force: true });
    }
    const versions = await this.versionDirectories();
    this.revisionFloor = Math.max(0, ...versions.map(({ revision }) => revision));
    let target = data !== undefined && 'version' in data ? data.version : undefined;
    if (target === undefined) {
      // No trusted ..data, but complete versions on the volume (a crash, or ..data removed by hand):
      // serve the newest complete one again rather than nothing until Infisical answers. A version
      // is complete once its manifest is written, the last file of step 1.
      const complete = versions.filter(({ complete }) => complete).sort((a, b) => b.revision - a.revision)[0];
      if (complete) {
        await replaceSymlink(path.join(this.dir, DATA_LINK), complete.name);
        target = complete.name;
        untrusted.push(`${DATA_LINK} pointed to the newest complete version again: ${complete.name}`);
      }
    }
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith(`${DATA_LINK}.tmp`) || (entry.startsWith(VERSION_PREFIX) && entry !== target)) {
        await rm(path.join(this.dir, entry), { recursive: true, force: true });
      }
    }
    return untrusted;
  }

  /** Every real `..rev-N-…` directory on the volume, with whether its manifest (written last) is there. */
  private async versionDirectories(): Promise<{ name: string; revision: number; complete: boolean }[]> {
    const found: { name: string; revision: number; complete: boolean }[] = [];
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      const match = VERSION_NAME.exec(entry.name);
      if (!match || !entry.isDirectory()) continue;
      const complete = await lstat(path.join(this.dir, entry.name, MANIFEST)).then((info) => info.isFile(), () => false);
      found.push({ name: entry.name, revision: Number(match[1]), complete });
    }
    return found;
  }

  /** Reads the version `..data` points to (after a restart the tmpfs may still hold it), if it is trusted. */
  private async loadCurrent(): Promise<CurrentVersion | undefined> {
    const data = await inspectDataLink(this.dir);
    if (data === undefined || !('version' in data)) return undefined;
    const { version, revision } = data;
    try {
      const files = new Map<string, Buffer>();
      await readTree(path.join(this.dir, version), '', files);
      const manifest = await readFile(path.join(this.dir, version, MANIFEST)).catch(() => undefined);
      // After a restart, the names whose link is in place are this writer's.
      const linked = await Promise.all([...topLevelNames(files)].map(async (name) => ((await foreignEntry(path.join(this.dir, name))) === undefined ? name : undefined)));
      this.published = new Set(linked.filter((name): name is string => name !== undefined));
      return { version, revision, files, manifest };
    } catch {
      return undefined;
    }
  }

  private async findDamage(version: string, files: Map<string, Buffer>, scope: RepairScope): Promise<string[]> {
    const problems: string[] = [];
    if (!(await this.linksIntact(version, files))) problems.push('links');
    // Reading every file back costs what the write cost: only when something inside the live version changed.
    if (scope === 'links') return problems;
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

/**
 * What `..data` is: absent (undefined), a trusted version, or why it is not trusted. Only a link to
 * a real directory (lstat: not itself a link) named like this writer's versions, inside the output
 * directory, is trusted; anything else was planted or damaged and must not be read through.
 */
async function inspectDataLink(dir: string): Promise<{ version: string; revision: number } | { untrusted: string } | undefined> {
  const link = path.join(dir, DATA_LINK);
  let info: Stats;
  try {
    info = await lstat(link);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw writeError(error, link);
  }
  if (!info.isSymbolicLink()) return { untrusted: `${DATA_LINK} is ${entryKind(info)}, not a link to a version directory` };
  const version = await readlink(link);
  const match = VERSION_NAME.exec(version);
  if (!match) return { untrusted: `${DATA_LINK} → ${printable(version)}, not a version directory of this writer` };
  let target: Stats;
  try {
    target = await lstat(path.join(dir, version));
  } catch {
    return { untrusted: `${DATA_LINK} → ${version}, which does not exist` };
  }
  if (target.isSymbolicLink()) return { untrusted: `${DATA_LINK} → ${version}, which is a symbolic link to ${printable((await readLinkOrUndefined(path.join(dir, version))) ?? '?')}` };
  if (!target.isDirectory()) return { untrusted: `${DATA_LINK} → ${version}, which is ${entryKind(target)}` };
  return { version, revision: Number(match[1]) };
}

/** What stands at a top-level name if this writer did not put it there; undefined when free or one of its links. */
async function foreignEntry(target: string): Promise<string | undefined> {
  let info: Stats;
  try {
    info = await lstat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw writeError(error, target);
  }
  if (!info.isSymbolicLink()) return entryKind(info);
  const points = (await readLinkOrUndefined(target)) ?? '?';
  return points.startsWith(`${DATA_LINK}/`) ? undefined : `a symbolic link to ${printable(points)}`;
}

function foreignEntriesError(dir: string, conflicts: Map<string, string>, outcome: string): WriteError {
  const entries = [...conflicts].map(([name, found]) => `${printable(name)} (${found})`).join(', ');
  return new WriteError('SIDECAR_OUTPUT_FOREIGN_ENTRIES', `${dir} holds entries the sidecar did not make where its outputs go: ${entries}; ${outcome}`);
}

function entryKind(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFile()) return 'a regular file';
  if (info.isSymbolicLink()) return 'a symbolic link';
  return 'a special file';
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
 * Errors after which this process must not write again until an operator acts: another tool's
 * entries where a first set would go, or a lease taken over by another sidecar. `once` exits on
 * them (they are not retryable); `run` stops on them too, with the same exit code, rather than
 * retrying every interval.
 */
export function stopsTheWriter(error: SidecarError | undefined): boolean {
  return error?.code === 'SIDECAR_OUTPUT_FOREIGN_ENTRIES' || error?.code === 'SIDECAR_OUTPUT_LEASE_LOST';
}

/**
 * Not retryable: `once` (an init container) exits 73 at once rather than waiting out its deadline
 * on a full or read-only volume. `run` retries every failure anyway, and recovers when space returns.
 */
function writeError(error: unknown, where: string, step: 'prepared' | 'published' = 'prepared'): WriteError {
  if (error instanceof WriteError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
  const syscall = (error as NodeJS.ErrnoException).syscall ?? 'write';
  if (code === 'ENOSPC') {
    // Before the swap nothing of the new set stays; after it (a top-level link) the new set is live.
    const outcome = step === 'prepared' ? 'nothing of the new set is left, the live set is kept' : 'the new set is live; this name keeps its old link until space returns';
    return new WriteError('SIDECAR_OUTPUT_FULL', `${syscall} ${where}: ENOSPC (volume full); ${outcome}`, { cause: error });
  }
  return new WriteError('SIDECAR_OUTPUT_UNWRITABLE', `${syscall} ${where}: ${code}`, { cause: error });
}

/**
 * Start-up probe: the output directory exists, is a real directory, accepts a file, and the file can
 * be given SIDECAR_FILE_UID / SIDECAR_FILE_GID. Fails fast with the fix instead of on the first sync.
 *
 * A symbolic link is refused rather than followed: the output directory is a volume's mount point
 * (kubelet writes into the directory it created; Compose mounts the volume at the path), the swap,
 * the lease and "nothing outside the directory" are promises about one directory, and a link can be
 * re-pointed while the sidecar runs. Naming its target costs the operator one edit.
 */
export async function assertWritableDir(outputDir: string, ownership: Ownership = {}): Promise<void> {
  const dir = path.resolve(outputDir);
  const unwritable = (error: unknown) =>
    new WriteError('SIDECAR_OUTPUT_UNWRITABLE', `SIDECAR_OUTPUT_DIR ${dir} is not writable: ${(error as NodeJS.ErrnoException).code ?? 'unknown'}`, { cause: error });
  let info: Stats;
  try {
    info = await lstat(dir);
  } catch (error) {
    throw unwritable(error);
  }
  if (info.isSymbolicLink()) {
    const target = path.resolve(path.dirname(dir), (await readLinkOrUndefined(dir)) ?? '?');
    throw new WriteError('SIDECAR_OUTPUT_DIR_SYMLINK', `SIDECAR_OUTPUT_DIR ${dir} is a symbolic link to ${printable(target)}; the sidecar writes only into the directory itself`);
  }
  if (!info.isDirectory()) throw unwritable(Object.assign(new Error('not a directory'), { code: 'ENOTDIR' }));
  const probe = path.join(dir, `..probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeDurably(probe, Buffer.from('probe'), { mode: 0o600 });
  } catch (error) {
    throw unwritable(error);
  }
  try {
    if (ownership.uid !== undefined || ownership.gid !== undefined) await chown(probe, ownership.uid ?? -1, ownership.gid ?? -1);
  } catch (error) {
    const wanted = [ownership.uid === undefined ? '' : `SIDECAR_FILE_UID=${ownership.uid}`, ownership.gid === undefined ? '' : `SIDECAR_FILE_GID=${ownership.gid}`].filter(Boolean).join(' ');
    const self = `uid ${process.getuid?.()}, gid ${process.getgid?.()}, groups ${process.getgroups?.().join(',') || 'none'}`;
    throw new WriteError('SIDECAR_OUTPUT_OWNERSHIP', `cannot give files in ${dir} ${wanted}: chown ${(error as NodeJS.ErrnoException).code ?? 'failed'} (this process runs as ${self})`, { cause: error });
  } finally {
    await unlink(probe).catch(() => undefined);
  }
}

/** The digest key if a regular 32-byte file this process can read stands there (never through a link). */
async function readDigestKey(file: string): Promise<Buffer | undefined> {
  try {
    const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const info = await handle.stat();
      if (!info.isFile() || info.size !== 32) return undefined;
      const key = await handle.readFile();
      return key.length === 32 ? key : undefined;
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

async function isDirectory(target: string): Promise<boolean> {
  return lstat(target).then((info) => info.isDirectory(), () => false);
}
