/**
 * One writer per output directory. Node has no flock(2), and containers sharing a tmpfs volume have
 * no other lock they all see, so the lock is a lease file in the directory itself:
 *
 *   OUTPUT_DIR/..lease-000004    {"host":"3f2a9c0d1e2b","pid":1,"instance":"Yx2…","ttlMs":30000,"acquiredAt":"…"}
 *
 * - The holder is whoever wrote the lease file with the highest number. A file is only ever created
 *   under a number above every existing one, by link(2) from a complete temp file: the name appears
 *   whole or not at all, and of two takers of the same number exactly one succeeds (EEXIST for the
 *   other). The winner then reads the directory back and withdraws if a higher number exists (a
 *   taker that acted on an older view): the highest number always wins, so at most one holds.
 * - The holder renews its file's mtime every third of its TTL, on its own timer: a refresh interval
 *   of hours or a long backoff never lets it lapse. A file not renewed for the TTL written in it is
 *   expired, and the next number may be taken; the taker deletes the lower numbers.
 * - A holder checks, at every renewal and before every write (the writer's fence), that its file is
 *   still the highest and still its own. If not, it was taken over (it was frozen past its TTL) and
 *   stops writing at once; it never takes the lease back.
 * - `release()` deletes the holder's file, so a standby or a recreated container takes over at once.
 *
 * Staleness is judged by mtime against the local clock: writers of one tmpfs run on one host and
 * share its clock. Like every lease, this assumes a holder is not frozen *between* its last check and
 * the `..data` rename that follows it (microseconds); a holder frozen anywhere else finds out at its
 * next check.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, lstat, open, readdir, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { WriteError } from '../errors.js';
import { formatDuration, printable } from '../text.js';
import { sleep, systemClock, type Clock } from '../timers.js';

const LEASE_PREFIX = '..lease-';
const LEASE_NAME = /^\.\.lease-(\d{6,})$/;
const TEMP_PREFIX = '..lease.tmp-';
/** How often a waiting sidecar looks again: often enough that a release is noticed within a second. */
const MAX_POLL_MS = 1_000;
const UNKNOWN_HOLDER = 'an unknown holder (unreadable lease file)';
/** The highest lease number a name of at most 15 digits holds (epochOf reads no more). */
const MAX_EPOCH = 999_999_999_999_999;
/** Races for a lease number lost in a row before the next look waits a poll interval. */
const MAX_QUICK_RETRIES = 3;

/** What a lease file says about its holder. */
export interface LeaseHolder {
  /** The container's host name (Docker: the container id; Kubernetes: the pod name). */
  readonly host: string;
  readonly pid: number;
  /** Random per acquisition: tells apart two holders with the same host name and pid (pid 1 in every container). */
  readonly instance: string;
  /** The holder's SIDECAR_LEASE_TTL: takers judge its file by the holder's TTL, not their own. */
  readonly ttlMs: number;
  readonly acquiredAt: string;
}

/** What the writer asks before it swaps `..data` (src/output/atomic-dir.ts). */
export interface WriteFence {
  /** Resolves when this process may still write; throws the reason otherwise. */
  assertHeld(): Promise<void>;
}

export interface LeaseOptions {
  /** SIDECAR_LEASE_TTL in ms. */
  readonly ttlMs: number;
  /** Default: this host's name and pid. */
  readonly identity?: { readonly host: string; readonly pid: number };
  /** Renewals, waits and ages; lease files get their times from it too, so holders that share a clock agree. */
  readonly clock?: Clock;
}

export interface AcquireOptions {
  /**
   * How long to wait for a live holder before refusing with SIDECAR_OUTPUT_LEASE_HELD: the TTL for
   * `exclusive` (a recreate's old container stops or expires within it), Infinity for `standby`,
   * the time left before the deadline for `once`.
   */
  readonly waitMs: number;
  /** Ends the wait: `acquire` rejects with an AbortError (the sidecar is stopping). */
  readonly signal?: AbortSignal;
  /** Called when the wait begins, and again whenever another holder takes the lease meanwhile. */
  readonly onWaiting?: (holder: LeaseHolder) => void;
  /** Called once when the lease is found taken over, at a renewal or a write; the holder must stop. */
  readonly onLost?: (error: WriteError) => void;
}

