/**
 * Self-healing and hot reload:
 * - an output file deleted or edited by someone else is restored from the last good set;
 * - a changed credential file (rotated client secret) forces a fresh login and a refresh;
 * - a changed config file is validated and applied, or rejected with the old config kept.
 *
 * Events are debounced (editors and `cp` produce several), and our own writes are told apart by
 * comparing the disk against what we wrote rather than by guessing who caused an event.
 *
 * The output directory is watched with one `fs.watch` per directory, never per file: the top level
 * (the links, `..data`) and the directories of the live version, re-armed whenever `..data` moves.
 * A version being written is not live yet, so its files cost no events at all: chokidar used to
 * watch every new file, which made a 5,000-key write 30× slower. Credential and config files are
 * single bind-mounted files, watched with chokidar (`awaitWriteFinish` for editors that write twice).
 */
import { watch as watchDirectory, type FSWatcher as DirectoryWatcher } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { SidecarError } from '../errors.js';
import type { Logger } from '../log.js';
import { printable } from '../text.js';
import { systemClock, type Clock } from '../timers.js';

export interface WatchOptions {
  readonly outputDir: string;
  readonly credentialFiles: readonly string[];
  readonly configFile: string | undefined;
  /** Restores damaged outputs; returns what was damaged (logged here). */
  readonly repairOutputs: (scope: 'links' | 'contents') => Promise<string[]>;
  readonly onCredentialsChanged: () => void;
  /**
   * Applies the changed config file and returns what to log about it (names only); throws (logged
   * here, old config kept) when it is invalid.
   */
  readonly onConfigChanged: () => Record<string, unknown>;
  readonly log: Logger;
  readonly debounceMs?: number;
  readonly clock?: Clock;
}

export interface Watcher {
  close(): Promise<void>;
  /** Resolves once the watchers are ready (tests wait for it). */
  readonly ready: Promise<void>;
}

export function startWatching(options: WatchOptions): Watcher {
  const debounceMs = options.debounceMs ?? 200;
  const clock = options.clock ?? systemClock;
  const timers = new Map<string, () => void>();
  const firstEventAt = new Map<string, number>();
  // Quiet for debounceMs, but never later than 5× it after the first event: a storm of unrelated
  // events (a busy directory) must not hold back the repair of a deleted link until it ends.
  const debounced = (name: string, action: () => void) => {
    timers.get(name)?.();
    const first = firstEventAt.get(name) ?? clock.now();
    firstEventAt.set(name, first);
    const fire = () => {
      firstEventAt.delete(name);
      action();
    };
    timers.set(name, clock.schedule(Math.min(debounceMs, first + 5 * debounceMs - clock.now()), fire));
  };

  // A change at the top level (our own swap of ..data, a deleted link) needs the links checked; only
  // a change inside the live version needs every file read back (what made large writes slow).
  let contentsChanged = false;
  const outputs = watchOutputs(options.outputDir, options.log, (where) => {
    contentsChanged ||= where === 'contents';
    debounced('outputs', () => void checkOutputs());
  });
  // Re-armed before the check, so an edit made while the check reads the files is still seen.
  const checkOutputs = async () => {
    const scope = contentsChanged ? 'contents' : 'links';
    contentsChanged = false;
    try {
      await outputs.rearm();
    } catch (error) {
      options.log.warn({ err: (error as Error).message }, 'could not watch the live version of the output files');
    }
    try {
      const damaged = await options.repairOutputs(scope);
      if (damaged.length > 0) options.log.warn({ damaged: damaged.map(printable) }, 'output files were deleted or modified by someone else; restored from the last good set');
    } catch (error) {
      options.log.error({ err: (error as Error).message }, 'could not check the output files');
    }
  };

  const watchers: FSWatcher[] = [];
  const inputs = [...options.credentialFiles, ...(options.configFile ? [options.configFile] : [])];
  if (inputs.length > 0) {
    // Compose secrets are bind mounts: an in-place edit on the host shows here as a change.
    const files = watch(inputs, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 } });
    files.on('all', (_event, changed) => {
      if (changed === options.configFile) debounced('config', () => applyConfigChange(options));
      else
        debounced('credentials', () => {
          options.log.info('credential file changed; the next login uses it');
          options.onCredentialsChanged();
        });
    });
    files.on('error', (error) => options.log.warn({ err: (error as Error).message }, 'input file watcher error'));
    watchers.push(files);
  }

  const ready = Promise.all([outputs.rearm(), ...watchers.map((w) => new Promise<void>((resolve) => w.once('ready', () => resolve())))]).then(() => undefined);
  return {
    ready,
    async close() {
      for (const cancel of timers.values()) cancel();
      outputs.close();
      await Promise.all(watchers.map((w) => w.close()));
    },
  };
}

const DATA_LINK = '..data';

interface OutputWatch {
  /** Moves the live-version watchers to the directory `..data` points to now. */
  rearm(): Promise<void>;
  close(): void;
}

/**
 * Watches the output directory's top level, and every directory of the live version (an in-place
 * edit or a deletion there changes no top-level entry). Calls `onEvent` for anything that may be
 * damage; the caller re-arms after `..data` moved.
 */
function watchOutputs(outputDir: string, log: Logger, onEvent: (where: 'top' | 'contents') => void): OutputWatch {
  const onError = (error: Error) => log.warn({ err: error.message }, 'output watcher error');
  // Set names never start with `..` (the writer refuses them); the other `..` entries are the
  // writer's own (a version being written, temp links, the digest key) and change on every write.
  const top = watchDirectory(outputDir, { persistent: false }, (_event, name) => {
    if (name === null || name === DATA_LINK || !name.startsWith('..')) onEvent('top');
  });
  top.on('error', onError);
  let live: { version: string; watchers: DirectoryWatcher[] } | undefined;
  let closed = false;

  const closeLive = () => {
    for (const watcher of live?.watchers ?? []) watcher.close();
    live = undefined;
  };

  const arm = async () => {
    const version = await readlink(path.join(outputDir, DATA_LINK)).catch(() => undefined);
    if (closed || version === live?.version) return;
    closeLive();
    // Only a real directory inside the output directory: a planted `..data` is for repair to replace, not to follow.
    if (version === undefined || version.includes('/')) return;
    const info = await lstat(path.join(outputDir, version)).catch(() => undefined);
    if (!info?.isDirectory()) return;
    const directories = await directoriesOf(path.join(outputDir, version));
    if (closed) return;
    live = {
      version,
      watchers: directories.map((directory) => watchDirectory(directory, { persistent: false }, () => onEvent('contents')).on('error', onError)),
    };
  };
  // One at a time: two overlapping calls would both see the old version and arm twice.
  let arming: Promise<void> = Promise.resolve();

  return {
    rearm() {
      const armed = arming.then(arm);
      arming = armed.catch(() => undefined);
      return armed;
    },
    close() {
      closed = true;
      top.close();
      closeLive();
    },
  };
}

/** `root` and every directory below it (without following links). */
async function directoriesOf(root: string): Promise<string[]> {
  const found = [root];
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (entry.isDirectory()) found.push(...(await directoriesOf(path.join(root, entry.name))));
  }
  return found;
}

function applyConfigChange(options: WatchOptions): void {
  try {
    options.log.info(options.onConfigChanged(), 'config file changed; applied');
  } catch (error) {
    options.log.error({ code: (error as SidecarError).code, err: (error as Error).message }, 'config file changed but is invalid; keeping the previous config');
  }
}
