/**
 * The sidecar's own `run` wiring (createApp from dist/, its real client, writer, loop, health server
 * and logger), started with a refresh interval shorter than the 1 s the config allows, so the bench
 * can run 1,000 refreshes in seconds. Nothing else differs from `node dist/main.js run`: the
 * environment is the same, logs go to stdout (the bench discards them).
 *
 * Bench hooks over the IPC channel, mirroring bench/floor.mjs: `ready` (with the health port),
 * `progress` every 100 passes, `pass` after each pass with its duration (only with BENCH_REPORT_PASSES=1), `mem` (after a forced GC) at each pass count in BENCH_CHECKPOINTS,
 * `done`; `{op:'trigger'}` asks for an immediate refresh (app.trigger), `{op:'stop'}` stops cleanly.
 * Passes are counted by wrapping `app.health.record`, which the app calls after every pass.
 */
const dist = process.env.BENCH_DIST;
if (!dist) throw new Error('BENCH_DIST is not set');
const [{ createApp }, { loadConfig }, { createLogger }] = await Promise.all([
  import(`${dist}/app.js`),
  import(`${dist}/config/load.js`),
  import(`${dist}/log.js`),
]);

const base = loadConfig(process.env);
const interval = Number(process.env.BENCH_INTERVAL_MS ?? base.refreshIntervalMs);
const config = Object.freeze({ ...base, refreshIntervalMs: interval, refreshJitter: 0, backoffMaxMs: Math.min(base.backoffMaxMs, interval) });
const log = createLogger(config.logLevel);
const app = createApp(config, log);

const checkpoints = new Set((process.env.BENCH_CHECKPOINTS ?? '').split(',').filter(Boolean).map(Number));
const target = Math.max(0, ...checkpoints);
const reportPasses = process.env.BENCH_REPORT_PASSES === '1';
let passes = 0;
const record = app.health.record.bind(app.health);
app.health.record = (outcome, nextAttemptAt) => {
  record(outcome, nextAttemptAt);
  passes++;
  if (reportPasses) process.send?.({ type: 'pass', n: passes, ok: outcome.ok, changed: outcome.changed, ms: outcome.finishedAt - outcome.startedAt, at: performance.timeOrigin + performance.now() });
  if (checkpoints.has(passes)) {
    globalThis.gc?.();
    process.send?.({ type: 'mem', n: passes, ...process.memoryUsage() });
    if (passes === target) process.send?.({ type: 'done', n: passes });
  } else if (passes % 100 === 0) {
    process.send?.({ type: 'progress', n: passes });
  }
};

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await app.stop();
  process.exit(0);
}
process.once('SIGTERM', stop);
process.on('message', (message) => {
  if (message?.op === 'trigger') app.trigger('bench');
  if (message?.op === 'stop') void stop();
});

await app.start();
process.send?.({ type: 'ready', port: app.server.server.address().port });
