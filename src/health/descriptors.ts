/**
 * How many connections the health port may hold without starving the sync of file descriptors.
 *
 * Each connection costs one descriptor, and so does everything the sync does: its connections to
 * Infisical, each file it writes, the directories it fsyncs, the pipes of a reload command. Clients
 * that hold connections open under a small limit (`ulimit -n 128`) used to take the last descriptors
 * and make a rotation fail with EMFILE (issue 11). So the cap is lowered until SIDECAR_HEALTH_FD_RESERVE
 * descriptors stay free below the soft RLIMIT_NOFILE. Node has no getrlimit: the limit comes from
 * /proc/self/limits and the count of open descriptors from /proc/self/fd (Linux; where they cannot be
 * read, the configured cap applies as is).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Below this the port cannot serve a healthcheck, a probe and a scraper at once; the sidecar refuses to start. */
export const MIN_HEALTH_CONNECTIONS = 4;

export interface DescriptorBudget {
  /** The soft RLIMIT_NOFILE; undefined when unlimited or unreadable. */
  readonly softLimit: number | undefined;
  /** Descriptors open now; undefined when unreadable. */
  readonly open: number | undefined;
}

/** The soft "Max open files" of a /proc/<pid>/limits text. */
export function parseSoftOpenFileLimit(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+)\s/m.exec(limits);
  return match ? Number(match[1]) : undefined;
}

export function readDescriptorBudget(): DescriptorBudget {
  const attempt = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch {
      return undefined;
    }
  };
  return {
    softLimit: attempt(() => parseSoftOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'))),
    open: attempt(() => readdirSync('/proc/self/fd').length),
  };
}

/** The configured cap, lowered so that `reserve` descriptors stay free; may fall below MIN_HEALTH_CONNECTIONS (the caller refuses that). */
export function connectionCap(configured: number, reserve: number, budget: DescriptorBudget): number {
  if (budget.softLimit === undefined || budget.open === undefined) return configured;
  return Math.min(configured, budget.softLimit - budget.open - reserve);
}
