/**
 * `POST /webhook` replay protection: a signed delivery is accepted once; the same
 * signature again inside the tolerance window gets 409, and what is remembered expires with the window.
 * Refusals are counted, logged at most once a minute, and decided from the header alone when it can.
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { SeenDeliveries, registerWebhook } from '../src/health/webhook.js';
import { secretsModifiedPayload, signWebhook } from './fake-infisical/webhook.js';
import { ManualClock } from './helpers/clock.js';
import { scenario } from './helpers/scenario.js';
import { glitchtipEnv, testLogger } from './helpers/sidecar.js';

const SECRET = 'webhook-signing-secret';
const TOLERANCE_MS = 5 * 60_000;
const PROJECT_ID = 'project-1';
const EVENT = secretsModifiedPayload({ projectId: PROJECT_ID, environment: 'prod', secretPath: '/app' });

/** The webhook route on a bare Fastify, with a clock the test moves. */
function webhookRoute() {
  const clock = { now: Date.parse('2026-12-01T12:00:00Z') };
  const triggers: string[] = [];
  const { log, logs } = testLogger();
  const app = Fastify();
  registerWebhook(app, {
    secret: SECRET,
    toleranceMs: TOLERANCE_MS,
    projectId: PROJECT_ID,
    environment: 'prod',
    secretPaths: ['/app'],
    onTrigger: (reason) => triggers.push(reason),
    log,
    now: () => clock.now,
  });
  const post = (signed: { body: string; signature: string }) =>
    app.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', 'x-infisical-signature': signed.signature }, payload: signed.body });
  return { clock, triggers, logs, post };
}

describe('webhook replay protection', () => {
  it('accepts a delivery once and refuses the same signed delivery again with 409 while it is inside the window', async () => {
    const { clock, triggers, logs, post } = webhookRoute();
    const delivery = signWebhook(SECRET, EVENT, clock.now);

    expect((await post(delivery)).statusCode).toBe(202);
    clock.now += 60_000;
    const replay = await post(delivery);
    expect(replay.statusCode).toBe(409);
    expect(replay.json()).toEqual({ error: 'replayed delivery', reason: 'this signature was already accepted' });
    clock.now += TOLERANCE_MS - 60_000 - 1;
    expect((await post(delivery)).statusCode, 'still refused at the last millisecond of the window').toBe(409);
    expect(triggers).toHaveLength(1);
    expect(logs.lines().filter((line) => line.msg === 'webhook refused').map((line) => line.reason)).toEqual(['replayed delivery', 'replayed delivery']);

    // Past the window the timestamp check refuses it (401), as before.
    clock.now += 2;
    expect((await post(delivery)).statusCode).toBe(401);
    // A new delivery of the same event (a new timestamp, so a new signature) is accepted.
    expect((await post(signWebhook(SECRET, EVENT, clock.now))).statusCode).toBe(202);
    expect(triggers).toHaveLength(2);
  });

  it('refuses a replayed delivery that was acknowledged and ignored (another environment) too', async () => {
    const { clock, triggers, post } = webhookRoute();
    const other = signWebhook(SECRET, secretsModifiedPayload({ projectId: PROJECT_ID, environment: 'dev', secretPath: '/app' }), clock.now);
    expect((await post(other)).json()).toEqual({ triggered: false, reason: 'other environment' });
    expect((await post(other)).statusCode).toBe(409);
    expect(triggers).toHaveLength(0);
  });

  it('remembers a signature only until its timestamp leaves the window, so memory stays bounded', () => {
    const start = Date.parse('2026-12-01T12:00:00Z');
    const seen = new SeenDeliveries(TOLERANCE_MS);
    for (let i = 0; i < 1_000; i++) expect(seen.remember(`signature-${i}`, start + i, start)).toBe(true);
    expect(seen.remember('signature-7', start + 7, start + 1_000)).toBe(false);
    expect(seen.size).toBe(1_000);
    // A timestamp ahead of our clock (allowed up to the tolerance) is kept until it, too, leaves the window.
    expect(seen.remember('from-the-future', start + 2 * TOLERANCE_MS, start + TOLERANCE_MS)).toBe(true);

    expect(seen.remember('later', start + TOLERANCE_MS + 1_000, start + TOLERANCE_MS + 1_000)).toBe(true);
    expect(seen.size, 'the first thousand expired').toBe(2);
    expect(seen.remember('later-still', start + 3 * TOLERANCE_MS + 1, start + 3 * TOLERANCE_MS + 1)).toBe(true);
    expect(seen.size).toBe(1);
  });
});

describe('refused webhook requests cost little and say little', () => {
  it('200 unsigned requests to the running sidecar: each 401 before its body is read, counted by reason, one warning a minute', async ({ onTestFinished }) => {
    const s = scenario(onTestFinished);
    const clock = new ManualClock();
    const fake = await s.fake({ clock });
    const { app, logs } = s.app(glitchtipEnv(fake, s.tempDir(), { SIDECAR_WEBHOOK_SECRET: SECRET, SIDECAR_WATCH: 'false' }), {}, { clock });
    await s.start(app);
    const post = (headers: Record<string, string>, payload: string) => app.server.inject({ method: 'POST', url: '/webhook', headers: { 'content-type': 'application/json', ...headers }, payload });

    for (let i = 0; i < 200; i++) expect((await post({}, '{}')).statusCode).toBe(401);
    // A body far past the 64 KiB limit is not even read: the header alone refuses it (401, not 413).
    expect((await post({}, 'x'.repeat(1024 * 1024))).statusCode).toBe(401);
    expect((await post({ 'x-infisical-signature': 'nonsense' }, '{}')).json()).toEqual({ error: 'invalid signature', reason: 'malformed x-infisical-signature' });
    const stale = signWebhook(SECRET, EVENT, clock.now() - TOLERANCE_MS - 1);
    expect((await post({ 'x-infisical-signature': stale.signature }, 'x'.repeat(1024 * 1024))).statusCode).toBe(401);
    const forged = signWebhook('not-the-secret', EVENT, clock.now());
    expect((await post({ 'x-infisical-signature': forged.signature }, forged.body)).statusCode).toBe(401);

    const warnings = () => logs.lines().filter((line) => line.msg === 'webhook refused');
    expect(warnings()).toHaveLength(1);
    await clock.advance(60_000);
    expect((await post({}, '{}')).statusCode).toBe(401);
    expect(warnings().map((line) => line.refusedSinceLastWarning)).toEqual([0, 203]);

    const metrics = (await app.metrics.load()).registry;
    const refused = (await metrics.getSingleMetric('infisical_sidecar_webhook_refused_total')!.get()).values.map((v) => [v.labels.reason, v.value]);
    expect(Object.fromEntries(refused)).toMatchObject({ missing_signature: 202, malformed_signature: 1, stale_timestamp: 1, bad_signature: 1 });
  });
});
