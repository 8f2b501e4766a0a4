/**
 * Output leases held by real processes (test/tools/lease-holder.mjs, running the lease code
 * transpiled from src/), for what only processes can show: takers racing for one directory, turns
 * taken through release and standby, a holder frozen by SIGSTOP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { onTestFinished } from 'vitest';
import { makeTempDir } from './temp-dir.js';
import { transpileFromSrc } from './transpile.js';

const PROGRAM = fileURLToPath(new URL('../tools/lease-holder.mjs', import.meta.url));

export interface LeaseProcess {
  readonly child: ChildProcess;
  /** The JSON lines it printed so far. */
  readonly events: Record<string, unknown>[];
  /** Resolves with its exit code. */
  readonly exited: Promise<number | null>;
}

/** src/output/lease.ts as plain JavaScript in a temp directory; returns the module's path. */
export function buildLeaseModule(): string {
  return transpileFromSrc('output/lease.ts', makeTempDir('lease-build-'));
}

/** Starts test/tools/lease-holder.mjs with `args` (see its usage); killed when the test ends. */
export function startLeaseProcess(args: readonly string[]): LeaseProcess {
  const child = spawn(process.execPath, [PROGRAM, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const events: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  // 'close', not 'exit': every line it printed has been read by then.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, events, exited };
}
