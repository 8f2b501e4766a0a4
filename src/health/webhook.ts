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
 *
 * Refusals are cheap and quiet: a request without a well-formed signature header, or whose signed
 * time is outside the tolerance, is refused before its body is read (no HMAC), every refusal is
 * counted by reason (`infisical_sidecar_webhook_refused_total`), and at most one warning a minute is
 * logged, with the count since the last one: anyone on the network can send these.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';
import { printable, trimEndOf } from '../text.js';

export interface WebhookOptions {
  readonly secret: string;
  readonly toleranceMs: number;
  readonly projectId: string;
  readonly environment: string;
  readonly secretPaths: readonly string[];
  readonly onTrigger: (reason: string) => void;
  readonly log: Logger;
  readonly now?: () => number;
  /** Where refusals are counted (the metric's source); default a private count. */
  readonly refusals?: WebhookRefusals;
}

export const WEBHOOK_REFUSAL_REASONS = ['missing_signature', 'malformed_signature', 'stale_timestamp', 'bad_signature', 'timestamp_mismatch', 'replayed', 'not_json'] as const;
export type WebhookRefusalReason = (typeof WEBHOOK_REFUSAL_REASONS)[number];

/** Refused webhook requests by reason, for /metrics. */
export interface WebhookRefusals {
  record(reason: WebhookRefusalReason): void;
  counts(): Readonly<Record<WebhookRefusalReason, number>>;
}

export function webhookRefusals(): WebhookRefusals {
  const counts = Object.fromEntries(WEBHOOK_REFUSAL_REASONS.map((reason) => [reason, 0])) as Record<WebhookRefusalReason, number>;
  return { record: (reason) => void counts[reason]++, counts: () => counts };
}

/** At most one refusal warning per this long; the next one says how many were not logged. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;
const SIGNATURE_HEADER = /^t=(\d{10,16});([0-9a-f]{64})$/i;

/** A verified delivery carries its signed timestamp and its signature (hex), the key for replay detection. */
export type WebhookVerdict = { ok: true; timestamp: number; signature: string } | { ok: false; reason: string; code: WebhookRefusalReason };

/** What the header alone decides, before any body is read: missing, malformed, or signed too far from now. */
function screenHeader(header: string | undefined, toleranceMs: number, now: number): { ok: true; timestamp: number; hex: string } | Extract<WebhookVerdict, { ok: false }> {
  if (!header) return { ok: false, reason: 'missing x-infisical-signature', code: 'missing_signature' };
  const match = SIGNATURE_HEADER.exec(header.trim());
  if (!match) return { ok: false, reason: 'malformed x-infisical-signature', code: 'malformed_signature' };
  const timestamp = Number(match[1]);
  if (Math.abs(now - timestamp) > toleranceMs) return { ok: false, reason: 'timestamp outside the tolerance window', code: 'stale_timestamp' };
  return { ok: true, timestamp, hex: match[2]! };
}

export function verifySignature(rawBody: Buffer, header: string | undefined, secret: string, toleranceMs: number, now: number): WebhookVerdict {
  const screened = screenHeader(header, toleranceMs, now);
  if (!screened.ok) return screened;
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  const given = Buffer.from(screened.hex, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature mismatch', code: 'bad_signature' };
  return { ok: true, timestamp: screened.timestamp, signature: expected.toString('hex') };
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
  const norm = (p: string) => trimEndOf(p, '/') || '/';
  const c = norm(changed);
  return configured.some((path) => {
    const p = norm(path);
    return c === p || p.startsWith(c === '/' ? '/' : `${c}/`) || c.startsWith(p === '/' ? '/' : `${p}/`);
  });
}

export function registerWebhook(app: FastifyInstance, options: WebhookOptions): void {
  const now = options.now ?? Date.now;
  const seen = new SeenDeliveries(options.toleranceMs);
  const refusals = options.refusals ?? webhookRefusals();
  let lastWarnedAt = Number.NEGATIVE_INFINITY;
  let unlogged = 0;
  /** Answers `status` with { error, reason }; the warning names `logged` (default the reason). */
  const refuse = (request: FastifyRequest, reply: FastifyReply, status: number, code: WebhookRefusalReason, error: string, reason: string, logged = reason) => {
    refusals.record(code);
    if (now() - lastWarnedAt >= REFUSAL_LOG_INTERVAL_MS) {
      options.log.warn({ reason: logged, ip: request.ip, refusedSinceLastWarning: unlogged }, 'webhook refused');
      lastWarnedAt = now();
      unlogged = 0;
    } else {
      unlogged++;
    }
    return reply.code(status).send({ error, reason });
  };

  app.register(async (scope) => {
    // Keep the raw bytes: the HMAC covers them exactly as sent.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_request, body, done) => done(null, body));
    // The header alone refuses most junk before the body is read or hashed.
    scope.addHook('onRequest', async (request, reply) => {
      const screened = screenHeader(request.headers['x-infisical-signature'] as string | undefined, options.toleranceMs, now());
      if (!screened.ok) return refuse(request, reply, 401, screened.code, 'invalid signature', screened.reason);
    });

    scope.post('/webhook', async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const verdict = verifySignature(raw, request.headers['x-infisical-signature'] as string | undefined, options.secret, options.toleranceMs, now());
      if (!verdict.ok) return refuse(request, reply, 401, verdict.code, 'invalid signature', verdict.reason);
      let payload: { event?: unknown; timestamp?: unknown; project?: { projectId?: unknown; workspaceId?: unknown; environment?: unknown; secretPath?: unknown } };
      try {
        payload = JSON.parse(raw.toString('utf8')) as typeof payload;
      } catch {
        return refuse(request, reply, 400, 'not_json', 'body is not JSON', 'body is not JSON');
      }
      if (payload.timestamp !== verdict.timestamp) return refuse(request, reply, 401, 'timestamp_mismatch', 'invalid signature', 'header and body timestamps differ');
      if (!seen.remember(verdict.signature, verdict.timestamp, now())) {
        return refuse(request, reply, 409, 'replayed', 'replayed delivery', 'this signature was already accepted', 'replayed delivery');
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
