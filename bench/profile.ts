/**
 * Where the time and memory go, for the targets bench/run.ts reports as MISS.
 *
 *   npx tsx bench/profile.ts imports            import time and RSS of each dependency, alone, in fresh processes
 *   npx tsx bench/profile.ts cold [--bundle [--no-cache]]
 *                                               CPU profile of `node dist/main.js run` (or the image's bundle, with
 *                                               the compile cache its Dockerfile fills) up to the first healthy /healthz
 *   … [--shipped | --node PATH]                 any of these on the Node major the image ships (bench/shipped-node.mjs)
 *   npx tsx bench/profile.ts refresh [N] [--unchanged]
 *                                               CPU profile of the sidecar's syncer (and the floor) doing changed
 *                                               (or unchanged) refreshes of N secrets (default 10000)
 *   npx tsx bench/profile.ts heap               heap profile (sampling) of the sidecar after start-up, by package
 *   npx tsx bench/profile.ts variants [rounds] [--only a,b,…] [--entry NAME=FILE]
 *                                               cold start of variants of the image form (esbuild options, stubs, V8
 *                                               flags, how the compile cache is filled; see VARIANTS) against the
 *                                               floor, interleaved, each with its compile cache as the image has it
 *
 * Profiles go to bench/profiles/ (gitignored by being under bench/ and ignored here: delete at will);
 * the summary (self time by package, top functions) is printed. Expects a built dist/ (npm run build).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeInfisical, type FakeInfisical } from '../test/fake-infisical/server.js';
import { DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ENVIRONMENT, DEMO_PROJECT_ID, GLITCHTIP_SEED } from '../test/fake-infisical/seed.js';
import { buildImageBundle, Child, cpuMsOf, fillCompileCache, freePort, imageCompileCache, imageNodeFlags, rssMbOf, run, stat, waitHealthy } from './lib.js';
// @ts-expect-error -- plain .mjs helper without types
import { shippedNode } from './shipped-node.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const distDir = path.join(root, 'dist');
const profilesDir = path.join(root, 'bench', 'profiles');
const [command = 'imports', ...rest] = process.argv.slice(2);
/** `--shipped`: run the children on the Node major the image ships (bench/shipped-node.mjs); `--node PATH`: on that binary. */
const nodeBin: string = rest.includes('--shipped') ? await (shippedNode as () => Promise<string>)() : rest.includes('--node') ? rest[rest.indexOf('--node') + 1]! : process.execPath;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * Source maps of bundle files (esbuild `--sourcemap`, written next to each chunk): a bundle's frames
 * are attributed to the package or src/ file they came from, not to the chunk.
 */
const sourceMaps = new Map<string, SourceMap | undefined>();
function originalUrl(url: string, line: number, column: number): string | undefined {
  if (!url.startsWith('file://')) return undefined;
  if (!sourceMaps.has(url)) {
    const file = fileURLToPath(url);
    sourceMaps.set(url, existsSync(`${file}.map`) ? new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))) : undefined);
  }
  const entry = sourceMaps.get(url)?.findEntry(line, column) as { originalSource?: string } | undefined;
  return entry?.originalSource;
}

/** node_modules/<pkg>, the project's own files, or Node's internals. */
function owner(url: string, name: string, line = 0, column = 0): string {
  if (url === '') return name.startsWith('(') ? name : '(native/other)';
  const original = originalUrl(url, line, column);
  if (original) {
    const src = original.lastIndexOf('/src/');
    return original.includes('node_modules/') ? owner(original, name) : src >= 0 ? `src/${original.slice(src + 5)}` : original;
  }
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.startsWith('node:')) return url.startsWith('node:internal/modules') || url.startsWith('node:internal/deps/cjs') ? 'node: module loader' : `node: ${url.split('/').slice(1, 3).join('/') || url}`;
  if (url.includes('/dist/')) return `dist/${url.split('/dist/')[1]}`;
  if (url.includes('/bench/')) return `bench/${url.split('/bench/')[1]}`;
  return url.replace(/^file:\/\//, '');
}

