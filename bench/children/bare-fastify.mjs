/**
 * The reference for /healthz under load: Fastify (the project's own version) answering a constant,
 * `{"status":"ok"}` by default, or BENCH_BODY (the sidecar's own /healthz body, to separate the cost
 * of a bigger answer, paid mostly by the load generator on the same two cores, from the sidecar's).
 */
import Fastify from 'fastify';

const body = process.env.BENCH_BODY ? JSON.parse(process.env.BENCH_BODY) : { status: 'ok' };
const app = Fastify({ logger: false });
app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send(body));
await app.listen({ host: '127.0.0.1', port: 0 });
process.send?.({ type: 'ready', port: app.server.address().port });
process.on('message', (message) => {
  if (message?.op === 'stop') void app.close().then(() => process.exit(0));
});
process.once('SIGTERM', () => process.exit(0));
