/**
 * Small helpers for bench/run.ts: statistics, child processes with an IPC message queue, free
 * ports, health polling, and the result table.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';

// ---- statistics ---------------------------------------------------------------------------------

export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
  readonly values: readonly number[];
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

export function stat(values: readonly number[]): Stat {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: quantile(sorted, 0.5), min: sorted[0] ?? Number.NaN, max: sorted.at(-1) ?? Number.NaN, n: values.length, values: [...values] };
}

/**
 * Ratio of subject to reference. With paired (interleaved) runs it is the median of the per-pair
 * ratios, which cancels drift in the machine's load between rounds; otherwise median / median.
 */
export function ratio(subject: readonly number[], reference: readonly number[]): number {
  if (subject.length === reference.length && subject.length > 0) {
    return stat(subject.map((value, i) => value / reference[i]!)).median;
  }
  return stat(subject).median / stat(reference).median;
}

// ---- child processes ----------------------------------------------------------------------------

export type Message = { type: string } & Record<string, unknown>;

interface Waiter {
  readonly type: string;
  readonly resolve: (message: Message) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** A forked Node child with a queue of IPC messages by type. Stopped by its own pid only. */
export class Child {
  private readonly queue: Message[] = [];
  private readonly waiters: Waiter[] = [];
  private stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(readonly proc: ChildProcess, readonly name: string) {
    proc.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4000);
    });
    proc.on('message', (raw) => {
      const message = raw as Message;
      const index = this.waiters.findIndex((w) => w.type === message.type);
      if (index >= 0) {
        const [waiter] = this.waiters.splice(index, 1);
        clearTimeout(waiter!.timer);
        waiter!.resolve(message);
      } else {
        this.queue.push(message);
      }
    });
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code) => {
        for (const waiter of this.waiters.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`${name} exited (code ${code}) while the bench waited for "${waiter.type}"${this.stderrTail()}`));
        }
        resolve(code);
      });
    });
  }

  static fork(module: string, options: { args?: string[]; env: NodeJS.ProcessEnv; execArgv?: string[]; execPath?: string; name: string }): Child {
    const proc = fork(module, options.args ?? [], {
      env: options.env,
      execPath: options.execPath,
      execArgv: options.execArgv ?? [],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    return new Child(proc, options.name);
  }

  stderrTail(): string {
    const tail = this.stderr.trim();
    return tail === '' ? '' : `\n--- stderr of ${this.name} ---\n${tail.slice(-1500)}`;
  }

  /** The next message of this type (queued or future). */
  next(type: string, timeoutMs = 30_000): Promise<Message> {
    const index = this.queue.findIndex((m) => m.type === type);
    if (index >= 0) return Promise.resolve(this.queue.splice(index, 1)[0]!);
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
      return Promise.reject(new Error(`${this.name} has exited; no "${type}" will come${this.stderrTail()}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.findIndex((w) => w.timer === timer);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new Error(`${this.name}: no "${type}" message within ${timeoutMs} ms${this.stderrTail()}`));
      }, timeoutMs);
      this.waiters.push({ type, resolve, reject, timer });
    });
  }

  /** Drops queued messages of a type (e.g. stale `pass` reports). */
  drain(type: string): Message[] {
    const taken = this.queue.filter((m) => m.type === type);
    for (const message of taken) this.queue.splice(this.queue.indexOf(message), 1);
    return taken;
  }

  send(message: object): void {
    if (this.proc.connected) this.proc.send(message);
  }

  async request(message: object, reply: string, timeoutMs = 60_000): Promise<Message> {
    const answer = this.next(reply, timeoutMs);
    this.send(message);
    return answer;
  }

  /** Asks it to stop, then SIGTERM, then SIGKILL; always by this child's own pid. */
  async stop(graceMs = 3_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.send({ op: 'stop' });
    const timeout = (ms: number) => new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
    if ((await Promise.race([this.exited, timeout(graceMs)])) !== 'timeout') return;
    this.proc.kill('SIGTERM');
    if ((await Promise.race([this.exited, timeout(graceMs)])) !== 'timeout') return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** Runs a command to completion; resolves with its exit code and output. */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---- /proc ---------------------------------------------------------------------------------------

/** CPU time (user + system, ms) a live process has used so far; NaN when /proc cannot tell. */
export async function cpuMsOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at ") "; utime and stime are the 12th and 13th.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** USER_HZ: 100 on every Linux this runs on (the kernel's userspace tick, not CONFIG_HZ). */
const CLOCK_TICKS = 100;

/** Resident set size of a live process, in MB (10^6 bytes). */
export async function rssMbOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? (Number(kb) * 1024) / 1e6 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

// ---- network ------------------------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One GET; resolves with the status, or 0 when the connection failed. */
export function getStatus(port: number, path: string, timeoutMs = 1_000): Promise<number> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.once('error', () => resolve(0));
    request.once('timeout', () => {
      request.destroy();
      resolve(0);
    });
  });
}

/** Polls /healthz every `everyMs` until 200; resolves with performance.now() of the 200. */
export async function waitHealthy(port: number, options: { deadlineMs: number; everyMs: number; exited?: () => boolean }): Promise<number> {
  const deadline = performance.now() + options.deadlineMs;
  for (;;) {
    if ((await getStatus(port, '/healthz')) === 200) return performance.now();
    if (options.exited?.()) throw new Error('the process exited before /healthz answered 200');
    if (performance.now() > deadline) throw new Error(`/healthz on port ${port} not 200 within ${options.deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, options.everyMs));
  }
}

// ---- results ------------------------------------------------------------------------------------

export interface Side {
  readonly name: string;
  readonly stat: Stat;
}

export interface Row {
  readonly section: string;
  readonly metric: string;
  readonly unit: string;
  readonly subject: Side;
  readonly reference?: Side | undefined;
  /** subject / reference (median of paired ratios when the runs were interleaved). */
  readonly ratio?: number | undefined;
  readonly target?: { readonly text: string; readonly pass: boolean } | undefined;
  readonly note?: string | undefined;
}

export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '–';
  if (unit === 'MB') return value.toFixed(1);
  if (unit === 'B' || unit === 'req' || unit === 'req/h' || unit === 'files') return Math.round(value).toLocaleString('en-US');
  if (unit === 'req/s') return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function formatStat(s: Stat, unit: string): string {
  const median = formatValue(s.median, unit);
  if (s.n <= 1 || s.min === s.max) return `${median} ${unit}`;
  return `${median} ${unit} [${formatValue(s.min, unit)}–${formatValue(s.max, unit)}]`;
}

export function formatRatio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '';
  return `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;
}

function verdict(row: Row): string {
  return row.target ? `${row.target.pass ? 'PASS' : 'MISS'} (${row.target.text})` : '';
}

function cells(row: Row): string[] {
  return [
    row.section,
    row.metric,
    `${row.subject.name}: ${formatStat(row.subject.stat, row.unit)}`,
    row.reference ? `${row.reference.name}: ${formatStat(row.reference.stat, row.unit)}` : '',
    formatRatio(row.ratio),
    verdict(row),
  ];
}

const HEADER = ['#', 'measurement', 'subject: median [min–max]', 'reference: median [min–max]', 'ratio', 'target'];

export function textTable(rows: readonly Row[]): string {
  const all = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, column) => Math.max(...all.map((r) => r[column]!.length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((row) => line(cells(row)))].join('\n');
}

export function markdownTable(rows: readonly Row[]): string {
  const escape = (text: string) => text.replaceAll('|', '\\|');
  const out = [`| ${HEADER.join(' | ')} |`, `| ${HEADER.map(() => '---').join(' | ')} |`];
  for (const row of rows) out.push(`| ${cells(row).map(escape).join(' | ')} |`);
  return out.join('\n');
}

// ---- the image's bundle -------------------------------------------------------------------------

/** Splits a shell command line into words: "…" and '…' quoting, backslash escapes, line continuations. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) word += text[++i];
      else word += c;
    } else if (c === '\\' && text[i + 1] === '\n') {
      i++;
    } else if (c === '\\') {
      word += text[++i] ?? '';
      inWord = true;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

const FALLBACK_BUNDLE_ARGS = ['src/main.ts', '--bundle', '--platform=node', '--format=esm', '--target=node20', "--banner:js=import{createRequire}from'module';const require=createRequire(import.meta.url);", '--log-level=warning'];

/**
 * The esbuild arguments the Dockerfile's build stage uses (so "the image form" follows the Dockerfile
 * as it changes), minus its output options. Falls back to a plain single-file bundle when there is no
 * Dockerfile or no esbuild command in it.
 */
export async function imageBundleArgs(root: string): Promise<{ args: string[]; source: string }> {
  let text: string;
  try {
    text = await readFile(`${root}/Dockerfile`, 'utf8');
  } catch {
    return { args: FALLBACK_BUNDLE_ARGS, source: 'no Dockerfile: plain esbuild bundle' };
  }
  const match = /node_modules\/\.bin\/esbuild((?:[^\n]|\\\n)*?)(?:&&|\n(?!\s)|$)/.exec(text.replace(/\\\n/g, ' '));
  if (!match) return { args: FALLBACK_BUNDLE_ARGS, source: 'no esbuild command in the Dockerfile: plain esbuild bundle' };
  const args = shellWords(match[1]!).filter((arg) => !/^--(outdir|outfile|metafile)=/.test(arg));
  return { args, source: 'the Dockerfile\'s esbuild command' };
}

/**
 * Builds the image's bundle into `outDir`; returns the entry file to run. `extra` is appended to the
 * Dockerfile's arguments; `transform` (bench/profile.ts variants) may rewrite them first.
 */
export async function buildImageBundle(
  esbuild: string,
  treeRoot: string,
  outDir: string,
  extra: readonly string[] = [],
  transform: (args: string[]) => string[] = (args) => args,
): Promise<{ entry: string; source: string }> {
  const { args: dockerfileArgs, source } = await imageBundleArgs(treeRoot);
  const args = transform([...dockerfileArgs, ...extra]);
  const split = args.includes('--splitting');
  const result = await run(esbuild, [...args, split ? `--outdir=${outDir}` : `--outfile=${outDir}/main.js`], { cwd: treeRoot, timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`esbuild (${source}) failed:\n${result.stderr.slice(-3000)}`);
  // As the image: its build stage writes the same package.json beside main.js (no CommonJS-first detection).
  const type = args.includes('--format=cjs') ? 'commonjs' : 'module';
  await writeFile(`${outDir}/package.json`, `{"type":"${type}"}\n`);
  return { entry: `${outDir}/main.js`, source };
}

/**
 * The image's Node module compile cache (issue 19), as the Dockerfile's runtime stage makes it: the
 * directory it sets in `ENV NODE_COMPILE_CACHE=…` and the arguments of the `RUN ["node", "/app/main.js", …]`
 * that fills it. Undefined when the Dockerfile makes none.
 */
export async function imageCompileCache(root: string): Promise<{ dir: string; args: string[]; flags: string[] } | undefined> {
  let text: string;
  try {
    text = await readFile(`${root}/Dockerfile`, 'utf8');
  } catch {
    return undefined;
  }
  const dir = /^ENV\s+(?:.*\s)?NODE_COMPILE_CACHE=(\S+)/m.exec(text)?.[1];
  const warm = /^RUN\s+(\[\s*"node"\s*,(?:\s*"-[^"]*"\s*,)*\s*"\/app\/main\.js"[^\]]*\])/m.exec(text)?.[1];
  if (!dir || !warm) return undefined;
  const words = JSON.parse(warm) as string[];
  const at = words.indexOf('/app/main.js');
  return { dir, flags: words.slice(1, at), args: words.slice(at + 1) };
}

/**
 * The node flags of the image's ENTRYPOINT (`["node", "--flag", …, "/app/main.js"]`), which the bench
 * gives the image form: V8 flags change its memory and start, and are part of the compile cache's key.
 */
export async function imageNodeFlags(root: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(`${root}/Dockerfile`, 'utf8');
  } catch {
    return [];
  }
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text)?.[1];
  if (!entrypoint) return [];
  const words = JSON.parse(entrypoint) as string[];
  const at = words.indexOf('/app/main.js');
  return words[0] === 'node' && at > 0 ? words.slice(1, at) : [];
}

/**
 * Fills `cacheDir` as the image build does: `node [flags] entry <args>` with NODE_COMPILE_CACHE, by the node
 * that will read it (the cache is keyed by Node version, V8 flags and uid). Node before 22.1 ignores the variable.
 */
export async function fillCompileCache(node: string, entry: string, args: readonly string[], cacheDir: string, flags: readonly string[] = []): Promise<void> {
  const result = await run(node, [...flags, entry, ...args], { env: { PATH: process.env.PATH, NODE_COMPILE_CACHE: cacheDir }, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`filling the compile cache (${node} ${entry} ${args.join(' ')}) failed (exit ${result.code}):\n${result.stderr.slice(-2000)}`);
}

/** Hits, misses and rejections in NODE_DEBUG_NATIVE=COMPILE_CACHE output (Node 22). */
export function compileCacheCounts(debug: string): { hits: number; misses: number; rejected: number } {
  const count = (re: RegExp) => (debug.match(re) ?? []).length;
  return { hits: count(/^\[compile cache\] cache for .* was accepted/gm), misses: count(/^\[compile cache\] cache for .* was not initialized/gm), rejected: count(/^\[compile cache\] cache for .* was rejected/gm) };
}
