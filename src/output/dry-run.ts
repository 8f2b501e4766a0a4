/**
 * The writer `check` uses: it records what would be written and touches nothing. It has the same
 * surface as `AtomicDirWriter` as far as the sync stage uses it, so `check` runs the real pass.
 */
import { randomBytes } from 'node:crypto';
import type { RenderedFile } from '../render/index.js';
import type { SetWriter, WriteResult } from './atomic-dir.js';

export class DryRunWriter implements SetWriter {
  readonly revision = 0;
  /** The files of the last `write`, in render order. */
  files: readonly RenderedFile[] = [];
  private readonly key = randomBytes(32);

  write(files: readonly RenderedFile[]): Promise<WriteResult> {
    this.files = files;
    return Promise.resolve({ changed: true, revision: 0, previousRevision: 0, bytesWritten: 0, filesWritten: 0, changedPaths: [] });
  }

  readManifest(): Promise<Buffer | undefined> {
    return Promise.resolve(undefined);
  }

  digestKey(): Promise<Buffer> {
    return Promise.resolve(this.key);
  }

  repair(): Promise<string[]> {
    return Promise.resolve([]);
  }
}
