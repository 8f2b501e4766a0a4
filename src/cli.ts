/**
 * The subcommands. Each returns an exit code from EXIT_CODES; `main.ts` only wires signals.
 */
import { createApp } from './app.js';
import type { Clock } from './timers.js';
import { describeConfig, loadConfig, type Env } from './config/load.js';
import { EXIT_CODES, HEALTHCHECK_EXIT_CODES, isSidecarError, listExitCodes, SidecarError, STATUS_EXIT_CODES, toSidecarError } from './errors.js';
import { healthcheck } from './healthcheck.js';
import type { DestinationStream } from 'pino';
import { createCliLogger, type Logger } from './log.js';
import type { RenderedFile } from './render/index.js';
import type { SyncOutcome } from './sync/sync-once.js';
import { colorEnabled, formatDuration, printable } from './text.js';

export const USAGE = `Usage: infisical-sidecar [command]

Commands:
  run          (default) sync now, serve /healthz, keep the files fresh until SIGTERM
  once         sync once and exit: ${EXIT_CODES.ok} on success, a distinct code per failure (init containers)
  check        validate config, log in, fetch, show what would be written (no values); write nothing
  healthcheck  GET the local /healthz; exit ${HEALTHCHECK_EXIT_CODES.healthy} when healthy, ${HEALTHCHECK_EXIT_CODES.unhealthy} otherwise (Docker HEALTHCHECK)
  status       [--url http://127.0.0.1:8080] [--json] read a running sidecar's /healthz and print a table:
               folders, ages, counts, last error and hint, next refresh; exit ${listExitCodes(STATUS_EXIT_CODES)}
  compose-override  [FILE] [--services a,b] [--no-subpath] [--cache] print a compose.override.yml fitted to a GlitchTip
               Compose model (\`docker compose -f docker-compose.yml config --format json\` on stdin, or FILE)
  help         show this text

Configuration is read from the environment; see docs/configuration.md. Operating it: docs/operations.md.
Exit codes: ${listExitCodes(EXIT_CODES)}; each is explained in docs/errors.md.`;

export interface CliIo {
  readonly env: Env;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Resolves when SIGTERM/SIGINT arrive: `run` stops cleanly (exit 0), `once` and `check` abandon their pass (SIDECAR_STOPPED). */
  readonly shutdown: Promise<void>;
  /** Where JSON logs go; default stdout. Tests capture them here. */
  readonly logDestination?: DestinationStream;
  /** Whether stdout is a terminal (pretty logs, colours in `status`); default: process.stdout.isTTY when logging to stdout. */
  readonly isTTY?: boolean;
  /** What `run`, `once` and `check` read the time from and wait on; default the system's. Tests pass a manual one. */
  readonly clock?: Clock;
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command = 'run', ...rest] = argv;
  if (rest.length > 0 && command !== 'help' && command !== 'status' && command !== 'compose-override') return usage(io, `unexpected argument: ${rest[0]}`);
  switch (command) {
    case 'run':
    case 'once':
    case 'check':
      return withConfig(command, io);
    case 'healthcheck':
      return healthcheck(io.env);
    case 'status': {
      const { runStatus } = await import('./status.js');
      return runStatus(rest, { env: io.env, stdout: io.stdout, stderr: io.stderr, isTTY: isTTY(io) });
    }
    case 'compose-override': {
      const { runComposeOverride } = await import('./compose/cli.js');
      return runComposeOverride(rest, { stdout: io.stdout, stderr: io.stderr });
    }
    case 'help':
    case '--help':
    case '-h':
      io.stdout(USAGE);
      return EXIT_CODES.ok;
    default:
      return usage(io, `unknown command: ${command}`);
  }
}

function isTTY(io: CliIo): boolean {
  return io.isTTY ?? (io.logDestination === undefined && process.stdout.isTTY === true);
}

function usage(io: CliIo, problem: string): number {
  io.stderr(`infisical-sidecar: ${problem}\n\n${USAGE}`);
  return EXIT_CODES.usage;
}

