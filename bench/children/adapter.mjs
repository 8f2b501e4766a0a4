/**
 * Cost of the Infisical adapter alone, in a fresh process: time to import the module, time of the
 * first complete fetch (login + every folder; this includes Node's lazy load of fetch/undici, which
 * both sides pay), and RSS after each step. `--impl sidecar` imports dist/infisical/client.js (which
 * pulls in @infisical/sdk and zod) and calls fetchFolders; `--impl floor` imports bench/floor.mjs
 * and does the same calls with plain fetch. Prints one JSON line and exits.
 */
const impl = process.argv[process.argv.indexOf('--impl') + 1];
const env = process.env;
const paths = (env.INFISICAL_SECRET_PATHS ?? '/').split(',');
const rss0 = process.memoryUsage().rss;
const t0 = performance.now();
let fetchAll;
if (impl === 'sidecar') {
  const [{ createInfisicalClient }, { installSdkFetchFence }] = await Promise.all([
    import(`${env.BENCH_DIST}/infisical/client.js`),
    import(`${env.BENCH_DIST}/infisical/call-context.js`),
  ]);
  var t1 = performance.now();
  var rss1 = process.memoryUsage().rss;
  installSdkFetchFence(env.INFISICAL_SITE_URL);
  const client = createInfisicalClient({
    siteUrl: env.INFISICAL_SITE_URL,
    projectId: env.INFISICAL_PROJECT_ID,
    environment: env.INFISICAL_ENVIRONMENT,
    includeImports: true,
    expandSecretReferences: true,
    requestTimeoutMs: 10_000,
    credentials: () => ({ clientId: env.INFISICAL_UNIVERSAL_AUTH_CLIENT_ID, clientSecret: env.INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET }),
  });
  fetchAll = async () => {
    const results = await client.fetchFolders(paths);
    const failed = results.find((r) => !r.ok);
    if (failed) throw new Error(`${failed.path}: ${failed.error?.message}`);
    return results.reduce((n, r) => n + r.secrets.length, 0);
  };
} else if (impl === 'floor') {
  const floor = await import('../floor.mjs');
  var t1 = performance.now();
  var rss1 = process.memoryUsage().rss;
  const settings = floor.readEnv(env);
  fetchAll = async () => {
    const token = await floor.login(settings);
    const folders = await Promise.all(paths.map((p) => floor.listFolder(settings, token, p)));
    return folders.reduce((n, pairs) => n + pairs.length, 0);
  };
} else {
  throw new Error(`--impl must be sidecar or floor, got ${impl}`);
}
const secrets = await fetchAll();
const t2 = performance.now();
const rss2 = process.memoryUsage().rss;
process.stdout.write(`${JSON.stringify({ impl, secrets, startMs: t0, importMs: t1 - t0, firstSyncMs: t2 - t1, rssStart: rss0, rssAfterImport: rss1, rssAfterSync: rss2 })}\n`);
process.exit(0);
