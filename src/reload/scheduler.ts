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
 */
import type { Logger } from '../log.js';

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

export interface ReloadSchedulerOptions {
  readonly actions: readonly ReloadAction[];
  /** Also reload when the first write fills an empty volume (SIDECAR_RELOAD_ON_FIRST_WRITE). */
  readonly reloadOnFirstWrite: boolean;
  readonly debounceMs: number;
  readonly cooldownMs: number;
  readonly log: Logger;
  readonly onResult?: (action: string, outcome: ReloadOutcome, ms: number) => void;
  readonly now?: () => number;
}

export class ReloadScheduler {
  private pending: { revision: number; keys: Set<string>; firstAt: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastRunEndedAt = Number.NEGATIVE_INFINITY;
  private readonly stopping = new AbortController();
  private readonly now: () => number;

  constructor(private readonly options: ReloadSchedulerOptions) {
    this.now = options.now ?? Date.now;
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
    if (outcome.previousRevision === 0 && !this.options.reloadOnFirstWrite) return;
    this.notify({ revision: outcome.revision, changedKeys: outcome.changedKeys });
  }

  /** Records a change; the actions run once the burst is over and the cooldown has passed. */
  notify(event: ChangeEvent): void {
    if (!this.enabled || this.stopping.signal.aborted) return;
    const now = this.now();
    if (this.pending === undefined) this.pending = { revision: event.revision, keys: new Set(), firstAt: now };
    this.pending.revision = event.revision;
    for (const key of event.changedKeys) this.pending.keys.add(key);
    this.schedule();
  }

  /** Waits for a run in progress; pending changes are dropped (the process is stopping). */
  async stop(): Promise<void> {
    this.stopping.abort();
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.pending === undefined || this.running !== undefined) return;
    const now = this.now();
    const quietAt = Math.min(now + this.options.debounceMs, this.pending.firstAt + 4 * this.options.debounceMs);
    const fireAt = Math.max(quietAt, this.lastRunEndedAt + this.options.cooldownMs);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), Math.max(0, fireAt - now));
    this.timer.unref?.();
  }

  private fire(): void {
    const batch = this.pending;
    if (batch === undefined || this.stopping.signal.aborted) return;
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
      if (this.stopping.signal.aborted) return;
      const started = this.now();
      try {
        await action.run(event, this.stopping.signal);
        const ms = this.now() - started;
        log.info({ action: action.name, revision: event.revision, changedKeys: event.changedKeys, ms }, 'reload action done');
        this.options.onResult?.(action.name, 'success', ms);
      } catch (error) {
        const ms = this.now() - started;
        log.error({ action: action.name, revision: event.revision, err: (error as Error).message, ms }, 'reload action failed; it runs again on the next change');
        this.options.onResult?.(action.name, 'failure', ms);
      }
    }
  }
}