function summarize(profile: CpuProfile, label: string): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const who = owner(node.callFrame.url, node.callFrame.functionName, node.callFrame.lineNumber, node.callFrame.columnNumber);
    byOwner.set(who, (byOwner.get(who) ?? 0) + us);
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${who}:${node.callFrame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const top = (map: Map<string, number>, n: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`)
      .join('\n');
  console.log(`\n== ${label}: ${(total / 1000).toFixed(0)} ms sampled\n-- self time by owner\n${top(byOwner, 18)}\n-- top functions (self)\n${top(byFunction, 18)}`);
}

async function latestProfile(dir: string, ext: string): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(ext)).sort();
  if (files.length === 0) throw new Error(`no ${ext} written in ${dir}`);
  return path.join(dir, files.at(-1)!);
}

function env(fake: FakeInfisical, outputDir: string, port: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    INFISICAL_SITE_URL: fake.url,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_ID: DEMO_CLIENT_ID,
    INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET: DEMO_CLIENT_SECRET,
    INFISICAL_PROJECT_ID: DEMO_PROJECT_ID,
    INFISICAL_ENVIRONMENT: DEMO_ENVIRONMENT,
    INFISICAL_SECRET_PATHS: '/glitchtip/database,/glitchtip/application',
    SIDECAR_REQUIRED_KEYS: 'POSTGRES_PASSWORD,SECRET_KEY,EMAIL_URL,DEFAULT_FROM_EMAIL',
    SIDECAR_DERIVE_DATABASE_URL: 'postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip',
    SIDECAR_OUTPUT_DIR: outputDir,
    SIDECAR_HEALTH_HOST: '127.0.0.1',
    SIDECAR_HEALTH_PORT: String(port),
    BENCH_DIST: distDir,
    ...extra,
  };
}

async function tempDir(label: string): Promise<string> {
  const dir = path.join(existsShm() ? '/dev/shm' : os.tmpdir(), `infisical-sidecar-profile-${process.pid}`, label);
  await mkdir(dir, { recursive: true, mode: 0o750 });
  return dir;
}
function existsShm(): boolean {
  return process.platform === 'linux';
}

/** Import time and RSS of each module alone (median of 5 fresh processes), against `node -e 0`. */
async function imports(): Promise<void> {
  const targets = [
    ['(nothing: node start)', ''],
    ['fetch (undici, first use)', 'await fetch("data:,x")'],
    ['node:http', 'await import("node:http")'],
    ['zod', 'await import("zod")'],
    ['pino', 'await import("pino")'],
    ['fastify', 'await import("fastify")'],
    ['chokidar', 'await import("chokidar")'],
    ['prom-client', 'await import("prom-client")'],
    ['@aws-sdk/credential-providers', 'await import("@aws-sdk/credential-providers")'],
    ['@infisical/sdk', 'await import("@infisical/sdk")'],
    ['dist/infisical/client.js', `await import(${JSON.stringify(path.join(distDir, 'infisical', 'client.js'))})`],
    ['dist/health/server.js', `await import(${JSON.stringify(path.join(distDir, 'health', 'server.js'))})`],
    ['dist/config/load.js', `await import(${JSON.stringify(path.join(distDir, 'config', 'load.js'))})`],
    ['dist/cli.js (everything)', `await import(${JSON.stringify(path.join(distDir, 'cli.js'))})`],
  ] as const;
  console.log('module                               import ms (median of 5)   RSS after (MB)   process total ms');
  for (const [name, code] of targets) {
    const ms: number[] = [];
    const rss: number[] = [];
    const wall: number[] = [];
    for (let i = 0; i < 5; i++) {
      const script = `const t=performance.now();${code};const d=performance.now()-t;console.log(JSON.stringify({d,rss:process.memoryUsage().rss}))`;
      const started = performance.now();
      const result = await run(nodeBin, ['--input-type=module', '-e', script], { cwd: root });
      wall.push(performance.now() - started);
      if (result.code !== 0) throw new Error(`${name}: ${result.stderr}`);
      const parsed = JSON.parse(result.stdout.trim()) as { d: number; rss: number };
      ms.push(parsed.d);
      rss.push(parsed.rss / 1e6);
    }
    console.log(`${name.padEnd(36)} ${stat(ms).median.toFixed(1).padStart(9)}                ${stat(rss).median.toFixed(1).padStart(7)}          ${stat(wall).median.toFixed(0).padStart(6)}`);
  }
}

async function cold(bundle: boolean): Promise<void> {
  const fake = await startFakeInfisical({ seed: GLITCHTIP_SEED });
  const dir = path.join(profilesDir, bundle ? 'cold-bundle' : 'cold');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    let entry = path.join(distDir, 'main.js');
    if (bundle) entry = (await buildImageBundle(path.join(root, 'node_modules', '.bin', 'esbuild'), root, await tempDir('bundle'), ['--sourcemap'])).entry;
    // The image form includes the compile cache its Dockerfile fills (by the same node, as in the image); --no-cache leaves it out.
    const extra: Record<string, string> = {};
    const cache = bundle && !rest.includes('--no-cache') ? await imageCompileCache(root) : undefined;
    if (cache) {
      extra.NODE_COMPILE_CACHE = await tempDir('compile-cache');
      await fillCompileCache(nodeBin, entry, cache.args, extra.NODE_COMPILE_CACHE, cache.flags);
    }
    // The image form starts with its ENTRYPOINT's node flags.
    const flags = bundle ? await imageNodeFlags(root) : [];
    const port = await freePort();
    const started = performance.now();
    const child = spawn(nodeBin, [...flags, '--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200', entry, 'run'], { env: env(fake, await tempDir('cold-out'), port, extra), stdio: 'ignore' });
    const healthy = await waitHealthy(port, { deadlineMs: 30_000, everyMs: 5 });
    console.log(`healthy after ${(healthy - started).toFixed(0)} ms (profiled, slower than unprofiled)`);
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    const profile = JSON.parse(await readFile(await latestProfile(dir, '.cpuprofile'), 'utf8')) as CpuProfile;
    // Only the part up to healthy: cut the samples at the healthy time.
    const limitUs = (healthy - started) * 1000;
    let elapsed = 0;
    let keep = 0;
    for (; keep < profile.timeDeltas.length && elapsed < limitUs; keep++) elapsed += profile.timeDeltas[keep]!;
    summarize({ ...profile, samples: profile.samples.slice(0, keep), timeDeltas: profile.timeDeltas.slice(0, keep) }, `cold start ${bundle ? '(bundle)' : '(dist)'}`);
  } finally {
    await fake.close();
    await rm(path.join(existsShm() ? '/dev/shm' : os.tmpdir(), `infisical-sidecar-profile-${process.pid}`), { recursive: true, force: true });
  }
}

async function refresh(size: number, unchanged: boolean): Promise<void> {
  const seed = structuredClone(GLITCHTIP_SEED);
  const secrets: Record<string, string> = {};
  for (let i = 0; i < size; i++) secrets[`KEY_${String(i).padStart(5, '0')}`] = `value-${i}-${'x'.repeat(24)}`;
  seed.projects[0]!.environments[DEMO_ENVIRONMENT]!.folders['/bench'] = { secrets };
  const fake = await startFakeInfisical({ seed });
  const dir = path.join(profilesDir, `refresh-${size}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    for (const impl of ['sidecar', 'floor'] as const) {
      const e = env(fake, await tempDir(`refresh-${impl}`), 0, { INFISICAL_SECRET_PATHS: '/bench', SIDECAR_REQUIRED_KEYS: '' });
      delete e.SIDECAR_DERIVE_DATABASE_URL;
      const implDir = path.join(dir, impl);
      await mkdir(implDir);
      const child = Child.fork(path.join(root, 'bench', 'children', 'refresh.mjs'), { args: ['--impl', impl], env: e, execArgv: ['--cpu-prof', `--cpu-prof-dir=${implDir}`], name: impl });
      await child.next('ready');
      const cpu: number[] = [];
      const passes = unchanged ? 20 : 4;
      for (let i = 0; i < passes; i++) {
        if (!unchanged || i === 0) fake.setSecret(DEMO_ENVIRONMENT, '/bench', 'KEY_00000', `v${i}-${Date.now()}`);
        const answer = await child.request({ op: 'sync' }, 'synced', 300_000);
        cpu.push(answer.cpuMs as number);
      }
      child.send({ op: 'stop' });
      await child.exited;
      const what = unchanged ? 'first write + 19 unchanged' : '4 changed';
      console.log(`\n${impl}: refresh CPU ms (${what}): ${cpu.map((c) => c.toFixed(0)).join(', ')}`);
      summarize(JSON.parse(await readFile(await latestProfile(implDir, '.cpuprofile'), 'utf8')) as CpuProfile, `${impl}: ${what} refreshes of ${size} secrets (incl. start-up)`);
    }
  } finally {
    await fake.close();
    await rm(path.join('/dev/shm', `infisical-sidecar-profile-${process.pid}`), { recursive: true, force: true });
  }
}

