/**
 * `npm run bench [-- --quick] [--only cold,adapter,refresh,memory,load,push,budget,watch,image] [--build | --no-build]`
 *
 * The benchmark of issue 6. Every figure is measured side by side with a reference in the same run
 * (interleaved, alternating order) and reported as median [min–max] with the ratio subject /
 * reference, because absolute times on a shared 2-core machine drift. The reference is the floor
 * (bench/floor.mjs: the same HTTP calls with plain fetch and the same atomic writes, nothing else),
 * a bare Fastify hello-world for /healthz, or the quantity named in the row.
 *
 * The fake Infisical server (test/fake-infisical) runs in this process on loopback; everything
 * measured runs in child processes started with plain `node` (no tsx loader): the built sidecar
 * (dist/; built here with `tsc -p tsconfig.build.json` when src/ is newer, always with --build, never
 * with --no-build), the same code bundled with esbuild as the
 * Docker image does, and the floor.
 *
 * Prints a table, writes bench/results.json (gitignored) and, for a full run, bench/RESULTS.md.
 * `--quick` runs every measurement with fewer rounds (CI): it fails only when something cannot run,
 * never on a timing; PASS/MISS is printed either way.
 */
import { spawn } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { chmod, mkdir, readFile, readdir, readlink, rm, stat as stat_, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { startFakeInfisical, type FakeInfisical, type FakeSeed } from '../test/fake-infisical/server.js';
import {
  DEMO_APPLICATION_PATH,
  DEMO_CLIENT_ID,
  DEMO_CLIENT_SECRET,
  DEMO_ENVIRONMENT,
  DEMO_PROJECT_ID,
  GLITCHTIP_SEED,
} from '../test/fake-infisical/seed.js';
import {
  buildImageBundle,
  Child,
  compileCacheCounts,
  cpuMsOf,
  fillCompileCache,
  freePort,
  getStatus,
  imageCompileCache,
  imageNodeFlags,
  markdownTable,
  rssMbOf,
  ratio,
  run,
  stat,
  textTable,
  waitHealthy,
  type Row,
  type Stat,
} from './lib.js';
// @ts-expect-error -- plain .mjs helper without types
import { shippedNode as shippedNode_ } from './shipped-node.mjs';
const shippedNode = shippedNode_ as () => Promise<string>;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'bench');
/** BENCH_DIST_DIR measures another build (e.g. a patched copy of the tree) with this bench. */
const distDir = process.env.BENCH_DIST_DIR ? path.resolve(process.env.BENCH_DIST_DIR) : path.join(root, 'dist');
/** The tree whose src/ is bundled for the image form (the one dist/ was built from). */
const treeRoot = path.dirname(distDir);
const childrenDir = path.join(benchDir, 'children');
const floorScript = path.join(benchDir, 'floor.mjs');

// ---- options ------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string): string | undefined => {
  const inline = argv.find((a) => a.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const at = argv.indexOf(`--${name}`);
  return at >= 0 ? argv[at + 1] : undefined;
};
const quick = flag('quick');
const SECTIONS = ['cold', 'adapter', 'refresh', 'memory', 'load', 'push', 'budget', 'watch', 'image'] as const;
type Section = (typeof SECTIONS)[number];
const only = new Set((option('only') ?? SECTIONS.join(',')).split(',').map((s) => s.trim()) as Section[]);
for (const name of only) if (!SECTIONS.includes(name)) throw new Error(`--only: unknown section ${name}; sections: ${SECTIONS.join(', ')}`);

/** Rounds per measurement; --quick keeps every measurement but runs each a few times only. */
const ROUNDS = quick
  ? { cold: 2, adapter: 2, refresh: { 10: 2, 100: 1, 1000: 1 } as Record<number, number>, memoryRefreshes: 100, memory: 1, load: 1, loadSeconds: 1, loadWarmUp: 0, push: 1, budgetPasses: 3, watch: 1 }
  : { cold: 11, adapter: 7, refresh: { 10: 15, 1000: 7, 10000: 3 } as Record<number, number>, memoryRefreshes: 1000, memory: 3, load: 5, loadSeconds: 3, loadWarmUp: 0.5, push: 12, budgetPasses: 20, watch: 3 };
/** Secrets per refresh; --quick stays within a minute by stopping at 1,000 (the growth step is still ×10). */
const REFRESH_SIZES = quick ? [10, 100, 1000] : [10, 1000, 10000];
const [, GROWTH_FROM, GROWTH_TO] = REFRESH_SIZES as [number, number, number];
const WARM_UP_ROUNDS = quick ? 0 : 1;
/** Secrets in the watcher row; --quick writes 1,000 (a 5,000-key write takes seconds per side). */
const WATCH_SIZE = quick ? 1000 : 5000;
const UNCHANGED_WARM_UP = quick ? 2 : 15;

// ---- set-up -------------------------------------------------------------------------------------

const rows: Row[] = [];
const raw: Record<string, unknown> = {};
const problems: string[] = [];
const notes: string[] = [];
const startedAt = new Date();
const loadAtStart = os.loadavg();

function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

/** Output dirs on tmpfs, as in production (/dev/shm), else the OS temp dir. */
async function workRoot(): Promise<string> {
  for (const base of ['/dev/shm', os.tmpdir()]) {
    try {
      const dir = path.join(base, `infisical-sidecar-bench-${process.pid}`);
      await mkdir(dir, { recursive: true, mode: 0o750 });
      return dir;
    } catch {
      // try the next one
    }
  }
  throw new Error('no writable temp directory');
}

function benchSeed(): FakeSeed {
  const seed = structuredClone(GLITCHTIP_SEED);
  const folders = seed.projects[0]!.environments[DEMO_ENVIRONMENT]!.folders;
  for (const size of [10, 100, 1000, 5000, 10000]) {
    const secrets: Record<string, string> = {};
    for (let i = 0; i < size; i++) secrets[`KEY_${String(i).padStart(5, '0')}`] = `value-${i}-${'x'.repeat(24)}`;
    folders[`/bench/n${size}`] = { secrets };
  }
  return seed;
}

let counter = 0;
async function freshDir(work: string, label: string): Promise<string> {
  const dir = path.join(work, `${label}-${++counter}`);
  await mkdir(dir, { recursive: true, mode: 0o750 });
  return dir;
}

/** The GlitchTip deployment's environment (as test/helpers/sidecar.ts), with default timings. */
function sidecarEnv(fake: FakeInfisical, outputDir: string, port: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
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

let rotation = 0;
function rotate(fake: FakeInfisical, folder = DEMO_APPLICATION_PATH, key = 'SECRET_KEY'): string {
  const value = `rotated-${++rotation}-${Date.now()}`;
  fake.setSecret(DEMO_ENVIRONMENT, folder, key, value);
  return value;
}

const mb = (bytes: number) => bytes / 1e6;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Alternates which side goes first, so neither always runs on a warmer (or busier) machine. */
const ordered = <T>(round: number, pair: readonly [T, T]): T[] => (round % 2 === 0 ? [pair[0], pair[1]] : [pair[1], pair[0]]);

function row(r: Row): void {
  rows.push(r);
}

// ---- 1. cold start ------------------------------------------------------------------------------

interface ColdSubject {
  readonly name: string;
  readonly args: string[];
  /** The node binary; the host's (process.execPath) when absent. */
  readonly node?: string;
  /** The reference this subject's ratio is taken against (the floor on the same node). */
  readonly floor?: string;
  readonly env?: Record<string, string>;
}

interface ColdResult {
  ms: number;
  cpuMs: number;
  rssMb: number;
  firstLogMs: number | undefined;
  stderr: string;
}

async function coldOnce(fake: FakeInfisical, work: string, subject: ColdSubject, extraEnv: Record<string, string> = {}): Promise<ColdResult> {
  const outputDir = await freshDir(work, 'cold');
  const port = await freePort();
  const env = sidecarEnv(fake, outputDir, port, { ...subject.env, ...extraEnv });
  const startedEpoch = Date.now();
  const started = performance.now();
  const child = spawn(subject.node ?? process.execPath, subject.args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  child.once('exit', () => (exited = true));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-200_000)));
  // The sidecar's first log line ("starting") is printed once every module is loaded and the config parsed.
  let firstLogMs: number | undefined;
  let firstChunk = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    if (firstLogMs !== undefined) return;
    firstChunk += chunk.toString('utf8');
    const line = firstChunk.split('\n')[0];
    if (line === undefined || !firstChunk.includes('\n')) return;
    try {
      const time = Date.parse((JSON.parse(line) as { time?: string }).time ?? '');
      firstLogMs = Number.isNaN(time) ? Number.NaN : time - startedEpoch;
    } catch {
      firstLogMs = Number.NaN;
    }
  });
  try {
    const healthyAt = await waitHealthy(port, { deadlineMs: 20_000, everyMs: 2, exited: () => exited });
    const [rssMb, cpuMs] = await Promise.all([rssMbOf(child.pid), cpuMsOf(child.pid)]);
    const target = await readlink(path.join(outputDir, '..data'));
    const written = await readdir(path.join(outputDir, target, 'keys'));
    if (!written.includes('SECRET_KEY') || !existsSync(path.join(outputDir, 'secrets.env'))) throw new Error(`${subject.name}: files missing after /healthz 200`);
    return { ms: healthyAt - started, cpuMs, rssMb, firstLogMs, stderr };
  } finally {
    if (!exited) {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    }
  }
}

