/**
 * No partial sets after a crash. A writer process
 * (test/tools/writer-loop.mjs: the real AtomicDirWriter, transpiled from src/ so that a process starts
 * in milliseconds) is SIGKILLed at 100 random moments while it rewrites the output directory — half
 * of them anywhere from its start-up clean-up on, half inside its write loop. Every time, `..data`
 * must hold a complete set (the old one or the new one), and the next start must clean up and carry on.
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AtomicDirWriter } from '../../src/output/atomic-dir.js';
import { checkSet, lines, makeSet, outputDir } from '../helpers/output-set.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { transpileFromSrc } from '../helpers/transpile.js';

const TOOLS = fileURLToPath(new URL('../tools/', import.meta.url));
const KILLS = Number(process.env.SURVIVE_KILLS ?? 100);
const LANES = 2; // kill lanes in parallel, each on its own directory
const WRITE = { mode: 0o440 } as const;

describe('no partial sets after a crash', () => {
  it(`SIGKILL at ${KILLS} random moments during writes leaves a complete old or new set every time`, async () => {
    const build = makeTempDir('writer-js-');
    const writerModule = transpileFromSrc('output/atomic-dir.ts', build);

    const results = await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        const dir = outputDir(`kill-${lane}-`);
        await new AtomicDirWriter(dir).write(makeSet(0), WRITE);
        const lane_ = { kills: 0, inLoop: 0, complete: 0, partial: [] as string[], withDebris: 0, advanced: 0, regressions: 0, lastGen: 0, dir };
        for (let i = lane; i < KILLS; i += LANES) {
          const child = spawn(process.execPath, [path.join(TOOLS, 'writer-loop.mjs'), writerModule, dir], { stdio: 'pipe' });
          const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
          let stderr = '';
          child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          const output = lines(child);
          expect(await output.next()).toBe('started');
          // Half the kills land anywhere from the start-up clean-up on; the other half inside the
          // write loop (after its first complete write). One write takes a few milliseconds.
          if (Math.floor(i / LANES) % 2 === 1) {
            expect(await output.next()).toBe('looping');
            lane_.inLoop++;
          }
          await new Promise((resolve) => setTimeout(resolve, randomInt(0, 11)));
          child.kill('SIGKILL');
          expect(await exited, stderr).toBe('SIGKILL');
          lane_.kills++;
          const check = checkSet(dir);
          if (!check.complete) {
            lane_.partial.push(`kill #${i}: ${check.problem}`);
            continue;
          }
          lane_.complete++;
          if (check.debris.length > 0) lane_.withDebris++;
          if (check.gen! > lane_.lastGen) lane_.advanced++;
          if (check.gen! < lane_.lastGen) lane_.regressions++;
          lane_.lastGen = check.gen!;
        }
        // A fresh writer cleans up whatever the last kill left, and the next write works.
        const fresh = new AtomicDirWriter(dir);
        await fresh.cleanUp();
        await fresh.write(makeSet(lane_.lastGen + 1), WRITE);
        const after = checkSet(dir);
        return { ...lane_, recovered: after.complete && after.gen === lane_.lastGen + 1 && after.debris.length === 0, entries: readdirSync(dir).length };
      }),
    );

    const total = (key: 'kills' | 'inLoop' | 'complete' | 'withDebris' | 'advanced' | 'regressions') => results.reduce((sum, lane) => sum + lane[key], 0);
    console.info(
      `[survive] SIGKILL: ${total('kills')} kills (${total('inLoop')} inside the write loop), ${total('complete')} complete sets, ${results.flatMap((l) => l.partial).length} partial; ` +
        `${total('withDebris')} kills left debris of an interrupted write (removed by the next start); generation advanced between kills ${total('advanced')} times; ` +
        `final generations ${results.map((l) => l.lastGen).join(', ')}`,
    );
    expect(results.flatMap((lane) => lane.partial)).toEqual([]);
    expect(total('kills')).toBe(KILLS);
    expect(total('complete')).toBe(KILLS);
    expect(total('regressions')).toBe(0);
    expect(total('advanced')).toBeGreaterThanOrEqual(total('inLoop')); // every in-loop kill came after a write
    expect(total('withDebris')).toBeGreaterThan(0); // and some of them cut a write in half
    for (const lane of results) {
      expect(lane.recovered).toBe(true);
      expect(lane.entries).toBeLessThanOrEqual(6); // ..data, two versions, secrets.env, secrets.json, keys
      expect(lstatSync(path.join(lane.dir, 'keys')).isSymbolicLink()).toBe(true);
    }
    // A hang guard only: ten times a quiet machine's ~22 s.
  }, 220_000);
});