interface HeapNode {
  callFrame: { functionName: string; url: string };
  selfSize: number;
  children: HeapNode[];
}

async function heap(): Promise<void> {
  const fake = await startFakeInfisical({ seed: GLITCHTIP_SEED });
  const dir = path.join(profilesDir, 'heap');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    const port = await freePort();
    const child = spawn(nodeBin, ['--heap-prof', `--heap-prof-dir=${dir}`, '--heap-prof-interval=4096', path.join(distDir, 'main.js'), 'run'], {
      env: env(fake, await tempDir('heap-out'), port),
      stdio: 'ignore',
    });
    await waitHealthy(port, { deadlineMs: 30_000, everyMs: 10 });
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    const profile = JSON.parse(await readFile(await latestProfile(dir, '.heapprofile'), 'utf8')) as { head: HeapNode };
    const byOwner = new Map<string, number>();
    const walk = (node: HeapNode) => {
      const who = owner(node.callFrame.url, node.callFrame.functionName);
      byOwner.set(who, (byOwner.get(who) ?? 0) + node.selfSize);
      for (const c of node.children) walk(c);
    };
    walk(profile.head);
    const total = [...byOwner.values()].reduce((a, b) => a + b, 0);
    console.log(`\n== live heap at exit (sampled), ${(total / 1e6).toFixed(1)} MB, by allocating owner`);
    for (const [who, bytes] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
      console.log(`  ${(bytes / 1e6).toFixed(2).padStart(7)} MB ${((100 * bytes) / total).toFixed(1).padStart(5)} %  ${who}`);
    }
  } finally {
    await fake.close();
    await rm(path.join('/dev/shm', `infisical-sidecar-profile-${process.pid}`), { recursive: true, force: true });
  }
}