async function nodeStartup(node = process.execPath): Promise<number> {
  const started = performance.now();
  await run(node, ['-e', '0']);
  return performance.now() - started;
}

const nodeVersion = async (node: string) => (await run(node, ['--version'])).stdout.trim();

/**
 * The image form on a given node: the bundle, plus the compile cache the Dockerfile's runtime stage
 * fills, filled here the same way by that node (in a directory of its own, as the image's is).
 */
async function imageForm(work: string, bundle: string, node: string, label: string): Promise<{ env: Record<string, string>; cacheNote?: string }> {
  const cache = await imageCompileCache(treeRoot);
  if (!cache) return { env: {} };
  const dir = await freshDir(work, `compile-cache-${label}`);
  await fillCompileCache(node, bundle, cache.args, dir, cache.flags);
  return { env: { NODE_COMPILE_CACHE: dir }, cacheNote: `compile cache filled as the Dockerfile does (\`node ${[...cache.flags, 'main.js', ...cache.args].join(' ')}\`, ENV NODE_COMPILE_CACHE)` };
}

async function coldStart(fake: FakeInfisical, work: string, bundle: string): Promise<void> {
  const host = process.execPath;
  const hostVersion = process.version;
  let shipped: string | undefined;
  try {
    shipped = await shippedNode();
  } catch (error) {
    problems.push(`cold: no Node of the shipped major (bench/shipped-node.mjs): ${error instanceof Error ? error.message : String(error)}`);
  }
  const shippedVersion = shipped ? await nodeVersion(shipped) : undefined;
  const hostImage = await imageForm(work, bundle, host, 'host');
  // The image's ENTRYPOINT flags (e.g. --max-semi-space-size): the image form starts as the image starts it.
  const imageFlags = await imageNodeFlags(treeRoot);
  const subjects: ColdSubject[] = [
    { name: `sidecar dist/main.js, Node ${hostVersion}`, args: [path.join(distDir, 'main.js'), 'run'], floor: `floor, Node ${hostVersion}` },
    { name: `sidecar bundle (image form), Node ${hostVersion}`, args: [...imageFlags, bundle, 'run'], env: hostImage.env, floor: `floor, Node ${hostVersion}` },
    { name: `floor, Node ${hostVersion}`, args: [floorScript] },
  ];
  let shippedImage: Awaited<ReturnType<typeof imageForm>> | undefined;
  if (shipped && shippedVersion && shippedVersion !== hostVersion) {
    shippedImage = await imageForm(work, bundle, shipped, 'shipped');
    subjects.push(
      { name: `sidecar bundle (image form), Node ${shippedVersion} (shipped)`, node: shipped, args: [...imageFlags, bundle, 'run'], env: shippedImage.env, floor: `floor, Node ${shippedVersion} (shipped)` },
      { name: `floor, Node ${shippedVersion} (shipped)`, node: shipped, args: [floorScript] },
    );
  }
  const sidecars = subjects.filter((s) => s.floor);
  const ms = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  const rss = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  const cpu = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  const firstLog = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  const bare = new Map<string, number[]>([[hostVersion, []], ...(shipped && shippedVersion ? [[shippedVersion, []] as [string, number[]]] : [])]);
  for (let round = 0; round < ROUNDS.cold; round++) {
    const order = subjects.map((_, i) => subjects[(i + round) % subjects.length]!);
    for (const subject of order) {
      const result = await coldOnce(fake, work, subject);
      ms.get(subject.name)!.push(result.ms);
      rss.get(subject.name)!.push(result.rssMb);
      cpu.get(subject.name)!.push(result.cpuMs);
      if (result.firstLogMs !== undefined && Number.isFinite(result.firstLogMs)) firstLog.get(subject.name)!.push(result.firstLogMs);
    }
    bare.get(hostVersion)!.push(await nodeStartup());
    if (shipped && shippedVersion && bare.has(shippedVersion) && shippedVersion !== hostVersion) bare.get(shippedVersion)!.push(await nodeStartup(shipped));
  }
  // Compile cache hits of the image form on the shipped Node (one more start, with Node's debug output).
  let hitsNote: string | undefined;
  const shippedSubject = subjects.find((s) => s.node === shipped && s.floor);
  if (shippedSubject?.env?.NODE_COMPILE_CACHE) {
    const debug = await coldOnce(fake, work, shippedSubject, { NODE_DEBUG_NATIVE: 'COMPILE_CACHE' });
    const { hits, misses, rejected } = compileCacheCounts(debug.stderr);
    hitsNote = `${shippedImage?.cacheNote}; on the shipped Node a start to /healthz 200 had ${hits} module(s) from the cache, ${misses} compiled anew (loaded only later, e.g. on first use), ${rejected} rejected`;
    raw.compileCache = { hits, misses, rejected };
  }
  for (const subject of sidecars) {
    const values = ms.get(subject.name)!;
    const floorMs = ms.get(subject.floor!)!;
    const r = ratio(values, floorMs);
    const notes = [
      firstLog.get(subject.name)!.length > 0 ? `first log line ("starting": modules loaded, config parsed) at ${stat(firstLog.get(subject.name)!).median.toFixed(0)} ms (median)` : undefined,
      subject === shippedSubject ? hitsNote : subject.env?.NODE_COMPILE_CACHE ? `${hostImage.cacheNote} (Node 20 ignores it)` : undefined,
    ].filter(Boolean);
    row({
      section: '1 cold start',
      metric: `spawn → files written + /healthz 200`,
      unit: 'ms',
      subject: { name: subject.name, stat: stat(values) },
      reference: { name: subject.floor!, stat: stat(floorMs) },
      ratio: r,
      note: notes.length > 0 ? notes.join('; ') : undefined,
      // The target is for the image form on the Node that ships; the host rows are context.
      target: subject === shippedSubject || !shippedSubject ? { text: '≤ 1.2× floor', pass: r <= 1.2 } : undefined,
    });
  }
  for (const subject of sidecars) {
    const values = cpu.get(subject.name)!;
    const r = ratio(values, cpu.get(subject.floor!)!);
    row({
      section: '1 cold start',
      metric: 'CPU time used until /healthz 200 (user+sys; steadier than wall on a busy machine)',
      unit: 'ms',
      subject: { name: subject.name, stat: stat(values) },
      reference: { name: subject.floor!, stat: stat(cpu.get(subject.floor!)!) },
      ratio: r,
      target: subject === shippedSubject || !shippedSubject ? { text: '≤ 1.2× floor', pass: r <= 1.2 } : undefined,
    });
  }
  for (const [version, values] of bare) if (values.length > 0) row({ section: '1 cold start', metric: 'context: bare `node -e 0`, spawn → exit', unit: 'ms', subject: { name: `node ${version}`, stat: stat(values) } });
  for (const subject of sidecars) {
    row({
      section: '1 cold start',
      metric: 'RSS when first healthy',
      unit: 'MB',
      subject: { name: subject.name, stat: stat(rss.get(subject.name)!) },
      reference: { name: subject.floor!, stat: stat(rss.get(subject.floor!)!) },
      ratio: ratio(rss.get(subject.name)!, rss.get(subject.floor!)!),
    });
  }
  raw.cold = { ms: Object.fromEntries(ms), cpuMs: Object.fromEntries(cpu), rssMb: Object.fromEntries(rss), firstLogMs: Object.fromEntries(firstLog), nodeStartupMs: Object.fromEntries(bare) };
  await coldStartFromCache(work, subjects[1]!, ms.get(subjects[1]!.name)!);
}

