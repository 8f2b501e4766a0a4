/**
 * The SDK fetch fence (src/infisical/call-context.ts) against a real HTTP server on 127.0.0.1; fetch
 * is never mocked. The calls here are plain fetches that retry the way @infisical/sdk does (on a
 * thrown error or a 429, five attempts) without its sleeps, and also on a 5xx, so the one-request
 * budget is checked at once and holds even for retries the SDK does not make today.
 * test/sdk-contract.test.ts pins what the real SDK does.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { SdkFetchFenceMissingError, installSdkFetchFence, parseRetryAfter, runWithDeadline, type CallOutcome } from '../src/infisical/call-context.js';
import { ManualClock } from './helpers/clock.js';

interface LocalServer {
  /** http://127.0.0.1:PORT, no trailing slash. */
  readonly url: string;
  /** `METHOD /path` of every request that reached the server, in order. */
  readonly requests: string[];
  /** Resolves when the `count`th request has reached the server (at once if it already has). */
  whenRequests(count: number): Promise<void>;
}

/** A real server for one test; `answer` decides each response (or none: hang, reset). */
async function startServer(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalServer> {
  const requests: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    for (const waiter of waiters.filter((w) => w.count <= requests.length)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const whenRequests = (count: number) => (requests.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve })));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, whenRequests };
}

function reply(status: number, headers: Record<string, string> = {}): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ message: `answer ${status}` }));
}

/** Retries as the SDK's fetchWithRetry does (thrown errors and 429, five attempts), plus 5xx, minus the sleeps. */
async function retryingGet(url: string): Promise<number> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.status !== 429 && response.status < 500) return response.status;
      lastError = new Error(`status ${response.status}`);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/** Installs a fence for the test and removes it when the test ends. */
function fence(siteUrl: string): void {
  onTestFinished(installSdkFetchFence(siteUrl));
}

/** One fenced call. Its deadline runs on `clock`: a manual one (default) fires only when the test moves it. */
function call<T>(siteUrl: string, run: () => Promise<T>, options: { timeoutMs?: number; signal?: AbortSignal; clock?: ManualClock } = {}): Promise<CallOutcome<T>> {
  return runWithDeadline(run, { siteUrl, timeoutMs: options.timeoutMs ?? 2_000, signal: options.signal, clock: options.clock ?? new ManualClock() });
}

/** Whether `promise` has settled once what is ready to run has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new ManualClock().advance(0);
  return done;
}

/** The failure of a call that got an HTTP answer; anything else fails the test with the outcome. */
function httpFailure(outcome: CallOutcome<unknown>) {
  if (outcome.ok || outcome.failure.kind !== 'http') throw new Error(`expected an HTTP failure, got ${JSON.stringify(outcome)}`);
  return outcome.failure;
}

const originalFetch = globalThis.fetch;
afterAll(() => {
  // Every test removed its fences: no wrapper is left on the global fetch.
  expect(globalThis.fetch).toBe(originalFetch);
});

