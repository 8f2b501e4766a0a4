/**
 * 10,000 secrets in one folder, end to end: from the fake Infisical server over HTTP through the real
 * client, merge, render and writer, every value byte-exact in secrets.json, in keys/ and in the
 * env file as dash sources it; an unchanged second pass writes nothing. The other hostile-input
 * cases are test/survive-hostile.test.ts.
 *
 * In the system tier for its weight, not for its time: nothing here reads a clock, and the sidecar
 * runs on a manual clock that stands still, so no deadline can cut the pass short. But it is tens of
 * thousands of real filesystem operations (10,009 files written, read back and sourced): about 7 s
 * on a quiet 2-core machine, and 50–64 s on one at load 15–20, where it saturated libuv's thread pool
 * for the fast tier's other files and met its own 60 s test timeout.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_APPLICATION_PATH, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';
import { leakGuard } from '../helpers/canaries.js';
import { ManualClock } from '../helpers/clock.js';
import { scenario } from '../helpers/scenario.js';
import { FAST, glitchtipEnv } from '../helpers/sidecar.js';

/** Checks, after the last test, everything this file's sidecars printed or served. */
const guard = leakGuard(1_000);
const BULK_PATH = '/glitchtip/bulk';
const BASE_PATHS = `${DEMO_DATABASE_PATH},${DEMO_APPLICATION_PATH}`;

describe('hostile input, end to end', () => {
  it('10,000 secrets in one folder: every one byte-exact in json, keys/ and the sourced env file; the unchanged second pass writes nothing', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const fake = await s.fake();
    guard.seed(fake);
    const values = new Map<string, string>();
    for (let i = 0; i < 10_000; i++) {
      const key = `BULK_${String(i).padStart(5, '0')}`;
      // Mostly short random values, every 97th one awkward (quotes, newline, $, backslash).
      const value = i % 97 === 0 ? `it's "v${i}"\n$HOME \\ \`x\`` : randomBytes(12).toString('base64url');
      values.set(key, value);
      fake.setSecret(DEMO_ENVIRONMENT, BULK_PATH, key, value);
    }
    const dir = s.tempDir();
    const env = glitchtipEnv(fake, dir, { ...FAST, INFISICAL_SECRET_PATHS: `${BASE_PATHS},${BULK_PATH}` });
    const { app } = s.app(env, {}, { clock: new ManualClock() });
    const first = await app.once();
    expect(first).toMatchObject({ ok: true, revision: 1, keyCount: 10_005 });
    const second = await app.once();
    expect(second).toMatchObject({ ok: true, changed: false, revision: 1, filesWritten: 0 });

    const json = JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(json)).toHaveLength(10_005);
    for (const [key, value] of values) if (json[key] !== value) expect.fail(`secrets.json ${key}`);
    expect(readdirSync(path.join(dir, 'keys'))).toHaveLength(10_005);
    for (const [key, value] of values) if (readFileSync(path.join(dir, 'keys', key), 'utf8') !== value) expect.fail(`keys/${key}`);
    // dash sources all 10,005 assignments; compare every bulk value through one printf.
    const script = `. "$1"; for k in $(seq -f 'BULK_%05g' 0 9999); do eval "printf '%s\\0' \\"\\$$k\\""; done`;
    const sourced = spawnSync('dash', ['-c', script, 'dash', path.join(dir, 'secrets.env')], { maxBuffer: 64 << 20 });
    expect(sourced.status, sourced.stderr.toString()).toBe(0);
    expect(sourced.stdout.toString('utf8').split('\0').slice(0, -1)).toEqual([...values.values()]);
    console.info(`[survive] 10,000 secrets: first pass ${first.filesWritten} files, ${first.bytesWritten} bytes; unchanged pass ${second.filesWritten} files`);
  }, 60_000);

});
