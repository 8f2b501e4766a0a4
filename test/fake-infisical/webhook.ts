/**
 * Sends Infisical project webhooks the way the server does (webhook-fns.ts): the timestamp goes
 * inside the JSON body, and `x-infisical-signature: t=<ms>;<hex HMAC-SHA256(secretKey, raw body)>`.
 * The separator is `;` and there is no `v1=` prefix (that is the honey-token format, a different feature).
 */
import { createHmac } from 'node:crypto';
import { systemClock, timeoutSignal, type Clock } from '../../src/timers.js';

export interface WebhookEvent {
  environment: string;
  secretPath: string;
  projectId?: string;
  projectName?: string;
  environmentName?: string;
}

export interface SignedWebhook {
  /** The exact bytes to POST; the signature covers them. */
  body: string;
  /** The value of the `x-infisical-signature` header. */
  signature: string;
}

export interface WebhookDelivery {
  status: number;
  body: string;
}

export const WEBHOOK_SIGNATURE_HEADER = 'x-infisical-signature';
/** The server gives up after 15 s and never retries. */
const WEBHOOK_TIMEOUT_MS = 15_000;

/** Adds `timestamp` (ms) to the payload, serializes it once and signs those exact bytes. */
export function signWebhook(secretKey: string, payload: object, now: number = systemClock.now()): SignedWebhook {
  const body = JSON.stringify({ ...payload, timestamp: now });
  const hmac = createHmac('sha256', secretKey).update(body).digest('hex');
  return { body, signature: `t=${now};${hmac}` };
}

/** The newer server's `secrets.modified` payload (the older one lacks environmentName/changedBy*). */
export function secretsModifiedPayload(event: WebhookEvent & { projectId: string }): object {
  return {
    event: 'secrets.modified',
    project: {
      workspaceId: event.projectId,
      projectId: event.projectId,
      projectName: event.projectName ?? event.projectId,
      environment: event.environment,
      environmentName: event.environmentName ?? event.environment,
      secretPath: event.secretPath,
      changedBy: 'fake-infisical',
      changedByActorType: 'identity',
    },
  };
}

/** The last delivery's timestamp, per clock (a manual clock's time has nothing to do with another's). */
const lastDeliveryAt = new WeakMap<Clock, number>();
/** Each delivery is its own event with its own timestamp, as Infisical sends them: two in one millisecond would be one delivery twice (a replay). */
function nextDeliveryTime(clock: Clock): number {
  const at = Math.max(clock.now(), (lastDeliveryAt.get(clock) ?? 0) + 1);
  lastDeliveryAt.set(clock, at);
  return at;
}

/**
 * POSTs a `secrets.modified` event to `url`. With an empty or missing secret key the hook is unsigned,
 * as for a webhook configured without one. Resolves with the receiver's answer; rejects on network errors.
 */
export async function sendWebhook(
  url: string,
  secretKey: string | undefined,
  event: WebhookEvent & { projectId: string },
  clock: Clock = systemClock,
): Promise<WebhookDelivery> {
  const payload = secretsModifiedPayload(event);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  let body: string;
  if (secretKey !== undefined && secretKey !== '') {
    const signed = signWebhook(secretKey, payload, nextDeliveryTime(clock));
    body = signed.body;
    headers[WEBHOOK_SIGNATURE_HEADER] = signed.signature;
  } else {
    body = JSON.stringify({ ...payload, timestamp: clock.now() });
  }
  const response = await fetch(url, { method: 'POST', headers, body, signal: timeoutSignal(clock, WEBHOOK_TIMEOUT_MS) });
  return { status: response.status, body: await response.text() };
}