describe('inside a call context, under the site URL', () => {
  it('returns the value of a call that succeeds, after one request', async () => {
    const server = await startServer(reply(200));
    fence(server.url);
    expect(await call(server.url, () => retryingGet(`${server.url}/api/v3/secrets/raw`))).toEqual({ ok: true, value: 200, requests: 1 });
  });

  it('sends one request for a 500, however often the caller retries', async () => {
    const server = await startServer(reply(500));
    fence(server.url);
    const outcome = await call(server.url, () => retryingGet(`${server.url}/api/v3/secrets/raw`));
    expect(outcome).toEqual({ ok: false, requests: 1, failure: { kind: 'http', status: 500, serverMessage: undefined, retryAfterMs: undefined } });
    expect(server.requests).toEqual(['GET /api/v3/secrets/raw']);
  });

  it('sends one request for a reset, and reports it as a retryable transport error', async () => {
    const server = await startServer((req) => req.socket.destroy());
    fence(server.url);
    const outcome = await call(server.url, () => retryingGet(`${server.url}/api/v1/auth/universal-auth/login`));
    expect(outcome).toMatchObject({
      ok: false,
      requests: 1,
      failure: { kind: 'transport', error: { code: 'SIDECAR_FETCH_UNAVAILABLE', retryable: true, message: expect.stringMatching(/^request failed \(.+\)$/) } },
    });
    expect(server.requests).toHaveLength(1);
  });

  it("passes on the server's message from an error in the SDK's `[StatusCode=NNN] message` form", async () => {
    const server = await startServer(reply(403));
    fence(server.url);
    const outcome = await call(server.url, async () => {
      const response = await fetch(`${server.url}/api/v3/secrets/raw`);
      const { message } = (await response.json()) as { message: string };
      throw new Error(`[URL=${response.url}] [Method=GET] [StatusCode=${response.status}] ${message}`);
    });
    expect(outcome).toEqual({ ok: false, requests: 1, failure: { kind: 'http', status: 403, serverMessage: 'answer 403', retryAfterMs: undefined } });
  });

  it('ends the call at the first 429, with retry-after in seconds', async () => {
    const server = await startServer(reply(429, { 'retry-after': '7' }));
    fence(server.url);
    const outcome = await call(server.url, () => retryingGet(`${server.url}/api/v3/secrets/raw`));
    expect(outcome).toEqual({ ok: false, requests: 1, failure: { kind: 'http', status: 429, serverMessage: undefined, retryAfterMs: 7_000 } });
    expect(server.requests).toHaveLength(1);
  });

  it("ends the call at the first 429, with retry-after as an HTTP date read on the call's clock", async () => {
    const clock = new ManualClock(Date.parse('Wed, 21 Oct 2026 07:28:00 GMT'));
    const server = await startServer(reply(429, { 'retry-after': 'Wed, 21 Oct 2026 07:28:30 GMT' }));
    fence(server.url);
    const { status, retryAfterMs } = httpFailure(await call(server.url, () => retryingGet(`${server.url}/api/v3/secrets/raw`), { clock }));
    expect(status).toBe(429);
    expect(retryAfterMs).toBe(30_000);
    expect(server.requests).toHaveLength(1);
  });

  it('turns a hanging server into SIDECAR_FETCH_TIMEOUT exactly at the deadline, and aborts the request', async () => {
    const clock = new ManualClock();
    let requestAborted!: () => void;
    const aborted = new Promise<void>((resolve) => (requestAborted = resolve));
    const server = await startServer((req) => req.on('close', requestAborted));
    fence(server.url);
    const pending = call(server.url, () => retryingGet(`${server.url}/api/v3/secrets/raw`), { timeoutMs: 200, clock });
    await server.whenRequests(1);
    expect(clock.pending()).toEqual([200]);
    await clock.advance(199);
    expect(await settled(pending)).toBe(false);
    await clock.advance(1);
    expect(await pending).toMatchObject({ ok: false, requests: 1, failure: { kind: 'transport', error: { code: 'SIDECAR_FETCH_TIMEOUT', retryable: true, message: 'no answer within 200 ms' } } });
    await aborted; // the server saw the request end
    expect(clock.pending()).toEqual([]);
  });

  it('turns a cancelled parent signal into a non-retryable SIDECAR_FETCH_TIMEOUT', async () => {
    const server = await startServer(() => undefined);
    fence(server.url);
    const shutdown = new AbortController();
    const pending = call(server.url, () => retryingGet(`${server.url}/api/v3/secrets/raw`), { timeoutMs: 10_000, signal: shutdown.signal });
    await server.whenRequests(1);
    shutdown.abort();
    expect(await pending).toMatchObject({ ok: false, failure: { kind: 'transport', error: { code: 'SIDECAR_FETCH_TIMEOUT', retryable: false } } });
  });

  describe("a 404: whether Infisical's error envelope came with it", () => {
    /** The SDK reads the body and throws `[StatusCode=NNN] message` when it has a string `message`. */
    async function sdkLikeCall(url: string, onHeaders?: () => void): Promise<never> {
      const response = await fetch(url);
      onHeaders?.();
      const body = await response.text();
      const message = (() => {
        try {
          return (JSON.parse(body) as { message?: unknown }).message;
        } catch {
          return undefined;
        }
      })();
      throw new Error(typeof message === 'string' ? `[StatusCode=${response.status}] ${message}` : `Request failed with status ${response.status}`);
    }

    it.each([
      ['Infisical', 'application/json', JSON.stringify({ reqId: 'req-abcdefghijklmn', statusCode: 404, message: 'No identity with specified client ID was found', error: 'NotFound' }), true, 'No identity with specified client ID was found'],
      ["Fastify's unknown route", 'application/json', JSON.stringify({ message: 'Route POST:/wrong/api not found', error: 'Not Found', statusCode: 404 }), false, 'Route POST:/wrong/api not found'],
      ['a web server', 'text/html', '<html><body><h1>404 Not Found</h1></body></html>', false, undefined],
      ['a JSON body past the size an envelope has', 'application/json', JSON.stringify({ reqId: 'req-abcdefghijklmn', statusCode: 404, message: 'x'.repeat(20_000), error: 'NotFound' }), false, `${'x'.repeat(20_000)}`],
    ])('%s', async (_what, contentType, body, infisicalEnvelope, serverMessage) => {
      const server = await startServer((_req, res) => res.writeHead(404, { 'content-type': contentType }).end(body));
      fence(server.url);
      const failure = httpFailure(await call(server.url, () => sdkLikeCall(`${server.url}/api/v1/auth/universal-auth/login`)));
      expect(failure).toEqual({ kind: 'http', status: 404, serverMessage, retryAfterMs: undefined, infisicalEnvelope });
    });

    it('ends at the deadline when the body never finishes', async () => {
      const clock = new ManualClock();
      const server = await startServer((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).write('{"reqId":'));
      fence(server.url);
      let headersArrived!: () => void;
      const headers = new Promise<void>((resolve) => (headersArrived = resolve));
      const pending = call(server.url, () => sdkLikeCall(`${server.url}/api/v1/auth/universal-auth/login`, headersArrived), { timeoutMs: 300, clock });
      await headers; // the status line came; the body is what never finishes
      await clock.advance(299);
      expect(await settled(pending)).toBe(false);
      await clock.advance(1);
      expect(await pending).toMatchObject({ ok: false, failure: { kind: 'transport', error: { code: 'SIDECAR_FETCH_TIMEOUT' } } });
    });
  });

  it('gives concurrent calls their own budget and their own outcome', async () => {
    const server = await startServer((req, res) => reply(req.url === '/limited' ? 429 : 200, { 'retry-after': '1' })(req, res));
    fence(server.url);
    const [limited, fine] = await Promise.all([
      call(server.url, () => retryingGet(`${server.url}/limited`)),
      call(server.url, () => retryingGet(`${server.url}/fine`)),
    ]);
    expect(limited).toMatchObject({ ok: false, requests: 1, failure: { kind: 'http', status: 429, retryAfterMs: 1_000 } });
    expect(fine).toEqual({ ok: true, value: 200, requests: 1 });
  });
});

