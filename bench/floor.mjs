#!/usr/bin/env node
/**
 * The floor: the least a process can do to play the sidecar's part, used as the reference that
 * every bench figure is divided by. Plain Node, no dependencies, no validation, no retries:
 *
 *   1. POST /api/v1/auth/universal-auth/login (plain fetch, JSON body)
 *   2. GET /api/v3/secrets/raw for every folder, concurrently, with the same query the SDK sends
 *   3. merge (imports, then the folder's own secrets; later folders win), apply `{{ KEY | url }}`
 *      templates from SIDECAR_DERIVE_*
 *   4. render the same four outputs (secrets.env, secrets.dotenv, secrets.json, keys/<KEY>) naively
 *   5. the same atomic write: a fresh version directory (each file O_EXCL, write, fsync), fsync the
 *      directories, `..data` swapped by rename, one stable symlink per top-level name, the previous
 *      version kept; skipped entirely when every byte is unchanged
 *   6. a bare node:http `/healthz` (503 until the first write, then 200), and `POST /webhook` that
 *      refreshes at once (no signature check), the reference for push latency
 *
 * It reads the sidecar's own environment variables (only the ones it needs), so the bench starts
 * both with the same environment. Run as a program it does the above once and then, when
 * BENCH_INTERVAL_MS is set, refreshes on that interval (the "floor loop"). Imported as a module it
 * exports the steps, for the in-process refresh and adapter measurements.
 *
 * Bench hooks (only when started with an IPC channel, i.e. by bench/run.ts): refreshes are
 * counted, and memory is reported (after a forced GC) at each refresh count in BENCH_CHECKPOINTS,
 * exactly as bench/children/sidecar-loop.mjs does for the sidecar.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The settings the floor needs, from the sidecar's variables (defaults as the sidecar's). */
export function readEnv(env = process.env) {
  const derive = [];
  for (const [name, template] of Object.entries(env)) {
    if (name.startsWith('SIDECAR_DERIVE_') && template) derive.push([name.slice('SIDECAR_DERIVE_'.length), template]);
  }
  return {
    siteUrl: (env.INFISICAL_SITE_URL ?? 'https://app.infisical.com').replace(/\/+$/, ''),
    clientId: env.INFISICAL_UNIVERSAL_AUTH_CLIENT_ID ?? '',
    clientSecret: env.INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET ?? '',
    projectId: env.INFISICAL_PROJECT_ID ?? '',
    environment: env.INFISICAL_ENVIRONMENT ?? '',
    paths: (env.INFISICAL_SECRET_PATHS ?? '/').split(',').map((p) => p.trim()).filter(Boolean),
    outputDir: env.SIDECAR_OUTPUT_DIR ?? '/secrets',
    host: env.SIDECAR_HEALTH_HOST ?? '0.0.0.0',
    port: Number(env.SIDECAR_HEALTH_PORT ?? 8080),
    derive,
  };
}

export async function login(settings) {
  const response = await fetch(`${settings.siteUrl}/api/v1/auth/universal-auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: settings.clientId, clientSecret: settings.clientSecret }),
  });
  if (!response.ok) throw new Error(`login: ${response.status}`);
  return (await response.json()).accessToken;
}

/** One folder, as the SDK asks for it; returns [key, value] pairs after import precedence. */
export async function listFolder(settings, token, secretPath) {
  const query = new URLSearchParams({
    workspaceId: settings.projectId,
    environment: settings.environment,
    expandSecretReferences: 'true',
    include_imports: 'true',
    recursive: 'false',
    secretPath,
    viewSecretValue: 'true',
  });
  const response = await fetch(`${settings.siteUrl}/api/v3/secrets/raw?${query}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) {
    await response.body?.cancel();
    const error = new Error(`list ${secretPath}: ${response.status}`);
    error.status = response.status;
    throw error;
  }
  const body = await response.json();
  const pairs = [];
  for (const imported of body.imports ?? []) for (const s of imported.secrets) pairs.push([s.secretKey, s.secretValue]);
  for (const s of body.secrets) pairs.push([s.secretKey, s.secretValue]);
  return pairs;
}

/** A session: logs in once, lists every folder concurrently, logs in again once on 401/403. */
export function createFetcher(settings) {
  let token;
  return async function fetchSnapshot() {
    token ??= await login(settings);
    let folders;
    try {
      folders = await Promise.all(settings.paths.map((p) => listFolder(settings, token, p)));
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) throw error;
      token = await login(settings);
      folders = await Promise.all(settings.paths.map((p) => listFolder(settings, token, p)));
    }
    const snapshot = new Map();
    for (const pairs of folders) for (const [key, value] of pairs) snapshot.set(key, value);
    return snapshot;
  };
}

/** `{{ KEY }}` and `{{ KEY | url }}` only. */
function applyTemplate(template, snapshot) {
  return template.replace(/\{\{\s*([^\s|}]+)\s*(?:\|\s*(\w+)\s*)?\}\}/g, (_, key, filter) => {
    const value = snapshot.get(key) ?? '';
    return filter === 'url' ? encodeURIComponent(value) : value;
  });
}

