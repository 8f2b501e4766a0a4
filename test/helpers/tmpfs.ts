/**
 * A real, small tmpfs for the file-system fault tests (ENOSPC, read-only). Mounting needs root and a
 * sandbox that allows `mount`; `TMPFS_SKIP_REASON` says why not, for `it.skipIf(...)` messages.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTempDir, type OnFinished } from './temp-dir.js';


function probe(): string | undefined {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (the tests are not running as uid 0)';
  const dir = mkdtempSync(path.join(tmpdir(), 'tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `this sandbox refuses "mount -t tmpfs" (${String((error as { stderr?: Buffer }).stderr ?? error).trim().split('\n')[0]})`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Undefined when tmpfs mounts work here; otherwise the reason, for the skip message. */
export const TMPFS_SKIP_REASON: string | undefined = probe();

/** Mounts a tmpfs of `sizeKiB` on a fresh directory; unmounted (lazily, if busy) when the test ends. */
export function mountTmpfs(onFinished: OnFinished, sizeKiB: number, extraOptions: string[] = []): string {
  // Clean-up runs in reverse order of registration: unmount first, then makeTempDir removes the mount point.
  const dir = makeTempDir('tmpfs-', onFinished);
  execFileSync('mount', ['-t', 'tmpfs', '-o', ['size=' + sizeKiB + 'k', 'mode=0755', ...extraOptions].join(','), 'tmpfs', dir], { stdio: 'pipe' });
  onFinished(() => {
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    }
  });
  return dir;
}

/** `mount -o remount,<options>`: `ro`, `rw`, `nr_inodes=4096`, `size=2m`… */
export function remount(dir: string, options: string): void {
  execFileSync('mount', ['-o', `remount,${options}`, dir], { stdio: 'pipe' });
}
