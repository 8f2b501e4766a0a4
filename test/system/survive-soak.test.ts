/**
 * Soak. The whole app (real client, syncer, writer, watcher, health server) refreshes
 * against the fake server as fast as it can (a 2 ms interval, set past the config's 1 s minimum),
 * through rotations, 5xx, resets, 429s and expired tokens, thousands of times. Resident memory,
 * the V8 heap, open file descriptors (/proc/self/fd) and active handles must stay flat, and no
 * canary may reach a log line.
 *
 * Quick form (the normal test run): 1,000 cycles. Long form: `npm run soak` (SOAK_CYCLES=30000).
 */
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';
import { canaries, forms } from '../helpers/canaries.js';
import { health, scenario } from '../helpers/scenario.js';
import { FAST, glitchtipEnv } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/wait.js';

const CYCLES = Number(process.env.SOAK_CYCLES ?? 1_000);
const LONG = CYCLES > 5_000;
const WARM_UP = Math.max(300, Math.round(CYCLES * 0.2));

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Sample {
  readonly cycle: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  readonly fds: number;
  readonly handles: number;
}

function sample(cycle: number): Sample {
  gc();
  gc();
  const memory = process.memoryUsage();
  return {
    cycle,
    rssMiB: memory.rss / 2 ** 20,
    heapMiB: memory.heapUsed / 2 ** 20,
    fds: readdirSync('/proc/self/fd').length,
    handles: process.getActiveResourcesInfo().filter((kind) => kind !== 'Timeout').length,
  };
}

/** Least-squares slope of `y` per 1,000 cycles. */
function slopePer1000(samples: readonly Sample[], y: (s: Sample) => number): number {
  const n = samples.length;
  const mx = samples.reduce((sum, s) => sum + s.cycle, 0) / n;
  const my = samples.reduce((sum, s) => sum + y(s), 0) / n;
  const sxy = samples.reduce((sum, s) => sum + (s.cycle - mx) * (y(s) - my), 0);
  const sxx = samples.reduce((sum, s) => sum + (s.cycle - mx) ** 2, 0);
  return sxx === 0 ? 0 : (sxy / sxx) * 1_000;
}