/** The highest-numbered lease file, as found. */
interface Observed {
  readonly epoch: number;
  /** Undefined when the file is not a lease this code wrote (unreadable, not JSON). */
  readonly holder: LeaseHolder | undefined;
  readonly renewedAt: number;
}

export class OutputLease implements WriteFence {
  private readonly dir: string;
  private self: LeaseHolder;
  private epoch: number | undefined;
  private cancelRenewal: (() => void) | undefined;
  private readonly clock: Clock;
  private renewing = false;
  private lost: WriteError | undefined;
  private onLost: ((error: WriteError) => void) | undefined;

  constructor(outputDir: string, options: LeaseOptions) {
    this.dir = path.resolve(outputDir);
    this.clock = options.clock ?? systemClock;
    const identity = options.identity ?? { host: hostname(), pid: process.pid };
    this.self = { ...identity, instance: randomBytes(6).toString('base64url'), ttlMs: options.ttlMs, acquiredAt: '' };
  }

  /** This sidecar, as its lease file names it. */
  get holder(): LeaseHolder {
    return this.self;
  }

  /**
   * Takes the lease: at once when nobody holds it or the holder's lease expired; otherwise waits
   * (looking again every third of the TTL, at most every second) until it is released or expires,
   * for at most `waitMs`. Then keeps it renewed until `release()`. Every look-again after the first
   * few waits too, so no file on the volume can make this loop spin.
   */
  async acquire(options: AcquireOptions): Promise<void> {
    const deadline = this.clock.now() + options.waitMs;
    const pollMs = Math.min(MAX_POLL_MS, this.holder.ttlMs / 3);
    let announced: string | undefined;
    let lostRaces = 0;
    for (;;) {
      options.signal?.throwIfAborted();
      const current = await this.highest();
      if (current === undefined || isExpired(current, this.holder.ttlMs, this.clock.now())) {
        const next = (current?.epoch ?? 0) + 1;
        if (next > MAX_EPOCH) {
          throw new WriteError(
            'SIDECAR_OUTPUT_LEASE_HELD',
            `${this.file(current!.epoch)} holds the highest lease number there can be, so no sidecar can take the lease after it; remove it (and every other ${LEASE_PREFIX}* file) while no sidecar runs on ${this.dir}`,
          );
        }
        if (await this.tryCreate(next)) break;
        // Another taker got that number first: look again, and after a few races wait first.
        if (++lostRaces <= MAX_QUICK_RETRIES) continue;
        const left = deadline - this.clock.now();
        if (left <= 0) throw new WriteError('SIDECAR_OUTPUT_LEASE_HELD', `${this.dir}: lease ${LEASE_PREFIX}${String(next).padStart(6, '0')} was taken by another sidecar ${lostRaces} times; this sidecar waited ${formatDuration(options.waitMs)} and wrote nothing`);
        await sleep(this.clock, Math.min(pollMs, left), options.signal);
        continue;
      }
      const holder = current.holder ?? { host: UNKNOWN_HOLDER, pid: 0, instance: '?', ttlMs: this.holder.ttlMs, acquiredAt: '' };
      if (announced !== holder.instance) {
        announced = holder.instance;
        options.onWaiting?.(holder);
      }
      const left = deadline - this.clock.now();
      if (left <= 0) throw new WriteError('SIDECAR_OUTPUT_LEASE_HELD', `${this.dir} is held by ${describe(current, this.clock.now())}; this sidecar waited ${formatDuration(options.waitMs)} and wrote nothing`);
      await sleep(this.clock, Math.min(pollMs, left), options.signal);
    }
    this.onLost = options.onLost;
    const renewEveryThirdOfTtl = () => {
      this.cancelRenewal = this.clock.schedule(this.holder.ttlMs / 3, () => {
        renewEveryThirdOfTtl();
        void this.renew();
      }, { unref: true });
    };
    renewEveryThirdOfTtl();
    await this.removeLeftovers();
  }