/** Each variant: the Dockerfile's esbuild command, rewritten; the compile cache filled as the Dockerfile does unless said otherwise. */
interface Variant {
  readonly name: string;
  /** Rewrites the Dockerfile's esbuild arguments. */
  readonly build?: (args: string[]) => string[];
  /** Node flags of the start (and of the run that fills the compile cache: V8 keys the cache by its flags); default: the ENTRYPOINT's. */
  readonly flags?: readonly string[];
  /** What fills the compile cache: the Dockerfile's `RUN ["node", "/app/main.js", …]` arguments (default), `once` against the fake, or none. */
  readonly fill?: 'dockerfile' | 'once' | 'none';
  /** A bundle built elsewhere (`--entry NAME=PATH`), e.g. a CommonJS or snapshot experiment. */
  readonly entry?: string;
}

const without = (...patterns: RegExp[]) => (args: string[]) => args.filter((arg) => !patterns.some((re) => re.test(arg)));
const plus = (...extra: string[]) => (args: string[]) => [...args, ...extra];
const then = (...steps: Array<(args: string[]) => string[]>) => (args: string[]) => steps.reduce((a, step) => step(a), args);
/** Single-file output: no --splitting, no chunk names. */
const single = without(/^--splitting$/, /^--chunk-names=/, /^--entry-names=/);
const FASTIFY_STUBS = /^--alias:(@fastify\/ajv-compiler|@fastify\/fast-json-stringify-compiler|light-my-request)=/;

/**
 * Build and runtime variants of the image form, by key (`variants [rounds] --only image,no-cache,…`); the
 * default set is the levers issue 19 measured. Each is started as the image starts it: its bundle, its compile
 * cache filled by the same node, `run` against the fake, on the chosen node (`--shipped`).
 */
