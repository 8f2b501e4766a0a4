/**
 * `npm run demo`: the whole main job on one machine, no Infisical account needed.
 *
 * Starts the fake Infisical server (real HTTP API) with sample GlitchTip secrets, then the sidecar
 * as its own process, configured exactly as the GlitchTip deployment would be: both folders, the
 * four required keys, the derived DATABASE_URL. Files go to .demo/secrets/, /healthz is served on
 * 127.0.0.1:8080. Stops on Ctrl-C, or after `--for <duration>` (e.g. `npm run demo -- --for 10s`).
 * `DEMO_HEARTBEAT=1` also starts a heartbeat receiver on loopback and prints each ping the sidecar
 * sends after a good sync (SIDECAR_HEARTBEAT_URL, docs/operations.md).
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../src/config/duration.js';
import { startFakeInfisical } from '../test/fake-infisical/server.js';
import { DEMO_ENVIRONMENT, DEMO_PROJECT_ID, glitchtipSidecarEnv } from '../test/fake-infisical/seed.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outputDir = path.join(root, '.demo', 'secrets');
const healthPort = Number(process.env.DEMO_HEALTH_PORT ?? 8080);
const fakePort = Number(process.env.DEMO_INFISICAL_PORT ?? 8090);
const forIndex = process.argv.indexOf('--for');
const runForMs = forIndex > 0 ? parseDuration(process.argv[forIndex + 1] ?? '') : undefined;

rmSync(path.join(root, '.demo'), { recursive: true, force: true });
mkdirSync(outputDir, { recursive: true, mode: 0o750 });

const fake = await startFakeInfisical({ port: fakePort });
const heartbeatUrl = process.env.DEMO_HEARTBEAT === '1' ? await startHeartbeatReceiver() : undefined;
const sidecar = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'main.ts'), 'run'], {
  cwd: root,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: {
    PATH: process.env.PATH,
    ...glitchtipSidecarEnv(fake.url, outputDir),
    SIDECAR_CONSUMER: 'glitchtip',
    SIDECAR_REFRESH_INTERVAL: process.env.DEMO_REFRESH_INTERVAL ?? '10s',
    SIDECAR_MAX_STALENESS: '1m',
    SIDECAR_HEALTH_HOST: '127.0.0.1',
    SIDECAR_HEALTH_PORT: String(healthPort),
    ...(heartbeatUrl ? { SIDECAR_HEARTBEAT_URL: heartbeatUrl, SIDECAR_HEARTBEAT_FAIL_SUFFIX: '/fail' } : {}),
  },
});

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    sidecar.kill('SIGTERM');
    await new Promise((resolve) => (sidecar.exitCode === null ? sidecar.once('exit', resolve) : resolve(undefined)));
    await fake.close();
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
sidecar.once('exit', (code) => {
  if (!stopping) {
    console.error(`demo: the sidecar exited with code ${code}`);
    void stop(code ?? 1);
  }
});

const healthUrl = `http://127.0.0.1:${healthPort}/healthz`;
const deadline = Date.now() + 30_000;
for (;;) {
  const status = await fetch(healthUrl).then((r) => r.status, () => 0);
  if (status === 200) break;
  if (Date.now() > deadline) {
    console.error(`demo: ${healthUrl} did not turn healthy within 30 s`);
    await stop(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}

const relative = path.relative(process.cwd(), outputDir) || '.';
console.log(`
demo: the sidecar is healthy.
  secrets written to   ${relative}/  (secrets.env, secrets.dotenv, secrets.json, keys/<KEY>)
  health               curl -s ${healthUrl} | jq
  fake Infisical       ${fake.url}  (project ${DEMO_PROJECT_ID}, environment ${DEMO_ENVIRONMENT})
  rotate a secret      curl -s -X PUT ${fake.url}/__fake/secrets -H 'content-type: application/json' \\
                         -d '{"environment":"prod","path":"/glitchtip/application","key":"SECRET_KEY","value":"rotated"}'
                       then watch ${relative}/keys/SECRET_KEY change within one refresh (10 s)
  a lint warning       curl -s -X PUT ${fake.url}/__fake/secrets -H 'content-type: application/json' \\
                         -d '{"environment":"prod","path":"/glitchtip/application","key":"EMAIL_URL","value":"smtp://glitchtip%40app:pa/ss@smtp.example.test:2525"}'
                       (an unescaped / in the password): within one refresh the log names EMAIL_URL and
                       url-userinfo-delimiter, and /healthz lists {"key":"EMAIL_URL","severity":"breaks"} under warnings
  source it            sh -c 'set -a; . ${relative}/secrets.env; set +a; echo "$DATABASE_URL"'
${runForMs === undefined ? 'Ctrl-C stops the demo.' : `stopping after ${process.argv[forIndex + 1]}.`}`);

if (runForMs !== undefined) {
  await new Promise((resolve) => setTimeout(resolve, runForMs));
  await stop(0);
}

/** A loopback receiver that prints each heartbeat (the demo's stand-in for healthchecks.io). */
async function startHeartbeatReceiver(): Promise<string> {
  const server = createServer((request, response) => {
    console.error(`demo: heartbeat ${request.method} ${request.url}`);
    response.end('OK');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping/demo`;
}