  /**
   * Checks that this sidecar still holds the lease (its file is the highest and its own) and renews
   * it. Throws SIDECAR_OUTPUT_LEASE_LOST, and tells `onLost`, when it was taken over.
   */
  async assertHeld(): Promise<void> {
    if (this.lost) throw this.lost;
    const epoch = this.epoch;
    if (epoch === undefined) throw new WriteError('SIDECAR_UNEXPECTED', `the lease on ${this.dir} is not held (acquire it before writing)`);
    const current = await this.highest(epoch);
    if (current?.epoch !== epoch || current.holder?.instance !== this.holder.instance) {
      throw this.markLost(current === undefined ? `its lease file ${this.file(epoch)} was removed by someone else` : `it was taken over by ${describe(current, this.clock.now())}`);
    }
    const now = new Date(this.clock.now());
    try {
      await utimes(this.file(epoch), now, now);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw this.markLost(`its lease file ${this.file(epoch)} was removed by someone else`);
      throw leaseError(error, this.file(epoch));
    }
  }

  /** Stops renewing and deletes this sidecar's lease file (never another's). Safe to call twice. */
  async release(): Promise<void> {
    this.cancelRenewal?.();
    this.cancelRenewal = undefined;
    this.onLost = undefined; // a renewal in flight that finds the file gone is not a loss
    const epoch = this.epoch;
    this.epoch = undefined;
    if (epoch === undefined || this.lost) return;
    const found = await readHolder(this.file(epoch));
    if (found?.instance === this.holder.instance) await unlink(this.file(epoch)).catch(() => undefined);
  }

  private file(epoch: number): string {
    return path.join(this.dir, `${LEASE_PREFIX}${String(epoch).padStart(6, '0')}`);
  }

  /** Creates lease number `epoch`; false when someone else has it or a higher one (nothing of ours is left then). */
  private async tryCreate(epoch: number): Promise<boolean> {
    const createdAt = new Date(this.clock.now());
    const holder: LeaseHolder = { ...this.holder, acquiredAt: createdAt.toISOString() };
    const temp = path.join(this.dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(temp, `${JSON.stringify(holder)}\n`, { mode: 0o440, flag: 'wx' });
      if (this.clock !== systemClock) await utimes(temp, createdAt, createdAt);
      await link(temp, this.file(epoch));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw leaseError(error, this.file(epoch));
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    // Read back: a taker acting on an older view may have created a higher number meanwhile.
    const current = await this.highest();
    if (current?.epoch !== epoch || current.holder?.instance !== holder.instance) {
      await unlink(this.file(epoch)).catch(() => undefined);
      return false;
    }
    this.self = holder;
    this.epoch = epoch;
    return true;
  }

  /**
   * The highest-numbered lease file, or undefined when there is none. `own`: the number this
   * sidecar holds; its file is known to be this sidecar's without reading it (an EACCES or EMFILE
   * reading it back is not a takeover).
   */
  private async highest(own?: number): Promise<Observed | undefined> {
    for (let vanished = 0; ; vanished++) {
      // Files that keep vanishing between readdir and lstat (a co-tenant churning names): look again, after a pause.
      if (vanished >= MAX_QUICK_RETRIES) await sleep(this.clock, MAX_POLL_MS / 10);
      const entries = await readdir(this.dir).catch((error: unknown) => {
        throw leaseError(error, this.dir);
      });
      // Only names this code writes count: `..lease-0000001` or a 25-digit number would name
      // another file once rebuilt from the number, and the look-again below would never end.
      const epochs = entries.map(epochOf).filter((epoch): epoch is number => epoch !== undefined);
      if (epochs.length === 0) return undefined;
      const epoch = Math.max(...epochs);
      try {
        // lstat: a link planted under a lease name is judged by itself (unreadable, so by its own time
        // and this sidecar's TTL); following it, a dangling one read as "released" forever.
        const renewedAt = (await lstat(this.file(epoch))).mtimeMs;
        return { epoch, holder: epoch === own ? this.holder : await readHolder(this.file(epoch)), renewedAt };
      } catch (error) {
        // Released between readdir and stat: look again.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw leaseError(error, this.file(epoch));
      }
    }
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.lost) return;
    this.renewing = true;
    try {
      await this.assertHeld();
    } catch {
      // Lost: `assertHeld` told `onLost`. Anything else (EMFILE, EIO) is retried at the next tick.
    } finally {
      this.renewing = false;
    }
  }