async function withConfig(command: 'run' | 'once' | 'check', io: CliIo): Promise<number> {
  let log: Logger | undefined;
  // `once` and `check` must not outlive a stop request by their deadline or request timeout.
  const stopRequested = new AbortController();
  void io.shutdown.then(() => stopRequested.abort());
  const stopped = () => new SidecarError('SIDECAR_STOPPED', `${command} stopped by SIGTERM or SIGINT before it finished; nothing new was written`);
  try {
    const config = loadConfig(io.env);
    const tty = isTTY(io);
    log = await createCliLogger(config.logLevel, { format: config.logFormat, destination: io.logDestination, isTTY: tty, color: colorEnabled(tty, io.env) });
    log.info({ command, config: describeConfig(config) }, 'starting');
    const app = createApp(config, log, { reloadConfig: () => loadConfig(io.env), ...(io.clock ? { clock: io.clock } : {}) });
    try {
      if (command === 'once') {
        const outcome = await app.once(stopRequested.signal);
        if (outcome.ok && outcome.fromCache) {
          const { confirmedAt, ageMs, fetchError } = outcome.fromCache;
          log.warn(
            { revision: outcome.revision, keyCount: outcome.keyCount, confirmedAt: new Date(confirmedAt).toISOString(), code: fetchError.code },
            `once: secrets are in place FROM THE LAST-KNOWN-GOOD CACHE (confirmed ${formatDuration(ageMs)} ago): Infisical was unreachable; SIDECAR_ONCE_ALLOW_CACHE=false makes this a failure`,
          );
          return EXIT_CODES.ok;
        }
        if (outcome.ok) {
          log.info({ revision: outcome.revision, keyCount: outcome.keyCount }, 'once: secrets are in place');
          return EXIT_CODES.ok;
        }
        throw stopRequested.signal.aborted ? stopped() : outcome.error;
      }
      if (command === 'check') {
        const { outcome, files } = await app.check(stopRequested.signal);
        if (!outcome.ok && stopRequested.signal.aborted) throw stopped();
        io.stdout(formatCheck(config.outputDir, outcome, files));
        if (!outcome.ok) throw outcome.error;
        return EXIT_CODES.ok;
      }
      try {
        await app.start(stopRequested.signal);
      } catch (error) {
        if (!stopRequested.signal.aborted) throw error; // else: stopped while standing by for the lease
      }
      // The lease lost, or another tool's files where the first set goes: exit with its code, as `once` would.
      const halted = stopRequested.signal.aborted ? undefined : await Promise.race([io.shutdown.then(() => undefined), app.halted]);
      if (halted) throw halted;
      log.info('stopping');
    } finally {
      await app.stop();
    }
    return EXIT_CODES.ok;
  } catch (thrown) {
    // An AbortError from a wait the stop request ended (the lease) is the stop, not a bug.
    const error = stopRequested.signal.aborted && !isSidecarError(thrown) ? stopped() : toSidecarError(thrown);
    report(error, log, io);
    return error.exitCode;
  }
}

/** Config errors go to stderr as plain text (no logger yet); the rest as one JSON log line. */
function report(error: SidecarError, log: Logger | undefined, io: CliIo): void {
  if (log) log.error({ code: error.code, err: error.message, hint: error.hint, status: error.status }, 'exiting');
  else io.stderr(`infisical-sidecar: ${error.code}: ${error.message}\nhint: ${error.hint}`);
}

function formatCheck(outputDir: string, outcome: SyncOutcome, files: readonly RenderedFile[]): string {
  const lines = [`infisical-sidecar check: ${outcome.ok ? 'OK' : `FAILED (${outcome.error?.code})`}`, 'folders:'];
  for (const folder of outcome.folders) {
    lines.push(`  ${printable(folder.path).padEnd(32)} ${folder.ok ? `${folder.secretCount} secret(s)` : `error ${folder.error?.code}: ${folder.error?.message}`}`);
  }
  if (outcome.missingKeys.length > 0) lines.push(`missing required keys: ${outcome.missingKeys.map(printable).join(', ')}`);
  const findings = outcome.findings ?? [];
  if (findings.length > 0) lines.push(`lint findings (${findings.length}; docs/lint-rules.md):`);
  for (const { message, fix } of findings) lines.push(`  ${message}`, `    fix: ${fix}`);
  if (outcome.ok) {
    lines.push(`keys (${outcome.keyCount}, values not shown):`);
    for (const key of outcome.keys) lines.push(`  ${printable(key)}`);
    lines.push(`files that would be written to ${outputDir}:`);
    for (const file of files) lines.push(`  ${printable(file.path).padEnd(40)} ${file.content.length} bytes`);
    for (const { key, output, reason } of outcome.skipped) lines.push(`  note: "${printable(key)}" left out of ${output} (${reason})`);
  } else if (outcome.error) {
    lines.push(`error: ${outcome.error.message}`, `hint: ${outcome.error.hint}`);
  }
  lines.push('nothing was written');
  return lines.join('\n');
}
