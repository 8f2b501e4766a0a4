/**
 * The output watcher (src/sync/watch.ts) against the real writer: it reacts to damage of the live
 * set (a deleted link, a replaced `..data`, an edited or deleted file) and ignores a version while it
 * is being written. Its debounce runs on a manual clock (test/helpers/clock.ts): a repair happens when
 * the test moves the clock past a debounce the watcher scheduled. What a large write costs with the
 * watcher on is measured in test/system/watch.test.ts.
 */
import { appendFileSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, renameSync, watch, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AtomicDirWriter, type WriteOptions } from '../src/output/atomic-dir.js';
import { startWatching } from '../src/sync/watch.js';
import { ManualClock } from './helpers/clock.js';
import { testLogger } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const MODE: WriteOptions = { mode: 0o640 };
const DEBOUNCE_MS = 50;

const set = (value: string, count = 3) => [
  { path: 'secrets.env', content: Buffer.from(`A='${value}'\n`) },
  ...Array.from({ length: count }, (_, i) => ({ path: `keys/K${i}`, content: Buffer.from(`${value}-${i}`) })),
];

/** A written set with the watcher on it; `repairs` lists what each repair found damaged. */
async function watchedSet(count = 3) {
  const dir = makeTempDir();
  const writer = new AtomicDirWriter(dir);
  await writer.write(set('v1', count), MODE);
  const repairs: string[][] = [];
  const { log, logs } = testLogger();
  const clock = new ManualClock();
  const watcher = startWatching({
    outputDir: dir,
    credentialFiles: [],
    configFile: undefined,
    repairOutputs: async () => {
      const damaged = await writer.repair(MODE);
      repairs.push(damaged);
      return damaged;
    },
    onCredentialsChanged: () => undefined,
    onConfigChanged: () => ({}),
    log,
    debounceMs: DEBOUNCE_MS,
    clock,
  });
  onTestFinished(() => watcher.close());
  await watcher.ready;
  /**
   * Waits until `check` holds, running every debounce the watcher schedules meanwhile (the damage's
   * events, and those of the repair itself, arrive as the OS delivers them).
   */
  const healed = (check: () => boolean, what: string) =>
    waitFor(async () => {
      if (clock.pending().length > 0) await clock.advance(DEBOUNCE_MS);
      return check();
    }, what);
  return { dir, writer, watcher, repairs, logs, clock, healed };
}

const restored = (repairs: string[][]) => repairs.some((damaged) => damaged.length > 0);

describe('self-healing', () => {
  it('restores a deleted top-level link', async () => {
    const { dir, repairs, healed } = await watchedSet();
    rmSync(path.join(dir, 'secrets.env'));
    await healed(() => restored(repairs) && readFileSync(path.join(dir, 'secrets.env'), 'utf8') === "A='v1'\n", 'secrets.env restored');
  });

  it('restores a replaced ..data', async () => {
    const { dir, repairs, healed } = await watchedSet();
    const live = readlinkSync(path.join(dir, '..data'));
    mkdirSync(path.join(dir, 'planted', 'keys'), { recursive: true });
    writeFileSync(path.join(dir, 'planted', 'secrets.env'), "A='planted'\n");
    symlinkSync('planted', path.join(dir, '..data.swap'));
    renameSync(path.join(dir, '..data.swap'), path.join(dir, '..data'));
    await healed(() => restored(repairs) && readlinkSync(path.join(dir, '..data')) !== 'planted', '..data pointing to a version again');
    expect(readFileSync(path.join(dir, 'secrets.env'), 'utf8')).toBe("A='v1'\n");
    expect(readlinkSync(path.join(dir, '..data'))).not.toBe(live); // a fresh copy of the same set
  });

  it('restores an edited or deleted file of the live set, also after a new version went live', async () => {
    const { dir, writer, repairs, healed } = await watchedSet();
    appendFileSync(path.join(dir, 'keys', 'K1'), 'tampered');
    await healed(() => readFileSync(path.join(dir, 'keys', 'K1'), 'utf8') === 'v1-1', 'keys/K1 restored');

    await writer.write(set('v2'), MODE);
    await healed(() => repairs.length >= 2, 'the check after the new version');
    rmSync(path.join(dir, 'keys', 'K2'));
    await healed(() => readFileSync(path.join(dir, 'keys', 'K2'), 'utf8') === 'v2-2', 'keys/K2 of the new version restored');
  });
});

describe('what the watcher ignores', () => {
  it('a version directory being written (step 1), however many files it holds', async () => {
    const { dir, repairs, clock } = await watchedSet();
    // A watch of our own on the same directory: the OS delivers its events in order, to every
    // watch of the directory, so once ours sees the barrier the sidecar's watcher has seen the rest.
    let barrierSeen!: () => void;
    const barrier = new Promise<void>((resolve) => (barrierSeen = resolve));
    const ours = watch(dir, { persistent: false }, (_event, name) => name === '..barrier' && barrierSeen());
    onTestFinished(() => ours.close());

    const staging = path.join(dir, '..rev-000099-staging');
    mkdirSync(path.join(staging, 'keys'), { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(path.join(staging, 'keys', `N${i}`), `n-${i}`);
    rmSync(staging, { recursive: true });
    writeFileSync(path.join(dir, '..barrier'), ''); // a `..` name: the writer's own, ignored too
    await barrier;

    expect(clock.scheduled, 'no debounce scheduled').toEqual([]);
    await clock.advance(DEBOUNCE_MS * 8);
    expect(repairs).toEqual([]);
  });
});
