/**
 * Runs the reload actions after the files changed: debounced, with a cooldown, one run at a time.
 *
 * Semantics (docs/rotation.md):
 * - An action runs only after a complete set of files is written; it receives the new revision and
 *   the *names* of the keys that changed, never values.
 * - Changes arriving within `debounceMs` of each other are merged into one run (the wait is
 *   extended by each change, but never beyond 4× debounce from the first), so a burst of edits in
 *   Infisical causes one restart.
 * - Two runs are at least `cooldownMs` apart; changes during a run or the cooldown are merged into
 *   the next run. A failing action is logged and counted, never retried in a loop: the next change
 *   runs it again.
 * - Actions run in order, one at a time (restarting services one after the other).
 * - At shutdown nothing is dropped: a run in progress finishes and a change still waiting for its
 *   debounce or cooldown runs at once, both within `RELOAD_STOP_GRACE_MS` (inside Docker's 10 s stop
 *   grace). Whatever that bound cuts short is aborted and logged with its revision, and counted as a
 *   failure: after a restart the files already match, so no later pass would run it.
 */
import type { Logger } from '../log.js';
import { printable } from '../text.js';
import { systemClock, type Clock } from '../timers.js';

export interface ChangeEvent {
  readonly revision: number;
  /** Names only. */
  readonly changedKeys: readonly string[];
}

export interface ReloadAction {
  /** For logs and metrics: `command`, `http`, `docker`. */
  readonly name: string;
  run(event: ChangeEvent, signal: AbortSignal): Promise<void>;
}

export type ReloadOutcome = 'success' | 'failure';

/** How long `stop()` lets reload actions run before it aborts them (docs/operations.md, "Stopping"). */
export const RELOAD_STOP_GRACE_MS = 5_000;

/**
 * Where the revision the app was last told about is kept (beside the versions, src/output/), so a
 * reload owed when the sidecar died (SIGKILL, OOM inside the debounce window) is run by the next start.
 */
export interface ReloadLedger {
  read(): Promise<number | undefined>;
  write(revision: number): Promise<void>;
}

export interface ReloadSchedulerOptions {
  /** Without it, a reload pending when the process dies is lost (tests, `once`). */
  readonly ledger?: ReloadLedger;
  readonly actions: readonly ReloadAction[];
  /** Also reload when the first write fills an empty volume (SIDECAR_RELOAD_ON_FIRST_WRITE). */
  readonly reloadOnFirstWrite: boolean;
  readonly debounceMs: number;
  readonly cooldownMs: number;
  readonly log: Logger;
  readonly onResult?: (action: string, outcome: ReloadOutcome, ms: number) => void;
  readonly clock?: Clock;
  /** Default RELOAD_STOP_GRACE_MS; tests shorten it. */
  readonly stopGraceMs?: number;
}

export class ReloadScheduler {
  private pending: { revision: number; keys: Set<string>; firstAt: number } | undefined;
  private cancelTimer = (): void => undefined;
  private running: Promise<void> | undefined;
  private lastRunEndedAt = Number.NEGATIVE_INFINITY;
  /** Set by `stop()`: no new changes are taken. */
  private stopped = false;
  /** Aborted when the stop grace runs out: cancels the action in progress. */
  private readonly stopping = new AbortController();
  private readonly clock: Clock;
  /** The ledger writes in flight, chained. */
  private recording: Promise<void> = Promise.resolve();

  constructor(private readonly options: ReloadSchedulerOptions) {
    this.clock = options.clock ?? systemClock;
  }

  private now(): number {
    return this.clock.now();
  }

  get enabled(): boolean {
    return this.options.actions.length > 0;
  }

  /**
   * Called after every pass: a new revision is a change worth reloading for. A rewrite of the same
   * revision (self-healing, a publish retry) is not: the content the app reads did not change.
   * Revision 1 on an empty volume is the first content it ever held, so nobody consumed an older
   * value; a first pass that *replaces* what an earlier run left is a change like any other.
   */
  onSynced(outcome: { readonly ok: boolean; readonly revision: number; readonly previousRevision: number; readonly changedKeys: readonly string[] }): void {
    if (!outcome.ok || outcome.revision <= outcome.previousRevision) return;
    if (outcome.previousRevision === 0 && !this.options.reloadOnFirstWrite) {
      this.told(outcome.revision); // nobody consumed an older value: nothing is owed
      return;
    }
    this.notify({ revision: outcome.revision, changedKeys: outcome.changedKeys });
  }

