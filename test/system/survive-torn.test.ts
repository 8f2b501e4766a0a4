/**
 * No torn reads. A reader *process* (test/tools/reader.mjs) reads the output
 * directory as fast as it can while the real AtomicDirWriter rewrites it 10,000 times: every file it
 * reads is whole and already has its final mode, and every set it reads the documented way (resolve
 * `..data` once) is one generation. On a tmpfs (the production medium): a fresh mount when possible,
 * else /dev/shm. The crash half is test/survive-crash.test.ts.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AtomicDirWriter } from '../../src/output/atomic-dir.js';
import { checkSet, lines, makeSet, outputDir } from '../helpers/output-set.js';

const TOOLS = fileURLToPath(new URL('../tools/', import.meta.url));
const REWRITES = Number(process.env.SURVIVE_REWRITES ?? 10_000);
/** The reader pauses this long between rounds, so it does not take a whole core from the rest of the suite. */
const READER_PACE_MS = process.env.SURVIVE_READER_PACE_MS ?? '1';
const WRITE = { mode: 0o440 } as const;

describe('no torn reads', () => {
  it(`a reader process sees 0 torn files and 0 mixed sets across ${REWRITES.toLocaleString('en')} rewrites`, async () => {
    const dir = outputDir('torn-');
    const writer = new AtomicDirWriter(dir);
    await writer.write(makeSet(0), WRITE);

    const reader = spawn(process.execPath, [path.join(TOOLS, 'reader.mjs'), dir, '-', READER_PACE_MS, '440'], { stdio: 'pipe' });
    onTestFinished(() => {
      if (reader.exitCode === null) reader.kill('SIGKILL');
    });
    const output = lines(reader);
    expect(await output.next()).toBe('ready');

    const started = Date.now();
    for (let gen = 1; gen <= REWRITES; gen++) await writer.write(makeSet(gen), WRITE);
    const writeMs = Date.now() - started;
    reader.stdin.end('stop\n');
    const counts = JSON.parse(await output.next()) as Record<string, number | string[] | undefined>;

    console.info(`[survive] torn reads: ${REWRITES} rewrites in ${writeMs} ms; reader: ${JSON.stringify(counts)}`);
    expect(counts.errors).toEqual([]);
    expect(counts).toMatchObject({ torn: 0, mixed: 0, regressions: 0, singleTorn: 0, naiveTorn: 0, badMode: 0 });
    expect(counts.modeChecks as number).toBeGreaterThan(100); // and never saw a file before its final mode
    // A read that resolved `..data` and then stalls while two more versions are swapped in finds its
    // version gone (the writer keeps one previous version, like kubelet): an ENOENT to retry, never
    // wrong bytes. Rare even at hundreds of rewrites per second; it needs a read stalled for a whole
    // refresh interval in production.
    expect(counts.singleMissing as number).toBeLessThanOrEqual((counts.singleReads as number) / 1_000);
    // The reader really overlapped the rewrites: it saw many generations, not one before and one after.
    expect(counts.sets as number).toBeGreaterThan(500);
    expect((counts.lastGen as number) - (counts.firstGen as number)).toBeGreaterThan(REWRITES / 2);
    expect(checkSet(dir)).toMatchObject({ complete: true, gen: REWRITES, debris: [] });
    // A hang guard only (the property is a count, not a time): ten times a quiet machine's ~65 s.
  }, 650_000);
});
