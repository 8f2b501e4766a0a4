/**
 * The image's bundle answers like `dist/` (issue 19): the Dockerfile's esbuild step replaces packages the
 * sidecar never calls at run time with stubs that throw (build/stubs/: Fastify's schema compilers,
 * light-my-request, …; src/infisical/aws-iam-auth-stub.ts). This starts both against the fake Infisical,
 * with every HTTP route on (/healthz, /readyz, /livez, /metrics, POST /webhook), sends each the same
 * requests, and compares status, content type and the shape of each body; then `once` from both writes
 * the same files. A stub reached at run time shows up here as a 500 or a failed start.
 *
 *   npx tsx bench/bundle-parity.ts [--shipped | --node PATH]
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeInfisical, type FakeInfisical } from '../test/fake-infisical/server.js';
import { DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ENVIRONMENT, DEMO_PROJECT_ID, GLITCHTIP_SEED } from '../test/fake-infisical/seed.js';
import { buildImageBundle, freePort, run, waitHealthy } from './lib.js';
// @ts-expect-error -- plain .mjs helper without types
import { shippedNode } from './shipped-node.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const nodeBin: string = args.includes('--shipped') ? await (shippedNode as () => Promise<string>)() : args.includes('--node') ? args[args.indexOf('--node') + 1]! : process.execPath;
const WEBHOOK_SECRET = 'bundle-parity-webhook-secret-0123456789';

function env(fake: FakeInfisical, outputDir: string, port: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    INFISICAL_SITE_URL: fake.url,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: DEMO_CLIENT_ID,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: DEMO_CLIENT_SECRET,
    INFISICAL_PROJECT_ID: DEMO_PROJECT_ID,
    INFISICAL_ENVIRONMENT: DEMO_ENVIRONMENT,
    INFISICAL_SECRET_PATHS: '/glitchtip/database,/glitchtip/application',
    SIDECAR_REQUIRED_KEYS: 'POSTGRES_PASSWORD,SECRET_KEY,EMAIL_URL,DEFAULT_FROM_EMAIL',
    SIDECAR_OUTPUT_DIR: outputDir,
    SIDECAR_HEALTH_HOST: '127.0.0.1',
    SIDECAR_HEALTH_PORT: String(port),
    SIDECAR_WEBHOOK_SECRET: WEBHOOK_SECRET,
  };
}

interface Answer {
  status: number;
  type: string;
  body: string;
}

function request(port: number, method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: url, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }), ...headers }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: text }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

/** The body with every number, time and duration blanked: what must match is the structure and the words. */
function shape(answer: Answer): string {
  try {
    const blank = (value: unknown): unknown =>
      typeof value === 'number' ? 0 : typeof value === 'string' && /\d{4}-\d\d-\d\dT|^\d+(\.\d+)?\s*(ms|s|m|h)?$/.test(value) ? '…' : Array.isArray(value) ? value.map(blank) : value && typeof value === 'object' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, blank(v)])) : value;
    return JSON.stringify(blank(JSON.parse(answer.body)));
  } catch {
    // /metrics: the metric names, not their values.
    return answer.body.split('\n').filter((line) => line.startsWith('# TYPE')).join('\n');
  }
}

function signed(body: string, at = Date.now()): Record<string, string> {
  return { 'x-infisical-signature': `t=${at};${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}` };
}

