/**
 * Shared set-up for tests that run the real sidecar against the fake Infisical server. Everything
 * the sidecar prints here (logs, CLI output) is also recorded for the file's leak guard
 * (helpers/canaries.ts).
 */
import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { runCli } from '../../src/cli.js';
import { tierClock } from './clock.js';
import type { Clock } from '../../src/timers.js';
import { createLogger, type Logger } from '../../src/log.js';
import { startFakeInfisical, type FakeInfisical, type FakeInfisicalOptions } from '../fake-infisical/server.js';
import type { Credentials } from '../../src/config/credentials.js';
import { installSdkFetchFence } from '../../src/infisical/call-context.js';
import { createInfisicalClient, type InfisicalClient } from '../../src/infisical/client.js';
import { DEMO_ENVIRONMENT, DEMO_PROJECT_ID, glitchtipSidecarEnv } from '../fake-infisical/seed.js';
import { recordOutput } from './canaries.js';
import type { OnFinished } from './temp-dir.js';

/** The fastest settings config accepts: 1 s refresh, 2 s staleness, no jitter, short timeouts. */
export const FAST: Readonly<Record<string, string>> = Object.freeze({
  SIDECAR_REFRESH_INTERVAL: '1s',
  SIDECAR_REFRESH_JITTER: '0',
  SIDECAR_MAX_STALENESS: '2s',
  SIDECAR_REQUEST_TIMEOUT: '1s', // 300 ms is too tight for a cold first request on a loaded CI machine
  SIDECAR_BACKOFF_MAX: '200ms',
  SIDECAR_ONCE_DEADLINE: '2s',
  SIDECAR_LOG_LEVEL: 'debug',
});

/** The fake Infisical server, closed when the test ends (concurrent tests pass their context's `onTestFinished`). */
export async function startFake(options: FakeInfisicalOptions = {}, onFinished: OnFinished = onTestFinished): Promise<FakeInfisical> {
  const fake = await startFakeInfisical(options);
  onFinished(() => fake.close());
  return fake;
}

/** The environment the GlitchTip deployment would use, pointed at the fake and a temp dir. */
export function glitchtipEnv(fake: FakeInfisical, outputDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...glitchtipSidecarEnv(fake.url, outputDir),
    SIDECAR_HEALTH_PORT: '0',
    SIDECAR_HEALTH_HOST: '127.0.0.1',
    SIDECAR_REQUEST_TIMEOUT: '2s',
    SIDECAR_ONCE_DEADLINE: '5s',
    SIDECAR_BACKOFF_MAX: '200ms',
    SIDECAR_LOG_LEVEL: 'debug',
    ...extra,
  };
}

export interface CapturedLogs {
  readonly stream: Writable;
  /** Parsed JSON log lines. */
  readonly lines: () => Record<string, unknown>[];
  readonly text: () => string;
}

export function captureLogs(): CapturedLogs {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const text = chunk.toString('utf8');
      chunks.push(text);
      recordOutput(text);
      callback();
    },
  });
  const text = () => chunks.join('');
  return {
    stream,
    text,
    lines: () =>
      text()
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

export function testLogger(level = 'debug'): { log: Logger; logs: CapturedLogs } {
  const logs = captureLogs();
  return { log: createLogger(level, logs.stream as never), logs };
}

/**
 * Runs the CLI in-process; resolves with the exit code and everything it printed. All its timing
 * (request deadlines, `once`'s deadline and retries, staleness) runs on `clock`, by default
 * `tierClock()` (helpers/clock.ts): in the fast tier a ManualClock nobody moves, so a deadline or a
 * retry happens only when the test advances a clock it passed, never because the machine was slow.
 */
export async function runCommand(argv: string[], env: Record<string, string>, shutdown: Promise<void> = new Promise(() => undefined), clock: Clock = tierClock()) {
  const logs = captureLogs();
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCli(argv, {
    env,
    stdout: (text) => {
      stdout.push(text);
      recordOutput(text);
    },
    stderr: (text) => {
      stderr.push(text);
      recordOutput(text);
    },
    shutdown,
    logDestination: logs.stream as never,
    clock,
  });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n'), logs };
}

/**
 * The sidecar's real Infisical client against the fake (fenced for the test), with the GlitchTip
 * project and the credentials `credentials()` returns at each login. `timing`: a `now` for the login
 * spacing, or a Clock (a ManualClock, helpers/clock.ts) for the spacing and the request deadline.
 */
export function clientAgainst(fake: FakeInfisical, credentials: () => Credentials, timing?: (() => number) | Clock): InfisicalClient {
  onTestFinished(installSdkFetchFence(fake.url));
  return createInfisicalClient({
    siteUrl: fake.url,
    projectId: DEMO_PROJECT_ID,
    environment: DEMO_ENVIRONMENT,
    includeImports: true,
    expandSecretReferences: true,
    requestTimeoutMs: 2_000,
    credentials,
    ...(typeof timing === 'function' ? { now: timing } : timing ? { clock: timing } : {}),
  });
}