describe('pass-through', () => {
  it('leaves requests outside a call context untouched, even to the site', async () => {
    const server = await startServer(reply(429, { 'retry-after': '7' }));
    fence(server.url);
    expect(globalThis.fetch).not.toBe(originalFetch);
    await expect(retryingGet(`${server.url}/api/v3/secrets/raw`)).rejects.toThrow('status 429');
    expect(server.requests).toHaveLength(5);
  });

  it('leaves requests inside a call untouched when their URL is not under the site URL', async () => {
    const site = await startServer(reply(200));
    const elsewhere = await startServer(reply(500));
    const siteUrl = `${site.url}/infisical`;
    fence(siteUrl);
    const outcome = await call(siteUrl, async () => {
      await expect(retryingGet(`${elsewhere.url}/infisical/api`)).rejects.toThrow('status 500'); // other origin
      await retryingGet(`${site.url}/infisical-old/api`); // same origin, a path beside the site's
      await retryingGet(`${site.url}/other`);
      return retryingGet(`${siteUrl}/api/v3/secrets/raw`);
    });
    expect(outcome).toEqual({ ok: true, value: 200, requests: 1 });
    expect(elsewhere.requests).toHaveLength(5);
    expect(site.requests).toEqual(['GET /infisical-old/api', 'GET /other', 'GET /infisical/api/v3/secrets/raw']);
  });
});

