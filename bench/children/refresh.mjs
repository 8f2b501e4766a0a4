/**
 * One refresh at a time, on request, in its own process, so its CPU time is its own (the fake
 * Infisical server runs in the bench process). `--impl sidecar` builds the sidecar's syncer from
 * dist/ exactly as app.ts does for `run` (the SDK fetch fence, createInfisicalClient, AtomicDirWriter
 * and createSyncer); `--impl floor` uses bench/floor.mjs. Both read the same
 * environment.
 *
 * IPC: sends `ready`; on `{op:'sync'}` runs one pass and answers `synced` with CPU time (user+system,
 * process.cpuUsage), wall time, bytes and files written; `{op:'stats'}` answers the process's
 * memory; `{op:'stop'}` exits.
 */
const impl = process.argv[process.argv.indexOf('--impl') + 1];
const dist = process.env.BENCH_DIST;

async function sidecarPass() {
  const [{ loadConfig }, { installSdkFetchFence }, { createInfisicalClient }, { AtomicDirWriter }, { createSyncer }] = await Promise.all([
    import(`${dist}/config/load.js`),
    import(`${dist}/infisical/call-context.js`),
    import(`${dist}/infisical/client.js`),
    import(`${dist}/output/atomic-dir.js`),
    import(`${dist}/sync/sync-once.js`),
  ]);
  const config = loadConfig(process.env);
  installSdkFetchFence(config.siteUrl);
  const client = createInfisicalClient({ ...config, credentials: () => ({ clientId: config.clientId, clientSecret: config.clientSecret }) });
  const writer = new AtomicDirWriter(config.outputDir);
  const syncer = createSyncer({ settings: config, client, writer });
  return async () => {
    const outcome = await syncer.syncOnce();
    if (!outcome.ok) throw new Error(`${outcome.error?.code}: ${outcome.error?.message}`);
    return { changed: outcome.changed, bytesWritten: outcome.bytesWritten, filesWritten: outcome.filesWritten, keyCount: outcome.keyCount, requests: client.stats.requests };
  };
}

async function floorPass() {
  const floor = await import('../floor.mjs');
  const settings = floor.readEnv(process.env);
  const fetchSnapshot = floor.createFetcher(settings);
  const write = floor.createWriter(settings.outputDir);
  return async () => {
    const files = floor.render(await fetchSnapshot(), settings.derive);
    const result = await write(files);
    return { ...result, keyCount: files.length - 3 };
  };
}

const pass = impl === 'sidecar' ? await sidecarPass() : impl === 'floor' ? await floorPass() : undefined;
if (!pass) throw new Error(`--impl must be sidecar or floor, got ${impl}`);

process.on('message', async (message) => {
  if (message?.op === 'sync') {
    const cpu = process.cpuUsage();
    const started = performance.now();
    try {
      const result = await pass();
      const wallMs = performance.now() - started;
      const used = process.cpuUsage(cpu);
      process.send({ type: 'synced', ok: true, wallMs, cpuMs: (used.user + used.system) / 1000, ...result });
    } catch (error) {
      process.send({ type: 'synced', ok: false, error: String(error?.message ?? error) });
    }
  } else if (message?.op === 'stats') {
    process.send({ type: 'stats', ...process.memoryUsage() });
  } else if (message?.op === 'stop') {
    process.exit(0);
  }
});
process.send({ type: 'ready' });
