/**
 * Shared set-up for tests that run the real sidecar against the fake Infisical server.
 */
import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { runCli } from '../../src/cli.js';
import { createLogger, type Logger } from '../../src/log.js';
import { startFakeInfisical, type FakeInfisical, type FakeInfisicalOptions } from '../fake-infisical/server.js';
import { glitchtipSidecarEnv } from '../fake-infisical/seed.js';

/** Every line anything printed during the test file, for the leak check. */
export const printed: string[] = [];

export async function startFake(options: FakeInfisicalOptions = {}): Promise<FakeInfisical> {
  const fake = await startFakeInfisical(options);
  onTestFinished(() => fake.close());
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
      chunks.push(chunk.toString('utf8'));
      printed.push(chunk.toString('utf8'));
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

/** Runs the CLI in-process; resolves with the exit code and everything it printed. */
export async function runCommand(argv: string[], env: Record<string, string>, shutdown: Promise<void> = new Promise(() => undefined)) {
  const logs = captureLogs();
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runCli(argv, {
    env,
    stdout: (text) => {
      stdout.push(text);
      printed.push(text);
    },
    stderr: (text) => {
      stderr.push(text);
      printed.push(text);
    },
    shutdown,
    logDestination: logs.stream as never,
  });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n'), logs };
}