  /**
   * At start, with the revision on the volume: runs the reload an earlier process owed the app (it
   * wrote a revision and died before its actions ran). A volume without a ledger (a first start, an
   * older version) owes nothing: the ledger starts at the revision on the volume.
   */
  async resume(revisionOnVolume: number): Promise<void> {
    const ledger = this.options.ledger;
    if (!this.enabled || ledger === undefined || revisionOnVolume === 0) return;
    const told = await ledger.read().catch(() => undefined);
    if (told !== undefined && revisionOnVolume > told) {
      this.options.log.warn({ revision: revisionOnVolume, toldRevision: told }, 'a reload owed from before the restart runs now');
      this.notify({ revision: revisionOnVolume, changedKeys: [] });
    } else if (told === undefined) {
      this.told(revisionOnVolume);
    }
  }

  private told(revision: number): void {
    if (!this.enabled || this.options.ledger === undefined) return; // no actions, nothing is ever owed
    const ledger = this.options.ledger;
    // In order, and awaited by stop(): `once` must not exit with the record of its reload still in flight.
    this.recording = this.recording
      .then(() => ledger.write(revision))
      .catch((error: Error) => this.options.log.warn({ err: error.message }, 'could not record the reloaded revision'));
  }

  /** Records a change; the actions run once the burst is over and the cooldown has passed. */
  notify(event: ChangeEvent): void {
    if (!this.enabled || this.stopped) return;
    const now = this.now();
    if (this.pending === undefined) this.pending = { revision: event.revision, keys: new Set(), firstAt: now };
    this.pending.revision = event.revision;
    for (const key of event.changedKeys) this.pending.keys.add(key);
    this.schedule();
  }

  /**
   * Lets a run in progress finish, then runs the pending change without waiting for its debounce or
   * cooldown (nothing more will arrive: the refresh loop has stopped), all within the stop grace.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer();
    if (this.running === undefined && this.pending === undefined) return this.recording;
    const graceMs = this.options.stopGraceMs ?? RELOAD_STOP_GRACE_MS;
    const cancelGrace = this.clock.schedule(graceMs, () => this.stopping.abort());
    try {
      await this.running;
      this.cancelTimer(); // set again by the run's end when a change was pending
      if (this.pending !== undefined) {
        this.options.log.info({ revision: this.pending.revision, changedKeys: [...this.pending.keys].sort(), graceMs }, 'stopping: running the pending reload before exit');
        this.fire();
        await this.running;
      }
    } finally {
      cancelGrace();
    }
    await this.recording;
  }

  private schedule(): void {
    if (this.pending === undefined || this.running !== undefined || this.stopped) return;
    const now = this.now();
    const quietAt = Math.min(now + this.options.debounceMs, this.pending.firstAt + 4 * this.options.debounceMs);
    const fireAt = Math.max(quietAt, this.lastRunEndedAt + this.options.cooldownMs);
    this.cancelTimer();
    this.cancelTimer = this.clock.schedule(fireAt - now, () => this.fire(), { unref: true });
  }

  private fire(): void {
    const batch = this.pending;
    if (batch === undefined) return;
    this.pending = undefined;
    const event: ChangeEvent = { revision: batch.revision, changedKeys: [...batch.keys].sort() };
    this.running = this.runAll(event).finally(() => {
      this.lastRunEndedAt = this.now();
      this.running = undefined;
      this.schedule();
    });
  }

  private async runAll(event: ChangeEvent): Promise<void> {
    const log = this.options.log;
    for (const action of this.options.actions) {
      const started = this.now();
      if (this.stopping.signal.aborted) {
        log.error({ action: action.name, revision: event.revision, changedKeys: event.changedKeys.map(printable) }, 'reload action not run: the stop grace ran out');
        this.options.onResult?.(action.name, 'failure', 0);
        continue;
      }
      try {
        await action.run(event, this.stopping.signal);
        const ms = this.now() - started;
        log.info({ action: action.name, revision: event.revision, changedKeys: event.changedKeys.map(printable), ms }, 'reload action done');
        this.options.onResult?.(action.name, 'success', ms);
      } catch (error) {
        const ms = this.now() - started;
        if (this.stopping.signal.aborted) {
          log.error({ action: action.name, revision: event.revision, changedKeys: event.changedKeys.map(printable), ms }, 'reload action cut short: the stop grace ran out');
        } else {
          log.error({ action: action.name, revision: event.revision, err: (error as Error).message, ms }, 'reload action failed; it runs again on the next change');
        }
        this.options.onResult?.(action.name, 'failure', ms);
      }
    }
    // Told, even after a failure: a failed action runs again on the next change, not in a loop.
    if (!this.stopping.signal.aborted) this.told(event.revision);
  }
}
