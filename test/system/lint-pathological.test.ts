/**
 * Lint stays linear on the values built to make a regex backtrack: 1 MiB of `\n`, `\r\n`, spaces,
 * `%`, `@`, `:` or `[` in every URL-shaped key GlitchTip reads, rotated in one after another, while a
 * probe asks /healthz every 100 ms over real HTTP. Every answer comes within 250 ms: no pass blocks
 * the event loop long enough for Docker's healthcheck or a monitor to see the sidecar as hung.
 * Real time: what is measured is how long the health port goes unanswered. The fast tier checks the
 * regexes themselves (test/regex-safety.test.ts).
 */
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { DEMO_APPLICATION_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';
import { health, scenario } from '../helpers/scenario.js';
import { FAST, glitchtipEnv } from '../helpers/sidecar.js';
import { waitFor } from '../helpers/wait.js';

const MIB = 1024 * 1024;
const PATTERNS: Readonly<Record<string, string>> = {
  'newlines then x': `${'\n'.repeat(MIB - 1)}x`,
  'CRLFs then x': `${'\r\n'.repeat(MIB / 2 - 1)}xy`,
  'spaces then x': `${' '.repeat(MIB - 1)}x`,
  percents: '%'.repeat(MIB),
  'at signs': '@'.repeat(MIB),
  'colons then x': `${':'.repeat(MIB - 1)}x`,
  brackets: '['.repeat(MIB),
};
const URL_KEYS = ['EMAIL_URL', 'READ_ONLY_DATABASE_URL', 'MAINTENANCE_DATABASE_URL', 'REDIS_URL', 'VALKEY_URL'];
const PROBE_EVERY_MS = 100;
const ANSWER_WITHIN_MS = 250;

describe('lint on pathological 1 MiB values', () => {
  it('every /healthz answer comes within 250 ms while each pattern is linted in every URL key', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    const { app } = s.app(glitchtipEnv(fake, s.tempDir(), { ...FAST, SIDECAR_MAX_STALENESS: '1h', SIDECAR_CONSUMER: 'glitchtip', SIDECAR_WATCH: 'false' }));
    await s.start(app);
    await waitFor(async () => (await health(app)).body.revision === 1, 'the first set');
    const { port } = app.server.server.address() as AddressInfo;

    const latencies: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const started = performance.now();
        const answer = await fetch(`http://127.0.0.1:${port}/healthz`);
        await answer.text();
        latencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
      }
    })();

    let revision = 1;
    const linted: string[] = [];
    for (const [name, value] of Object.entries(PATTERNS)) {
      for (const key of URL_KEYS) fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, key, value);
      app.trigger('test');
      revision++;
      const report = await waitFor(async () => {
        const answer = await health(app);
        return answer.body.revision === revision ? answer.body : undefined;
      }, `the set with ${name}`, 60_000);
      linted.push(`${name}: ${report.warnings?.length ?? 0} warning(s)`);
    }
    probing = false;
    await probe;

    console.info(`[lint] ${latencies.length} /healthz answers, slowest ${Math.round(Math.max(...latencies))} ms; ${linted.join('; ')}`);
    expect(latencies.length).toBeGreaterThan(Object.keys(PATTERNS).length);
    expect(latencies.filter((ms) => ms > ANSWER_WITHIN_MS).map(Math.round)).toEqual([]);
  }, 300_000);
});
