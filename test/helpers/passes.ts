/**
 * Driving the refresh loop of an app on a ManualClock (helpers/clock.ts), one pass at a time.
 *
 *   const first = await passAfter(clock, app, null);   // the pass at start
 *   const second = await nextPass(clock, app);          // the clock moved to the next one, and it ran
 */
import type { App } from '../../src/app.js';
import type { HealthReport } from '../../src/health/state.js';
import type { ManualClock } from './clock.js';

/** Resolves once the refresh loop has recorded a pass after the one that ended at `since`; it schedules its next wake-up in the same tick. */
export async function passAfter(clock: ManualClock, app: App, since: string | null): Promise<HealthReport> {
  await clock.whenPending(() => app.health.report().lastAttemptAt !== since);
  return app.health.report();
}

/** Moves the clock to the pass the loop sleeps until and waits until that pass is recorded. */
export async function nextPass(clock: ManualClock, app: App): Promise<HealthReport> {
  const { lastAttemptAt, nextRefreshAt } = app.health.report();
  await clock.advance(Date.parse(nextRefreshAt!) - clock.now());
  return passAfter(clock, app, lastAttemptAt);
}
