#!/usr/bin/env node
/**
 * A consumer reading the output directory as hard as it can while something rewrites it, in its own
 * process (its reads really interleave with the writer's syscalls). Stops on "stop" (or EOF) on
 * stdin and prints one JSON line of counts on stdout.
 *
 * usage: node test/tools/reader.mjs <output-dir> [name,name,…|-] [pace-ms] [mode]
 *   pace-ms: pause between rounds (default 0: back to back, yielding to the event loop only)
 *   mode: octal file mode every file must already have when it can be read (e.g. 440); checked on
 *         every 8th set read, counted as `badMode`
 *
 * Three ways of reading, each counted on its own:
 *  - set: resolve `..data` once, then read every file of the set from that version directory: the
 *    documented way to read a consistent set (src/output/atomic-dir.ts). A file that fails to parse is
 *    `torn`; files from different generations are `mixed`; a set older than one read before is a
 *    `regression`. If the writer removed that version meanwhile (it keeps one previous version, so
 *    this takes two more swaps during one set read), the read is retried and counted as `vanished`
 *    (a read error, never wrong data).
 *  - single: each file once through its stable top-level link (what a single-file consumer does).
 *  - naive: every file through the stable links one after the other, *without* resolving `..data`
 *    once. Mixed sets are expected here; they are counted to show why the documented way exists.
 */
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { NAMES, parseFile } from './generation.mjs';

const [dir, namesArg, paceArg, modeArg] = process.argv.slice(2);
const paceMs = Number(paceArg ?? 0);
const expectedMode = modeArg ? Number.parseInt(modeArg, 8) : undefined;
if (!dir) {
  process.stderr.write('usage: reader.mjs <output-dir> [names]\n');
  process.exit(64);
}
const names = namesArg && namesArg !== '-' ? namesArg.split(',') : [...NAMES];
const counts = {
  sets: 0, torn: 0, mixed: 0, regressions: 0, vanished: 0, modeChecks: 0, badMode: 0,
  singleReads: 0, singleTorn: 0, singleMissing: 0, slowestMissingMs: 0,
  naiveSets: 0, naiveMixed: 0, naiveTorn: 0,
  firstGen: undefined, lastGen: undefined, errors: [],
};
let stop = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  if (chunk.includes('stop')) stop = true;
});
process.stdin.on('end', () => {
  stop = true;
});

function readSet() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const version = readlinkSync(path.join(dir, '..data'));
    const gens = [];
    try {
      for (const name of names) gens.push(parseFile(readFileSync(path.join(dir, version, name)), name));
      if (expectedMode !== undefined && counts.sets % 8 === 0) {
        for (const name of names) {
          counts.modeChecks++;
          if ((statSync(path.join(dir, version, name)).mode & 0o777) !== expectedMode) counts.badMode++;
        }
      }
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
      counts.vanished++;
      continue;
    }
    counts.sets++;
    if (gens.some((gen) => gen === undefined)) counts.torn++;
    else if (new Set(gens).size > 1) counts.mixed++;
    else {
      const gen = gens[0];
      if (counts.lastGen !== undefined && gen < counts.lastGen) counts.regressions++;
      counts.firstGen ??= gen;
      counts.lastGen = gen;
    }
    return;
  }
  counts.errors.push('a set read kept vanishing 100 times in a row');
}

function readSingles() {
  for (const name of names) {
    let buffer;
    const started = performance.now();
    try {
      buffer = readFileSync(path.join(dir, name));
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
      // Only possible when this read resolved `..data` and then stalled while two more versions were
      // swapped in (the writer keeps one previous version, and removes the one before at the end of
      // the next write): record how long it took, to tell a stall from a real gap.
      counts.singleMissing++;
      counts.slowestMissingMs = Math.max(counts.slowestMissingMs, Math.round(performance.now() - started));
      continue;
    }
    counts.singleReads++;
    if (parseFile(buffer, name) === undefined) counts.singleTorn++;
  }
}

function readNaive() {
  const gens = [];
  try {
    for (const name of names) gens.push(parseFile(readFileSync(path.join(dir, name)), name));
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    return;
  }
  counts.naiveSets++;
  if (gens.some((gen) => gen === undefined)) counts.naiveTorn++;
  else if (new Set(gens).size > 1) counts.naiveMixed++;
}

process.stdout.write('ready\n');
while (!stop) {
  try {
    readSet();
    readSingles();
    readNaive();
  } catch (error) {
    if (counts.errors.length < 10) counts.errors.push(`${error.code ?? ''} ${error.message}`);
  }
  await new Promise((resolve) => (paceMs > 0 ? setTimeout(resolve, paceMs) : setImmediate(resolve)));
}
process.stdout.write(`${JSON.stringify(counts)}\n`);