  private markLost(reason: string): WriteError {
    if (!this.lost) {
      this.lost = new WriteError('SIDECAR_OUTPUT_LEASE_LOST', `this sidecar lost the lease on ${this.dir}: ${reason}; it stopped writing`);
      this.cancelRenewal?.();
      this.onLost?.(this.lost);
    }
    return this.lost;
  }

  /** Lower numbers (expired holders, taken over) and temp files a crash left between write and link. */
  private async removeLeftovers(): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      const epoch = epochOf(entry);
      const target = path.join(this.dir, entry);
      if (epoch !== undefined && epoch < this.epoch!) await unlink(target).catch(() => undefined);
      if (entry.startsWith(TEMP_PREFIX)) {
        const now = this.clock.now();
        const age = now - (await stat(target).catch(() => ({ mtimeMs: now }))).mtimeMs;
        if (age > this.holder.ttlMs) await unlink(target).catch(() => undefined);
      }
    }
  }
}

/** The number in a lease file name this code writes (`..lease-` and at least six digits, no extra leading zeros), else undefined. */
function epochOf(name: string): number | undefined {
  const digits = LEASE_NAME.exec(name)?.[1];
  if (digits === undefined || digits.length > 15) return undefined;
  const epoch = Number(digits);
  return `${LEASE_PREFIX}${String(epoch).padStart(6, '0')}` === name ? epoch : undefined;
}

/** A lease file is small JSON written by this code: never read through a link, a FIFO or past 4 KiB. */
const MAX_LEASE_FILE_BYTES = 4096;

async function readHolder(file: string): Promise<LeaseHolder | undefined> {
  try {
    const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    let text: string;
    try {
      const info = await handle.stat();
      if (!info.isFile() || info.size > MAX_LEASE_FILE_BYTES) return undefined;
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
    const parsed = JSON.parse(text) as Partial<LeaseHolder>;
    if (typeof parsed.host !== 'string' || typeof parsed.pid !== 'number' || typeof parsed.instance !== 'string' || typeof parsed.ttlMs !== 'number') return undefined;
    return parsed as LeaseHolder;
  } catch {
    return undefined;
  }
}

/** The longest SIDECAR_LEASE_TTL: a lease file claiming more (`ttlMs: 1e300`) is judged by this. */
const MAX_TTL_MS = 3_600_000;
/** A renewal time this far in the future means a clock stepped back after its holder stopped. */
const FUTURE_SLACK_MS = 60_000;

/** An unreadable lease file (not written by this code) is judged by the reader's own TTL. */
function isExpired(lease: Observed, ownTtlMs: number, now: number): boolean {
  const age = now - lease.renewedAt;
  if (age < -FUTURE_SLACK_MS) return true;
  return age >= Math.min(lease.holder?.ttlMs ?? ownTtlMs, MAX_TTL_MS);
}

/** `sidecar-a (pid 1, instance Yx2…), renewed 4s ago, lease ..lease-000004`; the file's text is escaped (it is not ours). */
function describe(lease: Observed, now: number): string {
  const who = lease.holder ? `${printable(lease.holder.host)} (pid ${lease.holder.pid}, instance ${printable(lease.holder.instance)})` : UNKNOWN_HOLDER;
  return `${who}, renewed ${formatDuration(now - lease.renewedAt)} ago, lease ${LEASE_PREFIX}${String(lease.epoch).padStart(6, '0')}`;
}

function leaseError(error: unknown, where: string): WriteError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
  return new WriteError('SIDECAR_OUTPUT_UNWRITABLE', `lease ${where}: ${code}`, { cause: error });
}
