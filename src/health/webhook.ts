/**
 * `POST /webhook`: Infisical project webhooks trigger an immediate, coalesced refresh.
 *
 * Infisical signs `JSON.stringify(payload)` with HMAC-SHA256 and sends
 * `x-infisical-signature: t=<ms>;<hex>`, where `t` equals `payload.timestamp`
 * (docs/infisical-api.md §4). We verify over the raw body bytes with a constant-time compare,
 * require `t` to be within the tolerance of our clock and equal to the body's timestamp (so a
 * captured request cannot be replayed later), and only then parse the body. A signature already
 * accepted is refused with 409 for as long as its timestamp is inside the tolerance (so a captured
 * request cannot be replayed sooner either); past that the timestamp check refuses it. The payload carries no
 * secrets; the refresh fetches them. Events for another project, environment or folder are
 * acknowledged and ignored. Bursts cannot make the sidecar hammer Infisical: the refresh loop
 * coalesces triggers and keeps a minimum gap (and any 429 retry-after).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';
import { printable } from '../text.js';

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

/** A verified delivery carries its signed timestamp and its signature (hex), the key for replay detection. */
export type WebhookVerdict = { ok: true; timestamp: number; signature: string } | { ok: false; reason: string };

export function verifySignature(rawBody: Buffer, header: string | undefined, secret: string, toleranceMs: number, now: number): WebhookVerdict {
  if (!header) return { ok: false, reason: 'missing x-infisical-signature' };
  const match = /^t=(\d{10,16});([0-9a-f]{64})$/i.exec(header.trim());
  if (!match) return { ok: false, reason: 'malformed x-infisical-signature' };
  const timestamp = Number(match[1]);
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  const given = Buffer.from(match[2]!, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature mismatch' };
  if (Math.abs(now - timestamp) > toleranceMs) return { ok: false, reason: 'timestamp outside the tolerance window' };
  return { ok: true, timestamp, signature: expected.toString('hex') };
}

/**
 * The signatures of deliveries accepted within the tolerance window, each kept until its signed
 * timestamp leaves the window (which may be up to twice the tolerance from now, for a timestamp
 * ahead of our clock). Only a holder of the signing secret can add one, and each expires with the
 * window, so memory is bounded by the real webhook rate times the window.
 */
export class SeenDeliveries {
  /** Signature → the time after which its timestamp is outside the window (ms since the epoch). */
  private readonly expiries = new Map<string, number>();

  constructor(private readonly toleranceMs: number) {}

  /** Records a verified delivery; false when the same signature was already accepted and has not expired. */
  remember(signature: string, signedAt: number, now: number): boolean {
    for (const [seen, expiry] of this.expiries) if (expiry < now) this.expiries.delete(seen);
    if (this.expiries.has(signature)) return false;
    this.expiries.set(signature, signedAt + this.toleranceMs);
    return true;
  }

  get size(): number {
    return this.expiries.size;
  }
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
  const seen = new SeenDeliveries(options.toleranceMs);
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
      if (!seen.remember(verdict.signature, verdict.timestamp, now())) {
        options.log.warn({ reason: 'replayed delivery', ip: request.ip }, 'webhook refused');
        return reply.code(409).send({ error: 'replayed delivery', reason: 'this signature was already accepted' });
      }
      const project = payload.project ?? {};
      const projectId = project.projectId ?? project.workspaceId;
      if (payload.event !== 'secrets.modified') return reply.code(202).send({ triggered: false, reason: `event ${String(payload.event)} ignored` });
      if (projectId !== options.projectId) return reply.code(202).send({ triggered: false, reason: 'other project' });
      if (project.environment !== options.environment) return reply.code(202).send({ triggered: false, reason: 'other environment' });
      if (typeof project.secretPath === 'string' && !affects(project.secretPath, options.secretPaths)) {
        return reply.code(202).send({ triggered: false, reason: 'other folder' });
      }
      options.log.info({ secretPath: typeof project.secretPath === 'string' ? printable(project.secretPath) : project.secretPath }, 'webhook accepted; refreshing now');
      options.onTrigger(`webhook ${typeof project.secretPath === 'string' ? project.secretPath : ''}`.trim());
      return reply.code(202).send({ triggered: true });
    });
  });
}