describe('soak', () => {
  it(`${CYCLES.toLocaleString('en')} refresh cycles at full speed with faults: RSS, heap, fds and handles stay flat`, async ({ onTestFinished }) => {
    const planted = canaries();
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    planted.seed(fake);

    // A log sink that keeps nothing: counts finished passes and checks every line for canaries on the fly.
    let cycles = 0;
    let failures = 0;
    let writes = 0;
    let leakedLines = 0;
    let checkedChars = 0;
    const protectedForms: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const text = chunk.toString('utf8');
        checkedChars += text.length;
        if (protectedForms.some((form) => text.includes(form))) leakedLines++;
        if (text.includes('"component":"sync"')) {
          if (text.includes('"msg":"secrets unchanged"')) cycles++;
          else if (text.includes('"msg":"secrets written"')) {
            cycles++;
            writes++;
          } else if (text.includes('"msg":"sync failed; last good files kept"')) {
            cycles++;
            failures++;
          }
        }
        callback();
      },
    });

    const dir = s.tempDir('soak-');
    const env = glitchtipEnv(fake, dir, { ...FAST, SIDECAR_LOG_LEVEL: 'debug', ...(process.env.SOAK_WATCH ? { SIDECAR_WATCH: process.env.SOAK_WATCH } : {}) });
    const config: Config = { ...loadConfig(env), refreshIntervalMs: 2, refreshJitter: 0, backoffMaxMs: 2, maxStalenessMs: 60_000 };
    const app = createApp(config, createLogger('debug', sink as never));
    await s.start(app);

    const samples: Sample[] = [];
    let nextAction = 0;
    const started = Date.now();
    // Real time: the loop runs at full speed on the wall clock, which is what a soak measures. The
    // deadline only turns a hang into a failure: ten times what 1,000 cycles take on a quiet machine (~27 s).
    const deadline = started + (LONG ? CYCLES * 50 : 280_000);
    let rotated = 0;
    while (cycles < CYCLES) {
      if (Date.now() > deadline) expect.fail(`only ${cycles} of ${CYCLES} cycles before the deadline`);
      const n = cycles;
      if (n >= nextAction) {
        nextAction = n + 1;
        // A mix of everything the run loop meets, on a fixed schedule.
        if (n % 10 === 0) {
          const value = planted.canary('soak', 'plain');
          protectedForms.push(...forms(value));
          fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', value);
          rotated++;
        }
        if (n % 50 === 25) fake.faults.add({ route: 'list', kind: 'status', status: 503, times: 1 });
        if (n % 70 === 35) fake.faults.add({ route: 'list', kind: 'reset', times: 1 });
        if (n % 90 === 45) fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: 0, times: 1 });
        if (n % 110 === 55) fake.faults.add({ route: 'list', kind: 'malformed', times: 1 });
        if (n % 130 === 65) fake.expireTokens();
        if (n % 100 === 0) fake.clearRequests(); // the fake's own request log would grow otherwise
        if (protectedForms.length > 400) protectedForms.splice(0, protectedForms.length - 400);
        const every = Math.max(100, Math.round(CYCLES / 40));
        if (n >= WARM_UP && (samples.length === 0 || n - samples[samples.length - 1]!.cycle >= every)) samples.push(sample(n));
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const elapsed = Date.now() - started;
    samples.push(sample(cycles));
    const report = (await health(app)).body;
    const metrics = (await app.server.inject('/metrics')).body;
    if (protectedForms.some((form) => metrics.includes(form))) leakedLines++;
    await waitFor(async () => (await health(app)).body.revision >= 1, 'still serving');

    const first = samples[0]!;
    const last = samples[samples.length - 1]!;
    const drift = {
      rssMiB: +(last.rssMiB - first.rssMiB).toFixed(1),
      heapMiB: +(last.heapMiB - first.heapMiB).toFixed(2),
      fds: last.fds - first.fds,
      handles: last.handles - first.handles,
      rssSlopeMiBPer1000: +slopePer1000(samples, (x) => x.rssMiB).toFixed(2),
      heapSlopeMiBPer1000: +slopePer1000(samples, (x) => x.heapMiB).toFixed(3),
    };
    console.info(
      `[survive] soak: ${cycles} cycles in ${elapsed} ms (${Math.round((cycles / elapsed) * 1000)}/s), ${writes} writes, ${failures} failed passes, ${rotated} rotations; ` +
        `from cycle ${first.cycle} to ${last.cycle}: RSS ${first.rssMiB.toFixed(1)} → ${last.rssMiB.toFixed(1)} MiB, heap ${first.heapMiB.toFixed(1)} → ${last.heapMiB.toFixed(1)} MiB, ` +
        `fds ${first.fds} → ${last.fds}, handles ${first.handles} → ${last.handles}; drift ${JSON.stringify(drift)}; ${samples.length} samples`,
    );

    expect(leakedLines).toBe(0);
    expect(checkedChars).toBeGreaterThan(CYCLES * 100);
    expect(writes).toBeGreaterThan(CYCLES / 20);
    expect(failures).toBeGreaterThan(CYCLES / 40);
    expect(report.status === 'ok' || report.status === 'degraded').toBe(true);
    // Flat: bounded differences (allocator noise), and no upward trend per 1,000 cycles.
    expect(drift.fds).toBeLessThanOrEqual(3);
    expect(drift.handles).toBeLessThanOrEqual(3);
    expect(drift.heapMiB).toBeLessThan(LONG ? 8 : 6);
    expect(drift.rssMiB).toBeLessThan(LONG ? 40 : 30);
    if (LONG) {
      expect(drift.heapSlopeMiBPer1000).toBeLessThan(0.2);
      expect(drift.rssSlopeMiBPer1000).toBeLessThan(1);
    }
  }, LONG ? CYCLES * 60 : 300_000);
});
