#!/usr/bin/env node
/**
 * The crash test's victim: the real AtomicDirWriter (transpiled from src/ by the test, so this
 * process starts in milliseconds) rewriting the output directory in a loop, one generation after
 * the other, until it is killed. Like the sidecar at start, it first cleans up what an earlier
 * crash left, then continues from the generation on disk.
 *
 * usage: node test/tools/writer-loop.mjs <atomic-dir.js module path> <output-dir>
 * prints "started" once loaded (before the clean-up, so kills land there too) and "looping" after
 * its first complete write, then writes forever.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { NAMES, makeSet, parseFile } from './generation.mjs';

const [modulePath, dir] = process.argv.slice(2);
const { AtomicDirWriter } = await import(pathToFileURL(modulePath).href);
const writer = new AtomicDirWriter(dir);
process.stdout.write('started\n');
await writer.cleanUp();
let gen = parseFile(readFileSync(path.join(dir, '..data', NAMES[0])), NAMES[0]) ?? 0;
gen++;
await writer.write(makeSet(gen), { mode: 0o440 });
process.stdout.write('looping\n');
for (;;) {
  gen++;
  await writer.write(makeSet(gen), { mode: 0o440 });
}