const VARIANTS: Record<string, Variant> = {
  image: { name: 'image form (the Dockerfile)' },
  'no-cache': { name: 'image form, no compile cache', fill: 'none' },
  'no-fastify-stubs': { name: 'without the Fastify stubs (ajv, fjs compilers, light-my-request)', build: without(FASTIFY_STUBS) },
  'no-minify': { name: 'not minified', build: without(/^--minify$/) },
  single: { name: 'one file (no code splitting)', build: single },
  node22: { name: '--target=node22', build: then(without(/^--target=/), plus('--target=node22')) },
  'zod-one': { name: 'the SDK on zod 4 (build/stubs/zod-one.mjs)', build: plus('--alias:zod=./build/stubs/zod-one.mjs') },
  'zod-jitless': { name: 'zod without its eval fast path (banner: __zod_globalConfig.jitless)', build: (args) => args.map((a) => (a.startsWith('--banner:js=') ? `${a}globalThis.__zod_globalConfig={jitless:true};` : a)) },
  'fill-once': { name: 'compile cache filled by `once` against the fake', fill: 'once' },
  'before-stubs': { name: 'as before issue 19\'s stubs and flags (no Fastify stubs, no node flags)', build: without(FASTIFY_STUBS), flags: [] },
  'no-flags': { name: 'without the ENTRYPOINT\'s node flags', flags: [] },
  semi1: { name: '--max-semi-space-size=1', flags: ['--max-semi-space-size=1'] },
  semi2: { name: '--max-semi-space-size=2', flags: ['--max-semi-space-size=2'] },
  semi4: { name: '--max-semi-space-size=4', flags: ['--max-semi-space-size=4'] },
  eager: { name: '--no-lazy (eager compile, so the compile cache holds every function)', flags: ['--no-lazy'] },
  'min-semi-4': { name: '--min-semi-space-size=4', flags: ['--min-semi-space-size=4'] },
  'min-semi-16': { name: '--min-semi-space-size=16', flags: ['--min-semi-space-size=16'] },
  'max-lazy': { name: '--max-lazy', flags: ['--max-lazy'] },
  'no-opt': { name: '--no-opt', flags: ['--no-opt'] },
  sparkplug: { name: '--no-sparkplug', flags: ['--no-sparkplug'] },
  'single-gc': { name: '--single-threaded-gc', flags: ['--single-threaded-gc'] },
  jitless: { name: '--jitless', flags: ['--jitless'] },
};
const DEFAULT_VARIANTS = ['image', 'no-cache', 'no-fastify-stubs', 'no-flags', 'zod-one', 'fill-once'];

