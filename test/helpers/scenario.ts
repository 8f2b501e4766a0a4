/**
 * Set-up for the survive-* suites, safe in `describe.concurrent`: every resource is released through
 * the *test's own* `onTestFinished` (the global hook cannot tell concurrent tests apart).
 *
 *   it('…', async ({ onTestFinished, expect }) => {
 *     const s = scenario(onTestFinished);
 *     const fake = await s.fake();
 *     const { app, logs } = s.app(glitchtipEnv(fake, s.tempDir(), FAST));
 *     await s.start(app);
 *   });
 */
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { HealthReport } from '../../src/health/state.js';
import { startFakeInfisical, type FakeInfisical, type FakeInfisicalOptions } from '../fake-infisical/server.js';
import { testLogger, type CapturedLogs } from './sidecar.js';

type OnFinished = (fn: () => void | Promise<void>) => void;

/**
 * Where output directories go: /dev/shm (a tmpfs, like the production volume) when there is one, so
 * the writer's fsyncs cost what they cost in production and not a loaded CI disk's flush latency.
 */
export const MEMORY_TMP: string = (() => {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
})();

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

export interface Scenario {
  fake(options?: FakeInfisicalOptions): Promise<FakeInfisical>;
  tempDir(prefix?: string): string;
  /** Builds the app from an environment (through the real config loader); `override` patches the Config. */
  app(env: Record<string, string>, override?: Partial<Config>): { app: App; logs: CapturedLogs; config: Config };
  /** `app.start()`, with `app.stop()` at the end of the test. */
  start(app: App): Promise<void>;
}

export function scenario(onFinished: OnFinished): Scenario {
  return {
    async fake(options = {}) {
      const fake = await startFakeInfisical(options);
      onFinished(() => fake.close());
      return fake;
    },
    tempDir(prefix = 'survive-') {
      const dir = mkdtempSync(path.join(MEMORY_TMP, prefix));
      onFinished(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
    app(env, override = {}) {
      const { log, logs } = testLogger('debug');
      const config = { ...loadConfig(env), ...override } as Config;
      return { app: createApp(config, log), logs, config };
    },
    async start(app) {
      await app.start();
      let stopped = false;
      onFinished(async () => {
        if (!stopped) await app.stop();
        stopped = true;
      });
    },
  };
}

/** GET /healthz through Fastify's inject (no socket), with the parsed body. */
export async function health(app: App): Promise<{ statusCode: number; body: HealthReport; raw: string }> {
  const response = await app.server.inject('/healthz');
  return { statusCode: response.statusCode, body: response.json() as HealthReport, raw: response.body };
}

/**
 * Polls `probe` every `pollMs` until it returns a truthy value (thrown errors count as "not yet"),
 * and returns that value. Bounded: fails after `timeoutMs` naming `what`.
 */
export async function until<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 8_000, pollMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`not within ${timeoutMs} ms: ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** A TCP port nobody listens on right now (for "Infisical is down": connection refused). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Every file the consumer sees in the output directory, through the stable top-level links, as
 * bytes. `..`-prefixed entries (versions, `..data`) are left out: they are the writer's business.
 */
export function outputFiles(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  const walk = (relative: string) => {
    for (const entry of readdirSync(path.join(dir, relative))) {
      if (entry.startsWith('..')) continue;
      const rel = relative ? `${relative}/${entry}` : entry;
      const full = path.join(dir, rel);
      if (statSync(full).isDirectory()) walk(rel);
      else out[rel] = readFileSync(full);
    }
  };
  walk('');
  return out;
}

/** The version directory names the writer keeps (`..rev-*`), sorted. */
export function versionDirs(dir: string): string[] {
  return readdirSync(dir)
    .filter((entry) => entry.startsWith('..rev-'))
    .sort();
}

/** The current version `..data` points to. */
export function currentVersion(dir: string): string {
  return readlinkSync(path.join(dir, '..data'));
}

/** Parsed JSON log lines with a given `msg`. */
export function logLines(logs: CapturedLogs, msg: string): Record<string, unknown>[] {
  return logs.lines().filter((line) => line.msg === msg);
}