async function exercise(fake: FakeInfisical, entry: string, work: string): Promise<Map<string, Answer>> {
  const port = await freePort();
  const child = spawn(nodeBin, [entry, 'run'], { env: env(fake, await mkdtemp(path.join(work, 'out-')), port), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const answers = new Map<string, Answer>();
  try {
    await waitHealthy(port, { deadlineMs: 30_000, everyMs: 20, exited: () => child.exitCode !== null });
    const at = Date.now();
    const event = JSON.stringify({ event: 'secrets.modified', timestamp: at, project: { projectId: DEMO_PROJECT_ID, environment: DEMO_ENVIRONMENT, secretPath: '/glitchtip/database' } });
    const other = JSON.stringify({ event: 'secrets.modified', timestamp: at + 1, project: { projectId: 'another', environment: DEMO_ENVIRONMENT } });
    const steps: Array<[string, () => Promise<Answer>]> = [
      ['GET /healthz', () => request(port, 'GET', '/healthz')],
      ['GET /healthz?strict=1', () => request(port, 'GET', '/healthz?strict=1')],
      ['HEAD /healthz', () => request(port, 'HEAD', '/healthz')],
      ['GET /readyz', () => request(port, 'GET', '/readyz')],
      ['GET /livez', () => request(port, 'GET', '/livez')],
      ['GET /metrics', () => request(port, 'GET', '/metrics')],
      ['GET /nope', () => request(port, 'GET', '/nope?x=1')],
      ['POST /healthz', () => request(port, 'POST', '/healthz', '{}')],
      ['POST /webhook unsigned', () => request(port, 'POST', '/webhook', event)],
      ['POST /webhook bad signature', () => request(port, 'POST', '/webhook', event, { 'x-infisical-signature': `t=${at};${'0'.repeat(64)}` })],
      ['POST /webhook signed', () => request(port, 'POST', '/webhook', event, signed(event, at))],
      ['POST /webhook replayed', () => request(port, 'POST', '/webhook', event, signed(event, at))],
      ['POST /webhook other project', () => request(port, 'POST', '/webhook', other, signed(other, at + 1))],
      ['POST /webhook not JSON', () => request(port, 'POST', '/webhook', 'not json', signed('not json', at + 2))],
      ['POST /webhook too large', () => request(port, 'POST', '/webhook', 'x'.repeat(70 * 1024), signed('x'.repeat(70 * 1024)))],
      ['GET /webhook', () => request(port, 'GET', '/webhook')],
    ];
    for (const [name, step] of steps) answers.set(name, await step());
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
  }
  if (/not included in the infisical-sidecar image|AWS IAM auth is not included/.test(stderr)) throw new Error(`${entry}: a stub was reached:\n${stderr.slice(-2000)}`);
  return answers;
}

async function onceFiles(fake: FakeInfisical, entry: string, work: string): Promise<{ code: number | null; files: Record<string, string> }> {
  const out = await mkdtemp(path.join(work, 'once-'));
  const result = await run(nodeBin, [entry, 'once'], { env: env(fake, out, await freePort()), timeoutMs: 60_000 });
  const files: Record<string, string> = {};
  if (result.code === 0) {
    const data = path.join(out, await readlink(path.join(out, '..data')));
    for (const entryName of await readdir(data, { recursive: true, withFileTypes: true })) {
      if (!entryName.isFile()) continue;
      const name = path.relative(data, path.join(entryName.parentPath, entryName.name));
      const text = await readFile(path.join(entryName.parentPath, entryName.name), 'utf8');
      // The manifest's digests are keyed per process (src/sync/manifest.ts): compare which keys it lists.
      files[name] = name === '..manifest' ? JSON.stringify((JSON.parse(text) as { digests: Array<[string, string]> }).digests.map(([key]) => key)) : text;
    }
  }
  return { code: result.code, files };
}

const work = await mkdtemp(path.join(os.tmpdir(), 'bundle-parity-'));
const fake = await startFakeInfisical({ seed: GLITCHTIP_SEED });
let failures = 0;
try {
  const { entry: bundle } = await buildImageBundle(path.join(root, 'node_modules', '.bin', 'esbuild'), root, path.join(work, 'bundle'));
  const dist = path.join(root, 'dist', 'main.js');
  const [fromDist, fromBundle] = [await exercise(fake, dist, work), await exercise(fake, bundle, work)];
  for (const [name, expected] of fromDist) {
    const actual = fromBundle.get(name)!;
    const same = expected.status === actual.status && expected.type === actual.type && shape(expected) === shape(actual);
    if (!same) failures++;
    console.log(`${same ? 'same' : 'DIFF'}  ${name.padEnd(30)} ${expected.status} ${expected.type || '-'}${same ? '' : `\n      dist:   ${actual.status === expected.status ? '' : `${expected.status} `}${shape(expected).slice(0, 300)}\n      bundle: ${actual.status} ${actual.type} ${shape(actual).slice(0, 300)}`}`);
  }
  const [onceDist, onceBundle] = [await onceFiles(fake, dist, work), await onceFiles(fake, bundle, work)];
  const sameOnce = onceDist.code === 0 && onceBundle.code === 0 && JSON.stringify(onceDist.files) === JSON.stringify(onceBundle.files);
  if (!sameOnce) failures++;
  console.log(`${sameOnce ? 'same' : 'DIFF'}  once: exit ${onceDist.code} / ${onceBundle.code}, ${Object.keys(onceBundle.files).length} files written${sameOnce ? ', equal (times blanked)' : ''}`);
  if (!sameOnce) for (const name of Object.keys(onceDist.files)) if (onceDist.files[name] !== onceBundle.files[name]) console.log(`      ${name}:\n        dist:   ${onceDist.files[name]?.slice(0, 400)}\n        bundle: ${onceBundle.files[name]?.slice(0, 400)}`);
  // pino-pretty (loaded on first use, its own chunk) from the bundle.
  const pretty = await run(nodeBin, [bundle, 'once'], { env: { ...env(fake, await mkdtemp(path.join(work, 'pretty-')), await freePort()), SIDECAR_LOG_FORMAT: 'pretty', NO_COLOR: '1' }, timeoutMs: 60_000 });
  const prettyOk = pretty.code === 0 && /INFO.*: /.test(pretty.stdout) && !pretty.stdout.trimStart().startsWith('{');
  if (!prettyOk) failures++;
  console.log(`${prettyOk ? 'ok  ' : 'FAIL'}  once with SIDECAR_LOG_FORMAT=pretty from the bundle: exit ${pretty.code}${prettyOk ? '' : `\n${pretty.stdout.slice(0, 500)}${pretty.stderr.slice(-1000)}`}`);
  console.log(failures === 0 ? `the bundle (on ${nodeBin}) answers like dist/` : `${failures} difference(s)`);
} finally {
  await fake.close();
  await rm(work, { recursive: true, force: true });
}
process.exitCode = failures === 0 ? 0 : 1;