/** Cold start (spawn → /healthz 200) of the image form's variants and the floor, interleaved. */
async function variants(rounds: number, keys: readonly string[]): Promise<void> {
  const work = await tempDir('variants');
  const fake = await startFakeInfisical({ seed: GLITCHTIP_SEED });
  const dockerfileCache = await imageCompileCache(root);
  const imageFlags = await imageNodeFlags(root);
  const subjects: Array<{ name: string; args: string[]; env: Record<string, string> }> = [];
  try {
    for (const key of keys) {
      const variant = VARIANTS[key];
      if (!variant) throw new Error(`unknown variant ${key}; known: ${Object.keys(VARIANTS).join(', ')}`);
      const out = path.join(work, key);
      await mkdir(out, { recursive: true });
      const { entry } = variant.entry ? { entry: variant.entry } : await buildImageBundle(path.join(root, 'node_modules', '.bin', 'esbuild'), root, out, [], variant.build);
      const flags = [...(variant.flags ?? imageFlags)];
      const extra: Record<string, string> = {};
      const fill = variant.fill ?? 'dockerfile';
      if (fill !== 'none' && dockerfileCache) {
        extra.NODE_COMPILE_CACHE = path.join(out, '.compile-cache');
        const fillArgs = fill === 'once' ? ['once'] : dockerfileCache.args;
        const filled = await run(nodeBin, [...flags, entry, ...fillArgs], { env: env(fake, await tempDir(`fill-${key}`), await freePort(), extra), timeoutMs: 60_000 });
        if (filled.code !== 0) throw new Error(`${key}: filling the compile cache failed (exit ${filled.code}): ${filled.stderr.slice(-1500)}`);
      }
      const bytes = (await readdir(path.dirname(entry), { recursive: true, withFileTypes: true }))
        .filter((d) => d.isFile() && d.name.endsWith('.js') && !d.parentPath.includes('.compile-cache'))
        .reduce((sum, d) => sum + readFileSync(path.join(d.parentPath, d.name)).length, 0);
      subjects.push({ name: `${variant.name} [${(bytes / 1e3).toFixed(0)} kB js]`, args: [...flags, entry, 'run'], env: extra });
    }
    subjects.push({ name: 'floor', args: [path.join(root, 'bench', 'floor.mjs')], env: {} });
    const ms = new Map<string, number[]>(subjects.map(({ name }) => [name, []]));
    const rss = new Map<string, number[]>(subjects.map(({ name }) => [name, []]));
    const cpu = new Map<string, number[]>(subjects.map(({ name }) => [name, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < subjects.length; i++) {
        const { name, args, env: extra } = subjects[(i + round) % subjects.length]!;
        const port = await freePort();
        const out = await tempDir(`variants-out-${round}-${i}`);
        const started = performance.now();
        const child = spawn(nodeBin, args, { env: env(fake, out, port, extra), stdio: 'ignore' });
        const healthy = await waitHealthy(port, { deadlineMs: 30_000, everyMs: 2 });
        ms.get(name)!.push(healthy - started);
        rss.get(name)!.push(await rssMbOf(child.pid));
        cpu.get(name)!.push(await cpuMsOf(child.pid));
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    const floor = ms.get('floor')!;
    const floorRss = rss.get('floor')!;
    console.log(`cold start on ${nodeBin === process.execPath ? `this Node (${process.version})` : nodeBin}, ${rounds} interleaved rounds: wall spawn → /healthz 200, median [min–max]; CPU used by then; RSS then; each with its ratio to the floor (median of per-round ratios)`);
    for (const { name } of subjects) {
      const s = stat(ms.get(name)!);
      const ratios = stat(ms.get(name)!.map((v, i) => v / floor[i]!)).median;
      const r = stat(rss.get(name)!);
      const rr = stat(rss.get(name)!.map((v, i) => v / floorRss[i]!)).median;
      const c = stat(cpu.get(name)!);
      const cr = stat(cpu.get(name)!.map((v, i) => v / cpu.get('floor')![i]!)).median;
      console.log(`  ${name.padEnd(72)} wall ${s.median.toFixed(0).padStart(5)} ms [${s.min.toFixed(0)}–${s.max.toFixed(0)}] ${ratios.toFixed(2)}×   CPU ${c.median.toFixed(0).padStart(4)} ms ${cr.toFixed(2)}×   RSS ${r.median.toFixed(1)} MB ${rr.toFixed(2)}×`);
    }
  } finally {
    await fake.close();
  }
}

const tempRoot = path.join(existsShm() ? '/dev/shm' : os.tmpdir(), `infisical-sidecar-profile-${process.pid}`);
try {
switch (command) {
  case 'imports':
    await imports();
    break;
  case 'cold':
    await cold(rest.includes('--bundle'));
    break;
  case 'refresh':
    await refresh(Number(rest.find((a) => /^\d+$/.test(a)) ?? 10000), rest.includes('--unchanged'));
    break;
  case 'heap':
    await heap();
    break;
  case 'variants': {
    const only = rest.indexOf('--only');
    for (let i = rest.indexOf('--entry'); i >= 0; i = rest.indexOf('--entry', i + 1)) {
      const [name, file] = rest[i + 1]!.split('=') as [string, string];
      VARIANTS[name] = { name: `${name} (${file})`, entry: path.resolve(file) };
    }
    await variants(Number(/^\d+$/.test(rest[0] ?? '') ? rest[0] : 7), only >= 0 ? rest[only + 1]!.split(',') : DEFAULT_VARIANTS);
    break;
  }
  default:
    console.error('usage: npx tsx bench/profile.ts imports | cold [--bundle [--no-cache]] | refresh [N] [--unchanged] | heap | variants [rounds] [--only a,b] [--entry NAME=FILE]  [--shipped | --node PATH]');
    process.exitCode = 64;
}
} finally {
  await rm(tempRoot, { recursive: true, force: true });
}