/**
 * Issue 15: the image form started while Infisical is down, from a last-known-good cache filled by
 * an earlier `once` (SIDECAR_CACHE_FALLBACK_AFTER=0s), next to its cold start from Infisical above.
 * A fake of its own, on a port that is closed when the sidecar starts: the cache is bound to the
 * site URL, so the outage must be at the same address.
 */
async function coldStartFromCache(work: string, subject: ColdSubject, fromInfisicalMs: readonly number[]): Promise<void> {
  const cacheDir = await freshDir(work, 'cache');
  await chmod(cacheDir, 0o700);
  const cacheEnv = { SIDECAR_CACHE_DIR: cacheDir, SIDECAR_CACHE_FALLBACK_AFTER: '0s' };
  const downFake = await startFakeInfisical({});
  const filled = await run(process.execPath, [...subject.args.slice(0, -1), 'once'], { env: sidecarEnv(downFake, await freshDir(work, 'fill'), await freePort(), cacheEnv) });
  await downFake.close();
  if (filled.code !== 0) throw new Error(`filling the cache failed (exit ${filled.code})`);
  const values: number[] = [];
  for (let round = 0; round < ROUNDS.cold; round++) values.push((await coldOnce(downFake, work, subject, cacheEnv)).ms);
  row({
    section: '1 cold start',
    metric: 'spawn → files written + /healthz 200, Infisical down, from the last-known-good cache',
    unit: 'ms',
    subject: { name: `${subject.name}, from the cache`, stat: stat(values) },
    reference: { name: `${subject.name}, from Infisical`, stat: stat([...fromInfisicalMs]) },
    ratio: ratio(values, [...fromInfisicalMs]),
    note: 'the first pass fails with ECONNREFUSED, then the cache (AES-256-GCM, HKDF) is read and written out',
  });
  raw.coldFromCache = { ms: values };
}

// ---- 2. SDK adapter cost ------------------------------------------------------------------------

interface AdapterResult {
  importMs: number;
  firstSyncMs: number;
  rssStart: number;
  rssAfterImport: number;
  rssAfterSync: number;
  secrets: number;
}