describe('installing and removing fences', () => {
  it('refuses to run a call that no fence covers, before any request', async () => {
    const server = await startServer(reply(200));
    fence(`${server.url}/other-site`);
    for (const siteUrl of [server.url, `${server.url}/other`]) {
      const refused = call(siteUrl, () => retryingGet(`${siteUrl}/api/v3/secrets/raw`));
      await expect(refused).rejects.toThrow(SdkFetchFenceMissingError);
      await expect(refused).rejects.toMatchObject({ code: 'SIDECAR_UNEXPECTED', message: `no SDK fetch fence covers ${siteUrl}: call installSdkFetchFence(siteUrl) before the first Infisical call` });
    }
    expect(server.requests).toEqual([]);
  });

  it('composes several fences and restores the original fetch after the last removal, in any order', async () => {
    const first = await startServer(reply(200));
    const second = await startServer(reply(200));
    const removeFirst = installSdkFetchFence(first.url);
    const removeSecond = installSdkFetchFence(second.url);
    const removeFirstAgain = installSdkFetchFence(`${first.url}/`);
    const wrapped = globalThis.fetch;
    expect(wrapped).not.toBe(originalFetch);

    removeSecond();
    await expect(call(second.url, () => retryingGet(second.url))).rejects.toThrow(SdkFetchFenceMissingError);
    removeFirst();
    removeFirst(); // twice is harmless: the other fence for the first site still holds
    expect(globalThis.fetch).toBe(wrapped);
    expect(await call(first.url, () => retryingGet(first.url))).toEqual({ ok: true, value: 200, requests: 1 });

    removeFirstAgain();
    expect(globalThis.fetch).toBe(originalFetch);
    await expect(call(first.url, () => retryingGet(first.url))).rejects.toThrow(SdkFetchFenceMissingError);
  });

  it('leaves a wrapper someone put on top in place, and ours then passes everything through', async () => {
    const server = await startServer(reply(200));
    onTestFinished(() => {
      globalThis.fetch = originalFetch;
    });
    const removeOld = installSdkFetchFence(server.url);
    const ours = globalThis.fetch;
    const outer: typeof globalThis.fetch = (input, init) => ours(input, init);
    globalThis.fetch = outer;
    removeOld();
    expect(globalThis.fetch).toBe(outer);

    // A new fence wraps `outer`; the retired wrapper below it must not count or refuse a second time.
    const removeNew = installSdkFetchFence(server.url);
    expect(await call(server.url, () => retryingGet(server.url))).toEqual({ ok: true, value: 200, requests: 1 });
    removeNew();
    expect(globalThis.fetch).toBe(outer);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
  it.each([
    ['7', 7_000],
    ['0', 0],
    ['1.5', 1_500],
    ['Wed, 21 Oct 2026 07:28:30 GMT', 30_000],
    ['Wed, 21 Oct 2026 07:27:00 GMT', 0], // already past
    ['soon', undefined],
    ['-3', undefined],
    ['', undefined],
    [null, undefined],
  ])('%j → %j ms', (header, expected) => {
    expect(parseRetryAfter(header, now)).toBe(expected);
  });
});
