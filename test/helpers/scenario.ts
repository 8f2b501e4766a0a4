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
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { HealthReport } from '../../src/health/state.js';
import type { FakeInfisical, FakeInfisicalOptions } from '../fake-infisical/server.js';
import { recordOutput } from './canaries.js';
import { tierClock } from './clock.js';
import { startFake, testLogger, type CapturedLogs } from './sidecar.js';
import { makeTempDir, type OnFinished } from './temp-dir.js';

export interface Scenario {
  fake(options?: FakeInfisicalOptions): Promise<FakeInfisical>;
  /** A temp directory (helpers/temp-dir.ts) removed when this test ends. */
  tempDir(prefix?: string): string;
  /**
   * Builds the app from an environment (through the real config loader); `override` patches the
   * Config; its timing runs on `options.clock`, by default `tierClock()` (helpers/clock.ts): a
   * ManualClock nobody moves in the fast tier, the real clock in the system tier.
   */
  app(env: Record<string, string>, override?: Partial<Config>, options?: AppOptions): { app: App; logs: CapturedLogs; config: Config };
  /** `app.start()`, with `app.stop()` at the end of the test. */
  start(app: App): Promise<void>;
}

export function scenario(onFinished: OnFinished): Scenario {
  return {
    fake: (options = {}) => startFake(options, onFinished),
    tempDir: (prefix = 'survive-') => makeTempDir(prefix, onFinished),
    app(env, override = {}, options = {}) {
      const { log, logs } = testLogger('debug');
      const config = { ...loadConfig(env), ...override } as Config;
      return { app: createApp(config, log, { clock: tierClock(), ...options }), logs, config };
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

/** GET /healthz through Fastify's inject (no socket), with the parsed body; the body is recorded for the leak guard. */
export async function health(app: App): Promise<{ statusCode: number; body: HealthReport; raw: string }> {
  const response = await app.server.inject('/healthz');
  recordOutput(response.body);
  return { statusCode: response.statusCode, body: response.json() as HealthReport, raw: response.body };
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
