/**
 * Taking the output directory at start, in the one safe order: probe it, take its lease (only the
 * holder may touch it), then remove what a crash or another tool left where our entries go.
 */
import type { SidecarError } from '../errors.js';
import type { Logger } from '../log.js';
import { assertWritableDir, type AtomicDirWriter } from './atomic-dir.js';
import type { OutputLease } from './lease.js';

export interface ClaimOptions {
  readonly dir: string;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly lease: OutputLease;
  readonly writer: AtomicDirWriter;
  /** How long to wait for another holder (SIDECAR_LEASE_MODE, or `once`'s deadline). */
  readonly waitMs: number;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** The lease was taken over later (this sidecar was frozen past its TTL): stop writing. */
  readonly onLost: (error: SidecarError) => void;
}

export async function claimOutputDir(options: ClaimOptions): Promise<void> {
  const { log } = options;
  await assertWritableDir(options.dir, { uid: options.uid, gid: options.gid });
  await options.lease.acquire({
    waitMs: options.waitMs,
    signal: options.signal,
    onWaiting: (holder) => log.warn({ holder, waitMs: options.waitMs }, 'another sidecar holds the output directory; waiting for it to stop or its lease to expire'),
    onLost: (error) => {
      log.error({ code: error.code, err: error.message }, 'lease lost; stopped writing');
      options.onLost(error);
    },
  });
  log.info({ lease: options.lease.holder }, 'holding the output directory lease');
  const untrusted = await options.writer.cleanUp();
  if (untrusted.length > 0) log.warn({ found: untrusted }, 'removed an untrusted ..data without reading it; the first sync writes a new set');
}
