/**
 * A clock the test moves itself, for the whole sidecar (`createApp(config, log, { clock })`) or one
 * stage. Nothing waits on real time: a timer fires only when `advance` passes its due time, so a
 * backoff, a deadline or a staleness bound is asserted exactly, on a loaded machine as on a quiet one.
 * I/O stays real; between timers `advance` lets what a timer woke run until it waits again.
 *
 *   const clock = new ManualClock();
 *   const { app } = s.app(env, {}, { clock });
 *   await s.start(app);
 *   await clock.whenPending((dueIn) => dueIn === 1_000);   // the loop sleeps until its next refresh
 *   await clock.advance(1_000);                            // … which now runs
 */
import type { Clock, ScheduleOptions } from '../../src/timers.js';
import { systemClock, timerDelay } from '../../src/timers.js';

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * The clock a test helper gives the sidecar when the test names none: in the fast tier a fresh
 * ManualClock nobody moves (a deadline, a retry or staleness happens only when a test advances a
 * clock it holds), in the system tier the real one (vitest.system.config.ts sets
 * SIDECAR_TEST_TIME=real: real PostgreSQL, processes and soaks run on wall time).
 */
export function tierClock(): Clock {
  return process.env.SIDECAR_TEST_TIME === 'real' ? systemClock : new ManualClock();
}

/** 2026-01-01T00:00:00Z: every manual clock starts here unless told otherwise. */
export const CLOCK_START = Date.UTC(2026, 0, 1);

export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Set<Timer>();
  private readonly watchers = new Set<() => void>();
  /** Every delay asked of `schedule`, in order (a backoff's sequence, read exactly). */
  readonly scheduled: number[] = [];

  constructor(start = CLOCK_START) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  schedule(ms: number, fn: () => void, _options?: ScheduleOptions): () => void {
    const delay = timerDelay(ms);
    const timer: Timer = { at: this.time + delay, seq: this.seq++, fn };
    this.timers.add(timer);
    this.scheduled.push(delay);
    for (const watcher of [...this.watchers]) watcher();
    return () => void this.timers.delete(timer);
  }

  /** The pending timers' delays from now, earliest first. */
  pending(): number[] {
    return [...this.timers].map((timer) => timer.at - this.time).sort((a, b) => a - b);
  }

  /** Resolves once a timer is pending whose delay from now meets `test` (any timer by default). */
  whenPending(test: (dueInMs: number) => boolean = () => true): Promise<void> {
    const met = () => [...this.timers].some((timer) => test(timer.at - this.time));
    if (met()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const watcher = () => {
        if (!met()) return;
        this.watchers.delete(watcher);
        resolve();
      };
      this.watchers.add(watcher);
    });
  }

  /**
   * Moves the clock `ms` forward, firing every timer that falls due on the way in due order, the
   * clock standing at each one's due time as it fires; after each, what it woke runs until it waits
   * again (promise jobs and I/O callbacks already queued). A timer scheduled by a woken task that
   * falls due within the advance fires in it too.
   */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await settle();
      const due = [...this.timers].filter((timer) => timer.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.timers.delete(due);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = target;
    await settle();
  }

  /** Waits for a timer to be pending (`whenPending(test)`), then advances to the earliest one and fires it; returns the delay that passed. */
  async next(test?: (dueInMs: number) => boolean): Promise<number> {
    await this.whenPending(test);
    const delay = Math.max(0, this.pending().find((dueIn) => !test || test(dueIn)) ?? 0);
    await this.advance(delay);
    return delay;
  }
}

/** Lets queued promise jobs and ready I/O callbacks run: a few turns of the event loop, no time. */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 3; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}
