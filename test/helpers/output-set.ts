/**
 * Shared by the torn-read and crash suites: a tmpfs output directory, line-by-line reading of a
 * child's stdout, and the check of what a consumer would find in the directory right now.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { makeSet, NAMES, parseFile } from '../tools/generation.mjs';
import { makeTempDir } from './temp-dir.js';
import { mountTmpfs, TMPFS_SKIP_REASON } from './tmpfs.js';

export { makeSet, NAMES };

/** A fresh tmpfs mount (64 MiB) when possible, else a directory under /dev/shm; removed after the test. */
export function outputDir(prefix: string): string {
  return TMPFS_SKIP_REASON === undefined ? mountTmpfs(onTestFinished, 64 * 1024) : makeTempDir(prefix);
}

/**
 * A child's stdout, line by line. `next()` resolves with the next line as its 'data' event brings it,
 * and rejects if the child's stdout ends (it exited) before another line came; a child that hangs
 * without exiting is the test's timeout to name.
 */
export function lines(child: ChildProcessWithoutNullStreams): { next: () => Promise<string> } {
  const queue: string[] = [];
  const waiting: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  let buffer = '';
  let ended = false;
  const ending = () => new Error(`the child's output ended before another line (exit ${child.exitCode ?? child.signalCode})`);
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter) waiter.resolve(line);
      else queue.push(line);
    }
  });
  // 'close' comes after the last 'data' and once the child has exited (its stdio closed).
  child.once('close', () => {
    ended = true;
    for (const waiter of waiting.splice(0)) waiter.reject(ending());
  });
  return {
    next() {
      const line = queue.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (ended) return Promise.reject(ending());
      return new Promise<string>((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
}

export interface SetCheck {
  readonly complete: boolean;
  readonly gen: number | undefined;
  readonly problem?: string;
  /** Entries a crash left behind (partial versions, temp links): the next start removes them. */
  readonly debris: string[];
}

/** What a consumer would find right now: `..data` → a directory holding exactly NAMES, all of one generation, reachable through the stable links. */
export function checkSet(dir: string): SetCheck {
  const entries = readdirSync(dir);
  let version: string;
  try {
    version = readlinkSync(path.join(dir, '..data'));
  } catch {
    return { complete: false, gen: undefined, problem: '..data missing', debris: entries };
  }
  const found: string[] = [];
  const walk = (relative: string) => {
    for (const entry of readdirSync(path.join(dir, version, relative))) {
      const rel = relative ? `${relative}/${entry}` : entry;
      if (statSync(path.join(dir, version, rel)).isDirectory()) walk(rel);
      else found.push(rel);
    }
  };
  try {
    walk('');
  } catch (error) {
    return { complete: false, gen: undefined, problem: `version unreadable: ${(error as Error).message}`, debris: entries };
  }
  if (found.sort().join() !== [...NAMES].sort().join()) return { complete: false, gen: undefined, problem: `files ${found.join()} in ${version}`, debris: entries };
  const gens = NAMES.map((name) => parseFile(readFileSync(path.join(dir, version, name)), name));
  const viaLinks = NAMES.map((name) => parseFile(readFileSync(path.join(dir, name)), name));
  if (gens.some((gen) => gen === undefined)) return { complete: false, gen: undefined, problem: 'a torn file', debris: entries };
  if (new Set([...gens, ...viaLinks]).size !== 1) return { complete: false, gen: undefined, problem: `generations ${gens.join()} / via links ${viaLinks.join()}`, debris: entries };
  const topLevel = new Set(NAMES.map((name) => name.split('/')[0]!));
  const debris = entries.filter((entry) => entry !== '..data' && !topLevel.has(entry) && !entry.startsWith('..rev-'));
  const versions = entries.filter((entry) => entry.startsWith('..rev-'));
  // The writer keeps the current version and the one before; more means a crash left a partial one.
  if (versions.length > 2) debris.push(...versions.filter((entry) => entry !== version).slice(0, versions.length - 2));
  return { complete: true, gen: gens[0], debris };
}

