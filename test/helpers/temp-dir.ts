import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';

/** Registers clean-up for the running test (vitest's `onTestFinished`, or the one from a test's context). */
export type OnFinished = (fn: () => void | Promise<void>) => void;

/**
 * Where temp directories go: /dev/shm (a tmpfs, like the production volume) when there is one, so
 * the writer's fsyncs cost what they cost in production and not a loaded CI disk's flush latency.
 */
export const MEMORY_TMP: string = (() => {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
})();

/**
 * A fresh directory under MEMORY_TMP, removed when the test ends. Tests in `describe.concurrent`
 * pass the `onTestFinished` of their own context: the global one cannot tell concurrent tests apart.
 */
export function makeTempDir(prefix = 'sidecar-', onFinished: OnFinished = onTestFinished): string {
  const dir = mkdtempSync(path.join(MEMORY_TMP, prefix));
  onFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
