/**
 * `POST /webhook`: Infisical project webhooks trigger an immediate, coalesced refresh.
 *
 * Infisical signs `JSON.stringify(payload)` with HMAC-SHA256 and sends
 * `x-infisical-signature: t=<ms>;<hex>`, where `t` equals `payload.timestamp`
 * (docs/infisical-api.md §4). We verify over the raw body bytes with a constant-time compare,
 * require `t` to be within the tolerance of our clock and equal to the body's timestamp (so a
 * captured request cannot be replayed later), and only then parse the body. The payload carries no
 * secrets; the refresh fetches them. Events for another project, environment or folder are
 * acknowledged and ignored. Bursts cannot make the sidecar hammer Infisical: the refresh loop
 * coalesces triggers and keeps a minimum gap (and any 429 retry-after).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';

export interface WebhookOptions {
  readonly secret: string;
  readonly toleranceMs: number;
  readonly projectId: string;
  readonly environment: string;
  readonly secretPaths: readonly string[];
  readonly onTrigger: (reason: string) => void;
  readonly log: Logger;
  readonly now?: () => number;
}

export type WebhookVerdict = { ok: true } | { ok: false; reason: string };

export function verifySignature(rawBody: Buffer, header: string | undefined, secret: string, toleranceMs: number, now: number): WebhookVerdict & { timestamp?: number } {
  if (!header) return { ok: false, reason: 'missing x-infisical-signature' };
  const match = /^t=(\d{10,16});([0-9a-f]{64})$/i.exec(header.trim());
  if (!match) return { ok: false, reason: 'malformed x-infisical-signature' };
  const timestamp = Number(match[1]);
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  const given = Buffer.from(match[2]!, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature mismatch' };
  if (Math.abs(now - timestamp) > toleranceMs) return { ok: false, reason: 'timestamp outside the tolerance window' };
  return { ok: true, timestamp };
}

/** Whether a change at `changed` can affect a configured folder (same folder, a parent or a child). */
function affects(changed: string, configured: readonly string[]): boolean {
  const norm = (p: string) => (p.replace(/\/+$/, '') || '/');
  const c = norm(changed);
  return configured.some((path) => {
    const p = norm(path);
    return c === p || p.startsWith(c === '/' ? '/' : `${c}/`) || c.startsWith(p === '/' ? '/' : `${p}/`);
  });
}

export function registerWebhook(app: FastifyInstance, options: WebhookOptions): void {
  const now = options.now ?? Date.now;
  app.register(async (scope) => {
    // Keep the raw bytes: the HMAC covers them exactly as sent.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_request, body, done) => done(null, body));

    scope.post('/webhook', async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const verdict = verifySignature(raw, request.headers['x-infisical-signature'] as string | undefined, options.secret, options.toleranceMs, now());
      if (!verdict.ok) {
        options.log.warn({ reason: verdict.reason, ip: request.ip }, 'webhook refused');
        return reply.code(401).send({ error: 'invalid signature', reason: verdict.reason });
      }
      let payload: { event?: unknown; timestamp?: unknown; project?: { projectId?: unknown; workspaceId?: unknown; environment?: unknown; secretPath?: unknown } };
      try {
        payload = JSON.parse(raw.toString('utf8')) as typeof payload;
      } catch {
        return reply.code(400).send({ error: 'body is not JSON' });
      }
      if (payload.timestamp !== verdict.timestamp) return reply.code(401).send({ error: 'invalid signature', reason: 'header and body timestamps differ' });
      const project = payload.project ?? {};
      const projectId = project.projectId ?? project.workspaceId;
      if (payload.event !== 'secrets.modified') return reply.code(202).send({ triggered: false, reason: `event ${String(payload.event)} ignored` });
      if (projectId !== options.projectId) return reply.code(202).send({ triggered: false, reason: 'other project' });
      if (project.environment !== options.environment) return reply.code(202).send({ triggered: false, reason: 'other environment' });
      if (typeof project.secretPath === 'string' && !affects(project.secretPath, options.secretPaths)) {
        return reply.code(202).send({ triggered: false, reason: 'other folder' });
      }
      options.log.info({ secretPath: project.secretPath }, 'webhook accepted; refreshing now');
      options.onTrigger(`webhook ${typeof project.secretPath === 'string' ? project.secretPath : ''}`.trim());
      return reply.code(202).send({ triggered: true });
    });
  });
}
