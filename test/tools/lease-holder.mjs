#!/usr/bin/env node
/**
 * One sidecar's output lease in its own process (the real lease code, transpiled from src/ by
 * test/helpers/transpile.ts), for test/lease.test.ts and test/system/lease.test.ts. Prints one JSON
 * line per event on stdout.
 *
 * usage: node test/tools/lease-holder.mjs <lease-module> <dir> <mode> <ttl-ms> <wait-ms> <clock> [marker rounds]
 *   mode  hold:  acquire, say {event:'acquired'|'refused'}, keep it (renewed) until SIGTERM, which
 *                releases it; a takeover found at a renewal says {event:'lost'} and exits 3.
 *         turns: `rounds` times: acquire as a standby, be the only one inside (an O_EXCL `marker`),
 *                let go; then say {event:'done', violations}.
 *   clock system: the real clock.
 *         frozen: time stands still at 2026-01-01 (the lease's timers still fire on Node's): no lease
 *                 ever expires, so only release and standby hand it over, however slow the machine.
 */
import { closeSync, openSync, unlinkSync } from 'node:fs';

const [modulePath, dir, mode, ttl, wait, clockKind, marker, rounds] = process.argv.slice(2);
const { OutputLease } = await import(modulePath);
const FROZEN_AT = Date.UTC(2026, 0, 1);
const frozen = {
  now: () => FROZEN_AT,
  schedule(ms, fn) {
    const timer = setTimeout(fn, Math.min(2_147_483_647, Math.max(0, Math.ceil(ms) || 0)));
    return () => clearTimeout(timer);
  },
};
const clock = clockKind === 'frozen' ? { clock: frozen } : {};
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

if (mode === 'hold') {
  const lease = new OutputLease(dir, { ttlMs: Number(ttl), ...clock });
  try {
    await lease.acquire({
      waitMs: Number(wait),
      onLost: (error) => {
        say({ event: 'lost', code: error.code, message: error.message });
        process.exit(3);
      },
    });
  } catch (error) {
    say({ event: 'refused', code: error.code, message: error.message });
    process.exit(2);
  }
  say({ event: 'acquired', holder: lease.holder });
  process.on('SIGTERM', async () => {
    await lease.release();
    process.exit(0);
  });
  setInterval(() => undefined, 1_000);
} else {
  let violations = 0;
  for (let round = 0; round < Number(rounds); round++) {
    const lease = new OutputLease(dir, { ttlMs: Number(ttl), ...clock });
    await lease.acquire({ waitMs: Number.POSITIVE_INFINITY });
    try {
      closeSync(openSync(marker, 'wx'));
    } catch {
      violations++;
    }
    // A moment inside, so that a second holder would be caught there.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await lease.assertHeld();
    try {
      unlinkSync(marker);
    } catch {
      violations++;
    }
    await lease.release();
  }
  say({ event: 'done', violations });
}