const quote = (value) => `'${value.replaceAll("'", `'\\''`)}'`;

/** The same four outputs, rendered the naive way. */
export function render(fetched, derive = []) {
  const snapshot = new Map(fetched);
  for (const [name, template] of derive) snapshot.set(name, applyTemplate(template, fetched));
  const keys = [...snapshot.keys()].sort();
  let env = '# floor\n';
  let dotenv = '# floor\n';
  const json = {};
  const files = [];
  for (const key of keys) {
    const value = snapshot.get(key);
    env += `${key}=${quote(value)}\n`;
    dotenv += `${key}=${quote(value)}\n`;
    json[key] = value;
  }
  files.push({ path: 'secrets.env', content: Buffer.from(env) });
  files.push({ path: 'secrets.dotenv', content: Buffer.from(dotenv) });
  files.push({ path: 'secrets.json', content: Buffer.from(`${JSON.stringify(json, null, 2)}\n`) });
  for (const key of keys) files.push({ path: `keys/${key}`, content: Buffer.from(snapshot.get(key)) });
  return files;
}

async function fsyncPath(target) {
  const handle = await open(target, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The atomic directory write, nothing more (no ownership, no repair, no crash clean-up). */
export function createWriter(outputDir, fileMode = 0o440) {
  const dir = path.resolve(outputDir);
  let current; // { version, files: Map<path, Buffer> }
  let revision = 0;
  return async function write(files) {
    if (current && files.length === current.files.size && files.every((f) => current.files.get(f.path)?.equals(f.content))) {
      return { changed: false, bytesWritten: 0, filesWritten: 0 };
    }
    revision++;
    const version = `..rev-${String(revision).padStart(6, '0')}-${randomBytes(6).toString('base64url')}`;
    const versionDir = path.join(dir, version);
    await mkdir(versionDir, { mode: 0o750 });
    const subdirs = new Set();
    let bytesWritten = 0;
    for (const file of files) {
      const parent = path.posix.dirname(file.path);
      if (parent !== '.' && !subdirs.has(parent)) {
        await mkdir(path.join(versionDir, parent), { recursive: true, mode: 0o750 });
        subdirs.add(parent);
      }
      const handle = await open(path.join(versionDir, file.path), 'wx', fileMode);
      try {
        await handle.writeFile(file.content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      bytesWritten += file.content.length;
    }
    for (const subdir of subdirs) await fsyncPath(path.join(versionDir, subdir));
    await fsyncPath(versionDir);
    const temp = path.join(dir, `..data.tmp-${randomBytes(6).toString('hex')}`);
    await symlink(version, temp);
    await rename(temp, path.join(dir, '..data'));
    for (const name of new Set(files.map((f) => f.path.split('/')[0]))) {
      const link = path.join(dir, name);
      const target = await readlink(link).catch(() => undefined);
      if (target !== `..data/${name}`) {
        const tmp = `${link}.tmp-${randomBytes(6).toString('hex')}`;
        await symlink(`..data/${name}`, tmp);
        await rename(tmp, link);
      }
    }
    await fsyncPath(dir);
    const previous = current?.version;
    current = { version, files: new Map(files.map((f) => [f.path, f.content])) };
    for (const entry of await readdir(dir)) {
      if (entry.startsWith('..rev-') && entry !== version && entry !== previous) await rm(path.join(dir, entry), { recursive: true, force: true });
    }
    return { changed: true, bytesWritten, filesWritten: files.length };
  };
}

/** One refresh: fetch, render, write. */
export function createFloor(settings) {
  const fetchSnapshot = createFetcher(settings);
  const write = createWriter(settings.outputDir);
  return async function refresh() {
    return write(render(await fetchSnapshot(), settings.derive));
  };
}

async function main() {
  const settings = readEnv();
  const refresh = createFloor(settings);
  let healthy = false;
  let queue = Promise.resolve();
  const server = http.createServer((request, response) => {
    if (request.method === 'POST' && request.url === '/webhook') {
      // Push: refresh now (no signature check, no coalescing: the floor does nothing else).
      request.resume();
      request.once('end', () => {
        response.writeHead(202).end();
        queue = queue.then(refresh).catch((error) => process.stderr.write(`floor: ${error.message}\n`));
      });
    } else if (request.url === '/healthz') {
      response.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' });
      response.end(healthy ? '{"status":"ok"}' : '{"status":"starting"}');
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(settings.port, settings.host, resolve));

  const interval = Number(process.env.BENCH_INTERVAL_MS ?? 0);
  const checkpoints = new Set((process.env.BENCH_CHECKPOINTS ?? '').split(',').filter(Boolean).map(Number));
  const target = Math.max(0, ...checkpoints);
  const report = typeof process.send === 'function' ? (message) => process.send(message) : undefined;
  let refreshes = 0;
  let stopped = false;
  let timer;
  const onRefreshed = () => {
    refreshes++;
    if (!report) return;
    if (checkpoints.has(refreshes)) {
      globalThis.gc?.();
      report({ type: 'mem', n: refreshes, ...process.memoryUsage() });
      if (refreshes === target) report({ type: 'done', n: refreshes });
    } else if (refreshes % 100 === 0) {
      report({ type: 'progress', n: refreshes });
    }
  };
  const loop = async () => {
    try {
      await refresh();
      healthy = true;
      onRefreshed();
    } catch (error) {
      process.stderr.write(`floor: ${error.message}\n`);
    }
    if (interval > 0 && !stopped) timer = setTimeout(loop, interval);
  };
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    server.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.on('message', (message) => {
    if (message?.op === 'stop') stop();
  });
  if (report) report({ type: 'ready', port: server.address().port });
  await loop();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
