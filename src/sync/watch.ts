/**
 * Self-healing and hot reload, driven by chokidar:
 * - an output file deleted or edited by someone else is restored from the last good set;
 * - a changed credential file (rotated client secret) forces a fresh login and a refresh;
 * - a changed config file is validated and applied, or rejected with the old config kept.
 *
 * Events are debounced (editors and `cp` produce several), and our own writes are told apart by
 * comparing the disk against what we wrote rather than by guessing who caused an event.
 */
import { watch, type FSWatcher } from 'chokidar';
import type { SidecarError } from '../errors.js';
import type { Logger } from '../log.js';

export interface WatchOptions {
  readonly outputDir: string;
  readonly credentialFiles: readonly string[];
  readonly configFile: string | undefined;
  /** Restores damaged outputs; returns what was damaged (logged here). */
  readonly repairOutputs: () => Promise<string[]>;
  readonly onCredentialsChanged: () => void;
  /**
   * Applies the changed config file and returns what to log about it (names only); throws (logged
   * here, old config kept) when it is invalid.
   */
  readonly onConfigChanged: () => Record<string, unknown>;
  readonly log: Logger;
  readonly debounceMs?: number;
}

export interface Watcher {
  close(): Promise<void>;
  /** Resolves once the watchers are ready (tests wait for it). */
  readonly ready: Promise<void>;
}

export function startWatching(options: WatchOptions): Watcher {
  const debounceMs = options.debounceMs ?? 200;
  const timers = new Map<string, NodeJS.Timeout>();
  const debounced = (name: string, action: () => void) => {
    clearTimeout(timers.get(name));
    timers.set(name, setTimeout(action, debounceMs));
  };

  // The output dir is watched shallowly plus the live version (via the ..data link): deep enough
  // to see a deleted link or an edited file, without following old versions.
  const outputs = watch(options.outputDir, { ignoreInitial: true, depth: 2, followSymlinks: false });
  outputs.on('all', () =>
    debounced('outputs', () => {
      options.repairOutputs().then(
        (damaged) => {
          if (damaged.length > 0) options.log.warn({ damaged }, 'output files were deleted or modified by someone else; restored from the last good set');
        },
        (error: Error) => options.log.error({ err: error.message }, 'could not check the output files'),
      );
    }),
  );
  outputs.on('error', (error) => options.log.warn({ err: (error as Error).message }, 'output watcher error'));

  const watchers: FSWatcher[] = [outputs];
  const inputs = [...options.credentialFiles, ...(options.configFile ? [options.configFile] : [])];
  if (inputs.length > 0) {
    // Compose secrets are bind mounts: an in-place edit on the host shows here as a change.
    const files = watch(inputs, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 } });
    files.on('all', (_event, path) => {
      if (path === options.configFile) debounced('config', () => applyConfigChange(options));
      else
        debounced('credentials', () => {
          options.log.info('credential file changed; logging in again');
          options.onCredentialsChanged();
        });
    });
    files.on('error', (error) => options.log.warn({ err: (error as Error).message }, 'input file watcher error'));
    watchers.push(files);
  }

  const ready = Promise.all(watchers.map((w) => new Promise<void>((resolve) => w.once('ready', () => resolve())))).then(() => undefined);
  return {
    ready,
    async close() {
      for (const timer of timers.values()) clearTimeout(timer);
      await Promise.all(watchers.map((w) => w.close()));
    },
  };
}

function applyConfigChange(options: WatchOptions): void {
  try {
    options.log.info(options.onConfigChanged(), 'config file changed; applied');
  } catch (error) {
    options.log.error({ code: (error as SidecarError).code, err: (error as Error).message }, 'config file changed but is invalid; keeping the previous config');
  }
}