async function adapterOnce(fake: FakeInfisical, work: string, impl: 'sidecar' | 'floor'): Promise<AdapterResult> {
  const env = sidecarEnv(fake, await freshDir(work, 'adapter'), 0);
  const result = await run(process.execPath, [path.join(childrenDir, 'adapter.mjs'), '--impl', impl], { env, timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`adapter ${impl} exited ${result.code}: ${result.stderr.slice(-1000)}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as AdapterResult;
}

async function adapterCost(fake: FakeInfisical, work: string): Promise<void> {
  const results: Record<'sidecar' | 'floor', AdapterResult[]> = { sidecar: [], floor: [] };
  for (let round = 0; round < ROUNDS.adapter; round++) {
    for (const impl of ordered(round, ['sidecar', 'floor'] as const)) results[impl].push(await adapterOnce(fake, work, impl));
  }
  const pick = (impl: 'sidecar' | 'floor', f: (r: AdapterResult) => number) => results[impl].map(f);
  const metrics: Array<[string, string, (r: AdapterResult) => number]> = [
    ['import of the Infisical module', 'ms', (r) => r.importMs],
    ['first sync (login + 2 folders)', 'ms', (r) => r.firstSyncMs],
    ['RSS after import + first sync', 'MB', (r) => mb(r.rssAfterSync)],
    ['RSS added by import + first sync', 'MB', (r) => mb(r.rssAfterSync - r.rssStart)],
  ];
  for (const [metric, unit, f] of metrics) {
    row({
      section: '2 SDK adapter',
      metric,
      unit,
      subject: { name: 'infisical/client.ts (@infisical/sdk)', stat: stat(pick('sidecar', f)) },
      reference: { name: 'floor fetch', stat: stat(pick('floor', f)) },
      ratio: ratio(pick('sidecar', f), pick('floor', f)),
    });
  }
  raw.adapter = results;
}

// ---- 3. refresh cost ----------------------------------------------------------------------------

interface Synced {
  ok: boolean;
  error?: string;
  cpuMs: number;
  wallMs: number;
  changed: boolean;
  bytesWritten: number;
  filesWritten: number;
}

async function sync(child: Child): Promise<Synced> {
  const answer = (await child.request({ op: 'sync' }, 'synced', 120_000)) as unknown as Synced;
  if (!answer.ok) throw new Error(`${child.name}: sync failed: ${answer.error}`);
  return answer;
}

async function refreshCost(fake: FakeInfisical, work: string): Promise<void> {
  type Impl = 'sidecar' | 'floor';
  const growthCpu: Record<Impl, Record<'changed' | 'unchanged', Record<number, number[]>>> = {
    sidecar: { changed: {}, unchanged: {} },
    floor: { changed: {}, unchanged: {} },
  };
  const rawRefresh: Record<string, unknown> = {};
  let unchangedBytes = 0;
  let unchangedVersionSwaps = 0;
  for (const size of REFRESH_SIZES) {
    const folder = `/bench/n${size}`;
    const dirs: Record<Impl, string> = { sidecar: await freshDir(work, `refresh-${size}-sidecar`), floor: await freshDir(work, `refresh-${size}-floor`) };
    const children: Record<Impl, Child> = {} as Record<Impl, Child>;
    for (const impl of ['sidecar', 'floor'] as const) {
      const env = sidecarEnv(fake, dirs[impl], 0, { INFISICAL_SECRET_PATHS: folder, SIDECAR_REQUIRED_KEYS: '' });
      delete env.SIDECAR_DERIVE_DATABASE_URL;
      children[impl] = Child.fork(path.join(childrenDir, 'refresh.mjs'), { args: ['--impl', impl], env, name: `refresh ${impl} n=${size}` });
    }
    try {
      for (const impl of ['sidecar', 'floor'] as const) await children[impl].next('ready');
      const samples: Record<Impl, Record<'changed' | 'unchanged', Synced[]>> = { sidecar: { changed: [], unchanged: [] }, floor: { changed: [], unchanged: [] } };
      // The first write, then warm-up rounds (JIT, lazy loads), none of them recorded.
      const rounds = ROUNDS.refresh[size]!;
      for (let round = -1 - WARM_UP_ROUNDS; round < rounds; round++) {
        if (round > -1 - WARM_UP_ROUNDS) rotate(fake, folder, 'KEY_00000');
        for (const impl of ordered(round, ['sidecar', 'floor'] as const)) {
          const changed = await sync(children[impl]);
          if (!changed.changed) throw new Error(`${impl} n=${size}: a rotated secret did not change the files`);
          if (round >= 0) samples[impl].changed.push(changed);
        }
        // Unchanged passes are cheap, so warm them up properly: a 10k pass is still getting faster
        // (JIT) after ten of them, which would otherwise bias the growth ratio upwards.
        if (round === -1 - WARM_UP_ROUNDS) for (let w = 0; w < UNCHANGED_WARM_UP; w++) for (const impl of ['sidecar', 'floor'] as const) await sync(children[impl]);
        for (const impl of ordered(round, ['sidecar', 'floor'] as const)) {
          const before = await readlink(path.join(dirs[impl], '..data'));
          const unchanged = await sync(children[impl]);
          const after = await readlink(path.join(dirs[impl], '..data'));
          if (impl === 'sidecar') {
            unchangedBytes += unchanged.bytesWritten;
            if (before !== after || unchanged.changed) unchangedVersionSwaps++;
          }
          if (round >= 0) samples[impl].unchanged.push(unchanged);
        }
      }
      for (const mode of ['changed', 'unchanged'] as const) {
        for (const impl of ['sidecar', 'floor'] as const) growthCpu[impl][mode][size] = samples[impl][mode].map((s) => s.cpuMs);
        for (const [metric, unit, f] of [
          ['CPU', 'ms', (s: Synced) => s.cpuMs],
          ['wall', 'ms', (s: Synced) => s.wallMs],
          ...(mode === 'changed' ? [['bytes written', 'B', (s: Synced) => s.bytesWritten] as const] : []),
        ] as const) {
          const subject = samples.sidecar[mode].map(f);
          const reference = samples.floor[mode].map(f);
          row({
            section: '3 refresh',
            metric: `${size.toLocaleString('en-US')} secrets, ${mode}: ${metric}`,
            unit,
            subject: { name: 'sidecar syncer', stat: stat(subject) },
            reference: { name: 'floor', stat: stat(reference) },
            ratio: ratio(subject, reference),
          });
        }
      }
      rawRefresh[size] = samples;
    } finally {
      await Promise.all([children.sidecar.stop(), children.floor.stop()]);
    }
  }
  row({
    section: '3 refresh',
    metric: 'unchanged refreshes: bytes written, version swaps (all sizes)',
    unit: 'B',
    subject: { name: 'sidecar', stat: stat([unchangedBytes]) },
    note: `${unchangedVersionSwaps} swap(s) of ..data`,
    target: { text: '0 bytes, no swap', pass: unchangedBytes === 0 && unchangedVersionSwaps === 0 },
  });
  for (const mode of ['changed', 'unchanged'] as const) {
    const big = growthCpu.sidecar[mode][GROWTH_TO]!;
    const mid = growthCpu.sidecar[mode][GROWTH_FROM]!;
    const r = stat(big).median / stat(mid).median;
    const floorGrowth = stat(growthCpu.floor[mode][GROWTH_TO]!).median / stat(growthCpu.floor[mode][GROWTH_FROM]!).median;
    const k = (n: number) => (n >= 1000 ? `${n / 1000}k` : String(n));
    row({
      section: '3 refresh',
      metric: `growth ${k(GROWTH_FROM)} → ${k(GROWTH_TO)} secrets, ${mode} (CPU)`,
      unit: 'ms',
      subject: { name: `sidecar ${k(GROWTH_TO)}`, stat: stat(big) },
      reference: { name: `sidecar ${k(GROWTH_FROM)}`, stat: stat(mid) },
      ratio: r,
      note: `floor grows ${floorGrowth.toFixed(1)}×${quick ? ' (quick run: 100 → 1k stands in for 1k → 10k)' : ''}`,
      target: { text: `≤ 12× the ${k(GROWTH_FROM)} cost`, pass: r <= 12 },
    });
  }
  raw.refresh = rawRefresh;
}

// ---- 4. memory ----------------------------------------------------------------------------------

interface MemReport {
  n: number;
  rss: number;
  heapUsed: number;
  external: number;
}

interface LoopResult {
  points: MemReport[];
  ms: number;
}

/** GC'd memory checkpoints over the second half: 50 %, 60 %, … 100 % of the refreshes. */
function checkpoints(refreshes: number): number[] {
  return [0.5, 0.6, 0.7, 0.8, 0.9, 1].map((f) => Math.round(refreshes * f));
}

/** Least-squares slope of y over x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

async function loopRun(fake: FakeInfisical, work: string, impl: 'sidecar' | 'floor', refreshes: number): Promise<LoopResult> {
  const marks = checkpoints(refreshes);
  const env = sidecarEnv(fake, await freshDir(work, `memory-${impl}`), 0, { BENCH_INTERVAL_MS: '5', BENCH_CHECKPOINTS: marks.join(',') });
  const module = impl === 'sidecar' ? path.join(childrenDir, 'sidecar-loop.mjs') : floorScript;
  // BENCH_MEMORY_NODE=shipped|/path/to/node runs both loops on that node. The sidecar's loop gets the node flags of
  // the image's ENTRYPOINT (V8 memory flags, issue 19); BENCH_SIDECAR_FLAGS replaces them ("" for none).
  const memoryNode = process.env.BENCH_MEMORY_NODE === 'shipped' ? await shippedNode() : process.env.BENCH_MEMORY_NODE || undefined;
  const flags = impl === 'sidecar' ? (process.env.BENCH_SIDECAR_FLAGS ?? (await imageNodeFlags(treeRoot)).join(' ')).split(' ').filter(Boolean) : [];
  const child = Child.fork(module, { env, execArgv: ['--expose-gc', ...flags], execPath: memoryNode, name: `memory ${impl}` });
  const started = performance.now();
  // A secret changes every 100 refreshes, so the write path runs too (both sides see the same changes).
  const onProgress = (message: unknown) => {
    if ((message as { type?: string }).type === 'progress') rotate(fake);
  };
  child.proc.on('message', onProgress);
  try {
    await child.next('ready');
    const points: MemReport[] = [];
    for (let i = 0; i < marks.length; i++) points.push((await child.next('mem', 180_000)) as unknown as MemReport);
    await child.next('done');
    return { points, ms: performance.now() - started };
  } finally {
    child.proc.off('message', onProgress);
    await child.stop();
  }
}

/** The RSS series of the run with the median final RSS. */
function seriesOf(runs: readonly LoopResult[]): string {
  const sorted = [...runs].sort((a, b) => a.points.at(-1)!.rss - b.points.at(-1)!.rss);
  return sorted[Math.floor(sorted.length / 2)]!.points.map((p) => mb(p.rss).toFixed(1)).join(' / ');
}

async function memory(fake: FakeInfisical, work: string): Promise<void> {
  const n = ROUNDS.memoryRefreshes;
  const half = n / 2;
  const results: Record<'sidecar' | 'floor', LoopResult[]> = { sidecar: [], floor: [] };
  for (let round = 0; round < ROUNDS.memory; round++) {
    for (const impl of ordered(round, ['sidecar', 'floor'] as const)) results[impl].push(await loopRun(fake, work, impl, n));
  }
  const steady = (impl: 'sidecar' | 'floor') => results[impl].map((r) => mb(r.points.at(-1)!.rss));
  // Growth over the last half: the fitted slope through the six GC'd checkpoints, times n/2 refreshes
  // (a single pair of points swings by megabytes with V8's new-space sizing and malloc's arenas).
  const growth = (impl: 'sidecar' | 'floor', field: 'rss' | 'heapUsed') => results[impl].map((r) => mb(slope(r.points.map((p) => [p.n, p[field]] as const)) * half));
  const r = ratio(steady('sidecar'), steady('floor'));
  row({
    section: '4 memory',
    metric: `RSS after ${n.toLocaleString('en-US')} refreshes (5 ms interval, after GC)`,
    unit: 'MB',
    subject: { name: 'sidecar run', stat: stat(steady('sidecar')) },
    reference: { name: 'floor loop', stat: stat(steady('floor')) },
    ratio: r,
    target: { text: '≤ 1.2× floor loop', pass: r <= 1.2 },
  });
  const g = stat(growth('sidecar', 'rss'));
  row({
    section: '4 memory',
    metric: `RSS growth over the last ${half.toLocaleString('en-US')} refreshes (fitted)`,
    unit: 'MB',
    subject: { name: 'sidecar run', stat: g },
    reference: { name: 'floor loop', stat: stat(growth('floor', 'rss')) },
    note: `RSS (MB) at ${checkpoints(n).map((c) => c.toLocaleString('en-US')).join(' / ')} refreshes: sidecar ${seriesOf(results.sidecar)}; floor ${seriesOf(results.floor)} (median run)`,
    target: { text: '≤ 1 MB', pass: g.median <= 1 },
  });
  row({
    section: '4 memory',
    metric: `JS heap growth over the last ${half.toLocaleString('en-US')} refreshes (fitted)`,
    unit: 'MB',
    subject: { name: 'sidecar run', stat: stat(growth('sidecar', 'heapUsed')) },
    reference: { name: 'floor loop', stat: stat(growth('floor', 'heapUsed')) },
  });
  raw.memory = results;
}

// ---- 5. /healthz under load ---------------------------------------------------------------------

interface LoadResult {
  rps: number;
  p99: number;
  p50: number;
  non2xx: number;
  errors: number;
  refreshes?: number;
}

async function cannon(port: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const instance = autocannon({ url: `http://127.0.0.1:${port}/healthz`, connections: 10, pipelining: 1, duration: seconds, timeout: 5 });
  instance.on('response', (_client, _status, _bytes, responseTime) => {
    latencies.push(responseTime);
  });
  const result = await instance;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? Number.NaN;
  return { rps: result.requests.average, p99: at(0.99), p50: at(0.5), non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

type LoadSubject = 'sidecar' | 'bare' | 'bareSameBody';

async function loadOnce(fake: FakeInfisical, work: string, impl: LoadSubject, sameBody: { text: string }): Promise<LoadResult> {
  const child =
    impl === 'sidecar'
      ? Child.fork(path.join(childrenDir, 'sidecar-loop.mjs'), { env: sidecarEnv(fake, await freshDir(work, 'load'), 0, { BENCH_INTERVAL_MS: '100' }), name: 'load sidecar' })
      : Child.fork(path.join(childrenDir, 'bare-fastify.mjs'), { env: { PATH: process.env.PATH, ...(impl === 'bareSameBody' ? { BENCH_BODY: sameBody.text } : {}) }, name: `load ${impl}` });
  try {
    const { port } = (await child.next('ready')) as unknown as { port: number };
    await waitHealthy(port, { deadlineMs: 10_000, everyMs: 10 });
    if (impl === 'sidecar' && sameBody.text === '') sameBody.text = await (await fetch(`http://127.0.0.1:${port}/healthz`)).text();
    if (ROUNDS.loadWarmUp > 0) await cannon(port, ROUNDS.loadWarmUp);
    const listsBefore = fake.requests.length;
    const result = await cannon(port, ROUNDS.loadSeconds);
    if (impl === 'sidecar') result.refreshes = (fake.requests.length - listsBefore) / 2;
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${impl}: ${result.non2xx} non-2xx answers and ${result.errors} errors under load`);
    return result;
  } finally {
    await child.stop();
  }
}

async function healthLoad(fake: FakeInfisical, work: string): Promise<void> {
  const results: Record<LoadSubject, LoadResult[]> = { sidecar: [], bare: [], bareSameBody: [] };
  const sameBody = { text: '' };
  const subjects: LoadSubject[] = ['sidecar', 'bare', 'bareSameBody'];
  for (let round = 0; round < ROUNDS.load; round++) {
    // The sidecar goes first in round 0: its /healthz body is the same-body reference's.
    for (let i = 0; i < subjects.length; i++) {
      const impl = subjects[(i + round) % subjects.length]!;
      results[impl].push(await loadOnce(fake, work, impl, sameBody));
    }
  }
  const pick = (impl: LoadSubject, f: (r: LoadResult) => number) => results[impl].map(f);
  const rps = ratio(pick('sidecar', (r) => r.rps), pick('bare', (r) => r.rps));
  const refreshes = stat(pick('sidecar', (r) => r.refreshes ?? 0)).median;
  const bodyBytes = Buffer.byteLength(sameBody.text);
  row({
    section: '5 /healthz load',
    metric: `requests/s, 10 connections, ${ROUNDS.loadSeconds} s, refreshing every 100 ms`,
    unit: 'req/s',
    subject: { name: 'sidecar /healthz', stat: stat(pick('sidecar', (r) => r.rps)) },
    reference: { name: 'bare Fastify', stat: stat(pick('bare', (r) => r.rps)) },
    ratio: rps,
    note: `${refreshes} refreshes ran during each load run; the sidecar answers ${bodyBytes} bytes of JSON, the hello-world 15`,
    target: { text: '≥ 0.8× bare Fastify', pass: rps >= 0.8 },
  });
  const p99 = ratio(pick('sidecar', (r) => r.p99), pick('bare', (r) => r.p99));
  row({
    section: '5 /healthz load',
    metric: 'latency p99',
    unit: 'ms',
    subject: { name: 'sidecar /healthz', stat: stat(pick('sidecar', (r) => r.p99)) },
    reference: { name: 'bare Fastify', stat: stat(pick('bare', (r) => r.p99)) },
    ratio: p99,
    target: { text: '≤ 2× bare Fastify', pass: p99 <= 2 },
  });
  row({
    section: '5 /healthz load',
    metric: `requests/s vs a bare Fastify sending the sidecar's ${bodyBytes}-byte body (context)`,
    unit: 'req/s',
    subject: { name: 'sidecar /healthz', stat: stat(pick('sidecar', (r) => r.rps)) },
    reference: { name: 'bare Fastify, same body', stat: stat(pick('bareSameBody', (r) => r.rps)) },
    ratio: ratio(pick('sidecar', (r) => r.rps), pick('bareSameBody', (r) => r.rps)),
    note: `bare same body / bare hello-world = ${ratio(pick('bareSameBody', (r) => r.rps), pick('bare', (r) => r.rps)).toFixed(2)}× (the load generator shares the two cores and parses every byte)`,
  });
  raw.load = { ...results, sidecarBodyBytes: bodyBytes };
}

// ---- 6. push latency ----------------------------------------------------------------------------

/** Resolves when `file` holds `expected`: inotify on the directory (the ..data swap), polling as a backstop. */
function waitForContent(dir: string, file: string, expected: string, timeoutMs = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = async () => {
      if (done) return;
      const text = await readFile(path.join(dir, file), 'utf8').catch(() => '');
      if (text === expected && !done) {
        done = true;
        const at = performance.now();
        cleanup();
        resolve(at);
      }
    };
    const watcher = watch(dir, () => void check());
    const poll = setInterval(() => void check(), 5);
    const timer = setTimeout(() => {
      done = true;
      cleanup();
      reject(new Error(`${file} did not change within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      watcher.close();
      clearInterval(poll);
      clearTimeout(timer);
    };
    void check();
  });
}

/** One list call as the floor makes it, timed from this process (same loopback, same server). */
async function listCallMs(fake: FakeInfisical, token: string): Promise<number> {
  const query = new URLSearchParams({
    workspaceId: DEMO_PROJECT_ID,
    environment: DEMO_ENVIRONMENT,
    expandSecretReferences: 'true',
    include_imports: 'true',
    recursive: 'false',
    secretPath: DEMO_APPLICATION_PATH,
    viewSecretValue: 'true',
  });
  const started = performance.now();
  const response = await fetch(`${fake.url}/api/v3/secrets/raw?${query}`, { headers: { authorization: `Bearer ${token}` } });
  await response.json();
  return performance.now() - started;
}

async function webhookAvailable(): Promise<boolean> {
  try {
    const schema = (await import(path.join(distDir, 'config', 'schema.js'))) as { VARIABLES?: Record<string, unknown> };
    return schema.VARIABLES !== undefined && 'SIDECAR_WEBHOOK_SECRET' in schema.VARIABLES;
  } catch {
    return false;
  }
}

interface PushTarget {
  readonly name: string;
  readonly outputDir: string;
  push(): Promise<void>;
  stop(): Promise<void>;
}

function spawnedStop(child: ReturnType<typeof spawn>): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  };
}

/** The sidecar: `node dist/main.js run` receiving signed webhooks, or, without a webhook endpoint, app.trigger(). */
async function sidecarPushTarget(fake: FakeInfisical, work: string, passMs: number[]): Promise<PushTarget & { mode: 'webhook' | 'trigger' }> {
  const outputDir = await freshDir(work, 'push-sidecar');
  const secret = 'bench-webhook-signing-secret';
  const event = { environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH };
  if (await webhookAvailable()) {
    const port = await freePort();
    const env = sidecarEnv(fake, outputDir, port, { SIDECAR_WEBHOOK_SECRET: secret });
    const child = spawn(process.execPath, [path.join(distDir, 'main.js'), 'run'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    // The sidecar's own log gives the duration of each pass (fetch + render + write).
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as { msg?: string; ms?: number };
          if (entry.msg === 'secrets written' && typeof entry.ms === 'number') passMs.push(entry.ms);
        } catch {
          // not a log line
        }
      }
    });
    const stop = spawnedStop(child);
    await waitHealthy(port, { deadlineMs: 20_000, everyMs: 10 });
    const url = `http://127.0.0.1:${port}/webhook`;
    const probe = await fake.sendWebhook(url, secret, event);
    if (probe.status === 202) {
      return {
        name: 'sidecar webhook',
        mode: 'webhook',
        outputDir,
        stop,
        push: async () => {
          const delivery = await fake.sendWebhook(url, secret, event);
          if (delivery.status !== 202) throw new Error(`webhook answered ${delivery.status}: ${delivery.body}`);
        },
      };
    }
    await stop();
    notes.push(`push: SIDECAR_WEBHOOK_SECRET exists but POST /webhook answered ${probe.status}; measured through app.trigger() instead.`);
  }
  // No webhook endpoint: the same refresh path through app.trigger(), which the webhook handler calls.
  const child = Child.fork(path.join(childrenDir, 'sidecar-loop.mjs'), { env: sidecarEnv(fake, outputDir, 0, { BENCH_INTERVAL_MS: '3600000' }), name: 'push sidecar' });
  const port = ((await child.next('ready')) as unknown as { port: number }).port;
  await waitHealthy(port, { deadlineMs: 20_000, everyMs: 10 });
  notes.push('push: no webhook endpoint in this build; latency measured from app.trigger() (what the webhook handler calls) to the file changing on disk.');
  return { name: 'sidecar trigger', mode: 'trigger', outputDir, stop: () => child.stop(), push: async () => child.send({ op: 'trigger' }) };
}

/** The floor with its bare `POST /webhook` (refresh at once). */
async function floorPushTarget(fake: FakeInfisical, work: string): Promise<PushTarget> {
  const outputDir = await freshDir(work, 'push-floor');
  const port = await freePort();
  const child = spawn(process.execPath, [floorScript], { env: sidecarEnv(fake, outputDir, port), stdio: 'ignore' });
  const stop = spawnedStop(child);
  await waitHealthy(port, { deadlineMs: 20_000, everyMs: 10 });
  const url = `http://127.0.0.1:${port}/webhook`;
  return {
    name: 'floor webhook',
    outputDir,
    stop,
    push: async () => {
      await fake.sendWebhook(url, undefined, { environment: DEMO_ENVIRONMENT, secretPath: DEMO_APPLICATION_PATH });
    },
  };
}

async function pushLatency(fake: FakeInfisical, work: string): Promise<void> {
  const passMs: number[] = [];
  const sidecar = await sidecarPushTarget(fake, work, passMs);
  let floor: PushTarget | undefined;
  const token = ((await (await fetch(`${fake.url}/api/v1/auth/universal-auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: DEMO_CLIENT_ID, clientSecret: DEMO_CLIENT_SECRET }),
  })).json()) as { accessToken: string }).accessToken;

  const times: Record<'sidecar' | 'floor' | 'list', number[]> = { sidecar: [], floor: [], list: [] };
  const sidecarPass: number[] = [];
  try {
    floor = await floorPushTarget(fake, work);
    const targets = { sidecar, floor };
    await listCallMs(fake, token); // warm the connection
    for (let round = quick ? 0 : -1; round < ROUNDS.push; round++) {
      await sleep(1_100); // the sidecar's loop allows a triggered pass at most once a second
      const list = await listCallMs(fake, token);
      const value = rotate(fake);
      for (const which of ordered(round, ['sidecar', 'floor'] as const)) {
        const target = targets[which];
        const started = performance.now();
        const updated = waitForContent(target.outputDir, 'keys/SECRET_KEY', value);
        await target.push();
        const ms = (await updated) - started;
        if (round >= 0) times[which].push(ms);
      }
      if (round >= 0) {
        times.list.push(list);
        await sleep(20); // let the log line of the pass arrive
        if (passMs.length > 0) sidecarPass.push(passMs.at(-1)!);
      }
    }
  } finally {
    await Promise.all([sidecar.stop(), floor?.stop()]);
  }
  const p95 = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]!;
  };
  const r = ratio(times.sidecar, times.list);
  const what = sidecar.mode === 'webhook' ? 'signed webhook sent → keys/SECRET_KEY updated' : 'app.trigger() → keys/SECRET_KEY updated [webhook pending]';
  row({
    section: '6 push',
    metric: `${what} (p50)`,
    unit: 'ms',
    subject: { name: sidecar.name, stat: stat(times.sidecar) },
    reference: { name: 'one list call', stat: stat(times.list) },
    ratio: r,
    note: `p95 ${p95(times.sidecar).toFixed(1)} ms vs list call p95 ${p95(times.list).toFixed(1)} ms${sidecarPass.length > 0 ? `; the sync pass itself (fetch + render + write, from the sidecar's log) took ${stat(sidecarPass).median} ms (median)` : ''}`,
    target: { text: '≤ 1.5× one list call', pass: r <= 1.5 },
  });
  row({
    section: '6 push',
    metric: `${what}, vs the floor's webhook → files (p50)`,
    unit: 'ms',
    subject: { name: sidecar.name, stat: stat(times.sidecar) },
    reference: { name: 'floor webhook', stat: stat(times.floor) },
    ratio: ratio(times.sidecar, times.floor),
    note: `floor p95 ${p95(times.floor).toFixed(1)} ms; floor / one list call = ${ratio(times.floor, times.list).toFixed(2)}×`,
  });
  raw.push = { mode: sidecar.mode, ms: times, sidecarPassMs: sidecarPass };
}

// ---- 7. API budget and 429 ----------------------------------------------------------------------

async function apiBudget(fake: FakeInfisical, work: string): Promise<void> {
  const { loadConfig } = (await import(path.join(distDir, 'config', 'load.js'))) as { loadConfig: (env: NodeJS.ProcessEnv) => { refreshIntervalMs: number; refreshJitter: number } };
  const defaults = loadConfig(sidecarEnv(fake, work, 0));
  const perHour = 3_600_000 / defaults.refreshIntervalMs; // jitter is symmetric: the mean interval is the interval
  const counts: Record<'sidecar' | 'floor', { logins: number; lists: number; other: number }> = {
    sidecar: { logins: 0, lists: 0, other: 0 },
    floor: { logins: 0, lists: 0, other: 0 },
  };
  const passes = ROUNDS.budgetPasses;
  for (const impl of ['sidecar', 'floor'] as const) {
    const child = Child.fork(path.join(childrenDir, 'refresh.mjs'), { args: ['--impl', impl], env: sidecarEnv(fake, await freshDir(work, 'budget'), 0), name: `budget ${impl}` });
    try {
      await child.next('ready');
      fake.clearRequests();
      for (let i = 0; i < passes; i++) {
        if (i % 5 === 4) rotate(fake);
        await sync(child);
      }
      for (const entry of fake.requests) {
        if (entry.path.endsWith('/universal-auth/login')) counts[impl].logins++;
        else if (entry.path.startsWith('/api/v3/secrets/raw')) counts[impl].lists++;
        else counts[impl].other++;
      }
    } finally {
      await child.stop();
    }
  }
  const perPass = (impl: 'sidecar' | 'floor') => (counts[impl].lists + counts[impl].other) / passes;
  // One login per token lifetime (the fake issues 30-day tokens, as Infisical's default TTL).
  const hourly = (impl: 'sidecar' | 'floor') => perPass(impl) * perHour + counts[impl].logins / (30 * 24);
  row({
    section: '7 API budget',
    metric: `requests per refresh (2 folders; ${passes} refreshes from the fake's log)`,
    unit: 'req',
    subject: { name: 'sidecar', stat: stat([perPass('sidecar')]) },
    reference: { name: 'floor', stat: stat([perPass('floor')]) },
    ratio: perPass('sidecar') / perPass('floor'),
    note: `logins: sidecar ${counts.sidecar.logins}, floor ${counts.floor.logins}`,
  });
  row({
    section: '7 API budget',
    metric: `requests per hour at defaults (refresh ${defaults.refreshIntervalMs / 60_000} min ±${defaults.refreshJitter * 100}%)`,
    unit: 'req/h',
    subject: { name: 'sidecar', stat: stat([hourly('sidecar')]) },
    reference: { name: 'floor', stat: stat([hourly('floor')]) },
    ratio: hourly('sidecar') / hourly('floor'),
  });
  raw.budget = { counts, passes, refreshIntervalMs: defaults.refreshIntervalMs, perHour: { sidecar: hourly('sidecar'), floor: hourly('floor') } };
  await rateLimited(fake, work);
}

/** 429 with retry-after 1 s on the next 4 list calls (two failed passes of two folders), then normal. */
async function rateLimited(fake: FakeInfisical, work: string): Promise<void> {
  const retryAfterMs = 1_000;
  const env = sidecarEnv(fake, await freshDir(work, 'ratelimit'), 0, { BENCH_INTERVAL_MS: '200', BENCH_REPORT_PASSES: '1' });
  const child = Child.fork(path.join(childrenDir, 'sidecar-loop.mjs'), { env, name: '429 sidecar' });
  try {
    const { port } = (await child.next('ready')) as unknown as { port: number };
    await child.next('pass');
    fake.clearRequests();
    fake.faults.add({ route: 'list', kind: 'rateLimit', retryAfterSeconds: retryAfterMs / 1000, times: 4 });
    const healthDuring: number[] = [];
    // Wait for the two refused passes and the first good one after them.
    let failed = 0;
    for (;;) {
      const pass = (await child.next('pass', 15_000)) as unknown as { ok: boolean };
      if (!pass.ok) {
        failed++;
        healthDuring.push(await getStatus(port, '/healthz'));
      } else if (failed >= 2) break;
    }
    const lists = fake.requests.filter((r) => r.path.startsWith('/api/v3/secrets/raw'));
    const limited = lists.filter((r) => r.status === 429);
    // Group the list calls into passes (a pass asks for both folders at once), then measure, for each
    // pass that got a 429, the wait from its last 429 to the first request of the next pass.
    const passes: Array<typeof lists> = [];
    for (const entry of lists) {
      const last = passes.at(-1);
      if (last && entry.at - last[0]!.at < 50) last.push(entry);
      else passes.push([entry]);
    }
    const gaps: number[] = [];
    passes.forEach((pass, i) => {
      const limitedHere = pass.filter((r) => r.status === 429);
      const next = passes[i + 1];
      if (limitedHere.length > 0 && next) gaps.push(next[0]!.at - limitedHere.at(-1)!.at);
    });
    const minGap = Math.min(...gaps);
    const extra = limited.length - 4;
    const perPass = Math.max(...passes.map((p) => p.length));
    row({
      section: '7 API budget',
      metric: '429 (retry-after 1 s, 4 times): wait before asking again (min)',
      unit: 'ms',
      subject: { name: 'sidecar', stat: stat(gaps) },
      reference: { name: 'retry-after', stat: stat([retryAfterMs]) },
      ratio: minGap / retryAfterMs,
      note: `${limited.length} requests got 429 (${extra > 0 ? `${extra} hidden retries` : 'no hidden SDK retries'}); /healthz during: ${[...new Set(healthDuring)].join(',')}; ${lists.length} list calls in all`,
      target: { text: 'honours retry-after, 1 request per folder per pass', pass: minGap >= retryAfterMs - 5 && extra === 0 && perPass <= 2 },
    });
    raw.rateLimit = { lists: lists.map((r) => ({ at: r.at, status: r.status, path: r.query.secretPath })), gaps, healthDuring };
  } finally {
    fake.faults.clear();
    await child.stop();
  }
}

// ---- 8. file watcher ---------------------------------------------------------------------------

/** Waits until a child uses (almost) no CPU: 300 ms windows with under 30 ms of CPU time, or 60 s. */
async function idle(pid: number | undefined): Promise<void> {
  const deadline = performance.now() + 60_000;
  let before = await cpuMsOf(pid);
  while (performance.now() < deadline) {
    await sleep(300);
    const now = await cpuMsOf(pid);
    if (now - before < 30) return;
    before = now;
  }
}

/**
 * One changed write of WATCH_SIZE secrets by the sidecar's `run` wiring (sidecar-loop.mjs), with
 * SIDECAR_WATCH on or off: the pass's own duration, and the CPU the process used from the trigger
 * until it is idle again, which includes the watcher's check of the files after the swap.
 */
async function watchedWrite(fake: FakeInfisical, work: string, watching: boolean, folder: string): Promise<{ passMs: number; cpuMs: number }> {
  const env = sidecarEnv(fake, await freshDir(work, `watch-${watching ? 'on' : 'off'}`), 0, {
    INFISICAL_SECRET_PATHS: folder,
    SIDECAR_REQUIRED_KEYS: '',
    SIDECAR_WATCH: String(watching),
    BENCH_INTERVAL_MS: '3600000',
    BENCH_REPORT_PASSES: '1',
  });
  delete env.SIDECAR_DERIVE_DATABASE_URL;
  const child = Child.fork(path.join(childrenDir, 'sidecar-loop.mjs'), { env, name: `watch ${watching ? 'on' : 'off'}` });
  try {
    await child.next('ready', 60_000);
    const first = (await child.next('pass', 300_000)) as unknown as { ok: boolean };
    if (!first.ok) throw new Error(`watch ${watching ? 'on' : 'off'}: the first write failed`);
    await sleep(1_000); // the loop's minimum gap between triggered passes
    await idle(child.proc.pid); // the watcher's check of the first write is over
    rotate(fake, folder, 'KEY_00000');
    const cpuBefore = await cpuMsOf(child.proc.pid);
    child.send({ op: 'trigger' });
    const pass = (await child.next('pass', 300_000)) as unknown as { ok: boolean; changed: boolean; ms: number };
    if (!pass.ok || !pass.changed) throw new Error(`watch ${watching ? 'on' : 'off'}: the rotated secret was not written`);
    await idle(child.proc.pid);
    return { passMs: pass.ms, cpuMs: (await cpuMsOf(child.proc.pid)) - cpuBefore };
  } finally {
    await child.stop(10_000);
  }
}

async function watcherCost(fake: FakeInfisical, work: string): Promise<void> {
  const folder = `/bench/n${WATCH_SIZE}`;
  const results: Record<'on' | 'off', { passMs: number; cpuMs: number }[]> = { on: [], off: [] };
  for (let round = 0; round < ROUNDS.watch; round++) {
    for (const side of ordered(round, ['on', 'off'] as const)) results[side].push(await watchedWrite(fake, work, side === 'on', folder));
  }
  const pick = (side: 'on' | 'off', f: (r: { passMs: number; cpuMs: number }) => number) => results[side].map(f);
  const k = `${(WATCH_SIZE / 1000).toString()}k`;
  // The target is on CPU time, steadier than wall time on a shared machine, and it includes the
  // watcher's check after the swap: the whole cost of watching, not only the pass.
  const cpu = ratio(pick('on', (r) => r.cpuMs), pick('off', (r) => r.cpuMs));
  row({
    section: '8 file watcher',
    metric: `${k} secrets, one changed write: CPU until idle again (the watcher's check after the swap included)`,
    unit: 'ms',
    subject: { name: 'SIDECAR_WATCH=true', stat: stat(pick('on', (r) => r.cpuMs)) },
    reference: { name: 'SIDECAR_WATCH=false', stat: stat(pick('off', (r) => r.cpuMs)) },
    ratio: cpu,
    note: `the watcher watches directories, not files; after our own swap it checks the links only, and reads files back only when something inside the live version changed${quick ? '; quick run: 1,000 secrets stand in for 5,000' : ''}`,
    target: { text: '≤ 1.2× watcher off', pass: cpu <= 1.2 },
  });
  row({
    section: '8 file watcher',
    metric: `${k} secrets, one changed write: wall time of the pass (fetch + write)`,
    unit: 'ms',
    subject: { name: 'SIDECAR_WATCH=true', stat: stat(pick('on', (r) => r.passMs)) },
    reference: { name: 'SIDECAR_WATCH=false', stat: stat(pick('off', (r) => r.passMs)) },
    ratio: ratio(pick('on', (r) => r.passMs), pick('off', (r) => r.passMs)),
  });
  raw.watch = { size: WATCH_SIZE, ...results };
}

// ---- 9. image size ------------------------------------------------------------------------------

async function docker(args: string[]): Promise<string | undefined> {
  try {
    const result = await run('docker', args, { timeoutMs: 15_000 });
    return result.code === 0 ? result.stdout.trim() : undefined;
  } catch {
    return undefined;
  }
}

async function imageSize(): Promise<void> {
  const skip = (why: string) => {
    notes.push(`image: skipped — ${why}.`);
    raw.image = { skipped: why };
  };
  if ((await docker(['version', '--format', '{{.Server.Version}}'])) === undefined) return skip('no Docker daemon reachable');
  const listing = (await docker(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'])) ?? '';
  const candidates = listing.split('\n').filter((name) => /(^|\/)infisical-sidecar:/.test(name) && !name.endsWith(':<none>'));
  const preferred = ['infisical-sidecar:e2e', 'infisical-sidecar:latest'];
  const image = preferred.find((name) => candidates.includes(name)) ?? candidates[0];
  if (!image) return skip('no infisical-sidecar image built (the Docker e2e builds infisical-sidecar:e2e)');
  const base = (await docker(['image', 'inspect', '--format', '{{index .Config.Labels "org.opencontainers.image.base.name"}}', image])) ?? '';
  if (base === '' || base === '<no value>') return skip(`${image} carries no org.opencontainers.image.base.name label`);
  const size = Number(await docker(['image', 'inspect', '--format', '{{.Size}}', image]));
  const baseSize = Number(await docker(['image', 'inspect', '--format', '{{.Size}}', base]));
  if (!Number.isFinite(baseSize) || baseSize <= 0) return skip(`base image ${base} is not present locally`);
  const delta = mb(size - baseSize);
  row({
    section: '9 image',
    metric: `image size (${image})`,
    unit: 'MB',
    subject: { name: image, stat: stat([mb(size)]) },
    reference: { name: base, stat: stat([mb(baseSize)]) },
    ratio: size / baseSize,
    note: `+${delta.toFixed(1)} MB over the base`,
    target: { text: '≤ base + 15 MB', pass: delta <= 15 },
  });
  raw.image = { image, base, size, baseSize };
}

// ---- main ---------------------------------------------------------------------------------------

/** Whether dist/main.js is newer than every file under src/ (then `npm run build` would change nothing). */
async function distIsFresh(): Promise<boolean> {
  const built = await stat_(path.join(distDir, 'main.js')).catch(() => undefined);
  if (!built) return false;
  const newest = async (dir: string): Promise<number> => {
    let latest = 0;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      latest = Math.max(latest, entry.isDirectory() ? await newest(full) : (await stat_(full)).mtimeMs);
    }
    return latest;
  };
  const inputs = await Promise.all([newest(path.join(root, 'src')), stat_(path.join(root, 'tsconfig.json')).then((s) => s.mtimeMs), stat_(path.join(root, 'tsconfig.build.json')).then((s) => s.mtimeMs)]);
  return Math.max(...inputs) < built.mtimeMs;
}

async function build(work: string): Promise<string> {
  if (flag('no-build') || process.env.BENCH_DIST_DIR) {
    log(`${process.env.BENCH_DIST_DIR ? 'BENCH_DIST_DIR' : '--no-build'}: using ${distDir} as it is`);
  } else if (!flag('build') && (await distIsFresh())) {
    log('dist/ is newer than src/: not rebuilding (--build forces it)');
  } else {
    log('building dist/ (npm run build)');
    const tsc = await run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: root, timeoutMs: 300_000 });
    if (tsc.code !== 0) throw new Error(`npm run build failed:\n${(tsc.stdout + tsc.stderr).slice(-3000)}`);
  }
  if (!existsSync(path.join(distDir, 'main.js'))) throw new Error('dist/main.js is missing: run `npm run build` (or drop --no-build)');
  // The image's form: esbuild with the Dockerfile's own flags.
  const bundle = await buildImageBundle(path.join(root, 'node_modules', '.bin', 'esbuild'), treeRoot, path.join(work, 'bundle'));
  notes.push(`cold start: "bundle (image form)" is built with ${bundle.source}.`);
  return bundle.entry;
}

async function section(name: Section, body: () => Promise<void>): Promise<void> {
  if (!only.has(name)) return;
  const started = performance.now();
  log(`${name}…`);
  try {
    await body();
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    problems.push(`${name}: ${message}`);
    log(`${name} could not run:\n${message}`);
  }
  log(`${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

function command(): string {
  return `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
}

async function main(): Promise<number> {
  const work = await workRoot();
  let fake: FakeInfisical | undefined;
  try {
    const bundle = await build(work);
    fake = await startFakeInfisical({ seed: benchSeed() });
    const f = fake;
    await section('cold', () => coldStart(f, work, bundle));
    await section('adapter', () => adapterCost(f, work));
    await section('refresh', () => refreshCost(f, work));
    await section('memory', () => memory(f, work));
    await section('load', () => healthLoad(f, work));
    await section('push', () => pushLatency(f, work));
    await section('budget', () => apiBudget(f, work));
    await section('watch', () => watcherCost(f, work));
    await section('image', () => imageSize());
  } catch (error) {
    problems.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
  } finally {
    await fake?.close();
    await rm(work, { recursive: true, force: true });
  }
  await report();
  return problems.length === 0 ? 0 : 1;
}

async function report(): Promise<void> {
  const date = startedAt.toISOString();
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const targets = rows.filter((r) => r.target).map((r) => ({ section: r.section, metric: r.metric, target: r.target!.text, pass: r.target!.pass, ratio: r.ratio }));
  process.stdout.write(`\n${command()}  (${date}, ${quick ? 'quick' : 'full'})\n${machine}\n\n${textTable(rows)}\n`);
  for (const r of rows.filter((x) => x.note)) process.stdout.write(`  note ${r.section} / ${r.metric} (${r.subject.name}): ${r.note}\n`);
  for (const note of notes) process.stdout.write(`  note: ${note}\n`);
  const missed = targets.filter((t) => !t.pass);
  process.stdout.write(`\ntargets: ${targets.length - missed.length} PASS, ${missed.length} MISS${quick ? ' (quick run: few rounds, figures are rough; no threshold fails the run)' : ''}\n`);
  if (problems.length > 0) process.stdout.write(`\nCOULD NOT RUN:\n${problems.map((p) => `  - ${p.split('\n')[0]}`).join('\n')}\n`);

  const results = {
    command: command(),
    date,
    quick,
    machine,
    loadavg: { start: loadAtStart, end: os.loadavg() },
    rounds: ROUNDS,
    rows: rows.map((r) => ({ ...r, subject: { name: r.subject.name, ...summary(r.subject.stat) }, reference: r.reference && { name: r.reference.name, ...summary(r.reference.stat) } })),
    targets,
    notes,
    problems,
    raw,
  };
  const writes = [writeFile(path.join(benchDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`)];
  if (!quick && only.size === SECTIONS.length && problems.length === 0 && !process.env.BENCH_DIST_DIR) {
    const md = [
      '# Benchmark results',
      '',
      `Produced by \`${command()}\` on ${date} (${machine}; load average ${loadAtStart.map((l) => l.toFixed(1)).join(' / ')} at the start, ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} at the end: the machine is shared, which is why only ratios are compared).`,
      'Every figure is the median of interleaved runs, [min–max] in brackets, next to its reference from the same run;',
      'the ratio is subject / reference (median of the per-round ratios). See bench/run.ts for what each row measures.',
      '',
      markdownTable(rows),
      '',
      ...rows.filter((r) => r.note).map((r) => `- ${r.section} / ${r.metric} (${r.subject.name}): ${r.note}`),
      ...notes.map((n) => `- ${n}`),
      '',
      `Targets: ${targets.length - missed.length} PASS, ${missed.length} MISS.`,
      '',
    ].join('\n');
    writes.push(writeFile(path.join(benchDir, 'RESULTS.md'), md));
  }
  await Promise.all(writes);
  log(`wrote bench/results.json${writes.length > 1 ? ' and bench/RESULTS.md' : ''}`);
}

function summary(s: Stat): Record<string, number> {
  return { median: s.median, min: s.min, max: s.max, n: s.n };
}

const code = await main();
process.exitCode = code;
