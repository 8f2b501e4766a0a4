/**
 * Standalone fake Infisical for the demo and the Docker e2e: `npx tsx test/fake-infisical/main.ts`.
 *
 * Environment:
 *   FAKE_INFISICAL_HOST               default 127.0.0.1 (use 0.0.0.0 inside a container)
 *   FAKE_INFISICAL_PORT               default 8090 (0 = any free port; the log line shows which)
 *   FAKE_INFISICAL_SEED_FILE          optional JSON FakeSeed; default GLITCHTIP_SEED
 *   FAKE_INFISICAL_GENERATION         'current' (default) or 'v2024': which server to answer like
 *   FAKE_INFISICAL_MISSING_FOLDER     '404' or 'empty'; default: the generation's
 *   FAKE_INFISICAL_TOKEN_TTL_SECONDS  optional token TTL
 *   FAKE_INFISICAL_EXPIRED_TOKEN_FORM '403' or '401'; default: the generation's
 *   FAKE_INFISICAL_SECRET_READS_PER_MINUTE  optional per-IP limit on secret reads (the late-2024 server: 40)
 *
 * The /__fake control API is unauthenticated: never publish this port beyond a test network.
 * Kept free of top-level await and import.meta so an esbuild single-file bundle behaves the same.
 */
import { readFileSync } from 'node:fs';
import { SERVER_GENERATIONS } from './generation.js';
import type { ServerGeneration } from './generation.js';
import { parseSeed } from './seed.js';
import type { FakeSeed } from './seed.js';
import { startFakeInfisical } from './server.js';
import type { FakeInfisicalOptions } from './server.js';

function options(env: NodeJS.ProcessEnv): FakeInfisicalOptions {
  const opts: FakeInfisicalOptions = { host: env['FAKE_INFISICAL_HOST'] || '127.0.0.1' };
  const port = Number(env['FAKE_INFISICAL_PORT'] || '8090');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`FAKE_INFISICAL_PORT is not a port: ${env['FAKE_INFISICAL_PORT']}`);
  opts.port = port;
  const seedFile = env['FAKE_INFISICAL_SEED_FILE'];
  if (seedFile) opts.seed = loadSeed(seedFile);
  const generation = env['FAKE_INFISICAL_GENERATION'];
  if (generation) {
    if (!(SERVER_GENERATIONS as readonly string[]).includes(generation)) {
      throw new Error(`FAKE_INFISICAL_GENERATION must be one of ${SERVER_GENERATIONS.join(', ')}, got ${generation}`);
    }
    opts.generation = generation as ServerGeneration;
  }
  const missing = env['FAKE_INFISICAL_MISSING_FOLDER'];
  if (missing) {
    if (missing !== '404' && missing !== 'empty') throw new Error(`FAKE_INFISICAL_MISSING_FOLDER must be 404 or empty, got ${missing}`);
    opts.missingFolder = missing;
  }
  const ttl = env['FAKE_INFISICAL_TOKEN_TTL_SECONDS'];
  if (ttl) {
    const n = Number(ttl);
    if (!Number.isFinite(n) || n < 0) throw new Error(`FAKE_INFISICAL_TOKEN_TTL_SECONDS must be a non-negative number, got ${ttl}`);
    opts.tokenTtlSeconds = n;
  }
  const form = env['FAKE_INFISICAL_EXPIRED_TOKEN_FORM'];
  if (form) {
    if (form !== '401' && form !== '403') throw new Error(`FAKE_INFISICAL_EXPIRED_TOKEN_FORM must be 401 or 403, got ${form}`);
    opts.expiredTokenForm = form;
  }
  const reads = env['FAKE_INFISICAL_SECRET_READS_PER_MINUTE'];
  if (reads) {
    const n = Number(reads);
    if (!Number.isInteger(n) || n < 1) throw new Error(`FAKE_INFISICAL_SECRET_READS_PER_MINUTE must be a positive integer, got ${reads}`);
    opts.secretReadsPerMinute = n;
  }
  return opts;
}

function loadSeed(file: string): FakeSeed {
  try {
    return parseSeed(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new Error(`FAKE_INFISICAL_SEED_FILE ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function main(): Promise<void> {
  const fake = await startFakeInfisical(options(process.env));
  console.log(`fake-infisical listening on ${fake.url}`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(`fake-infisical: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
