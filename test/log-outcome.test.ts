/**
 * The log lines a pass leaves name keys, and key names come from the server (or an operator's
 * SIDECAR_REQUIRED_KEYS): each one is shown through `printable`, so a newline or a bidi override
 * in a name can neither split a line nor reorder it for the person reading the log.
 */
import { describe, expect, it } from 'vitest';
import { SidecarError } from '../src/errors.js';
import { logOutcome } from '../src/sync/log-outcome.js';
import type { SyncOutcome } from '../src/sync/sync-once.js';
import { leakGuard } from './helpers/canaries.js';
import { testLogger } from './helpers/sidecar.js';

leakGuard(500);

/** U+202E (right-to-left override) and U+2066 (left-to-right isolate), and a newline: raw in a name, escaped in every log line. */
const HOSTILE = 'EVIL\u202Etxt.exe\u2066\nFAKE';
const ESCAPED = String.raw`EVIL\u202etxt.exe\u2066\nFAKE`;

const passed: SyncOutcome = {
  ok: true,
  startedAt: 0,
  finishedAt: 5,
  folders: [],
  error: undefined,
  missingKeys: [],
  keyCount: 2,
  keys: ['A', HOSTILE],
  changed: true,
  revision: 2,
  previousRevision: 1,
  changedKeys: ['A', HOSTILE],
  bytesWritten: 10,
  filesWritten: 2,
  skipped: [{ key: HOSTILE, output: 'env', reason: 'not-an-env-name' }],
  oversizedForEnv: [HOSTILE],
  overridden: [{ key: HOSTILE, from: '/a', winner: '/b' }],
};

describe('logOutcome', () => {
  it('escapes every key name it logs: changed, overridden, skipped, oversized and missing keys; the error message as made (already escaped) is not escaped twice', () => {
    const { log, logs } = testLogger();
    logOutcome(log, passed, 1_000);
    logOutcome(log, { ...passed, ok: false, changed: false, changedKeys: [], missingKeys: [HOSTILE], error: new SidecarError('SIDECAR_MISSING_REQUIRED_KEYS', `required key missing from /: ${ESCAPED}`) }, 2_000);

    const lines = logs.lines();
    expect(lines.map((line) => line.msg)).toEqual([
      'secrets written',
      'key defined in more than one folder; the later folder wins',
      'key left out of an output',
      'value longer than the 128 KiB a single environment variable may hold: exporting secrets.env will make exec fail; read it from its keys/ file instead',
      'sync failed; last good files kept',
    ]);
    expect(lines[0]!.changedKeys).toEqual(['A', ESCAPED]);
    for (const line of lines.slice(1, 4)) expect(line.key, String(line.msg)).toBe(ESCAPED);
    expect(lines[4]!.missingKeys).toEqual([ESCAPED]);
    expect(lines[4]!.err).toBe(`required key missing from /: ${ESCAPED}`);
    expect(logs.text()).not.toMatch(/[\u202e\u2066]/);
  });
});
