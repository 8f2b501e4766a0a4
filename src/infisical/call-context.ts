/**
 * The one workaround for `@infisical/sdk`, fenced: a deadline and a one-request budget for each SDK
 * call. It was verified against the exact SDK version pinned in package.json, and
 * test/sdk-contract.test.ts fails when an upgrade changes what it relies on.
 *
 * Why: the SDK has no timeout, signal or retry option. It calls the global `fetch` with its own 10 s
 * timeout, retries thrown errors and 429s up to four more times with sleeps we cannot cancel and
 * without reading retry-after (docs/infisical-api.md §6: ~65 s against a hanging server), and it
 * keeps the HTTP status only in its message text.
 *
 * How: `installSdkFetchFence(siteUrl)` puts one wrapper on `globalThis.fetch`, shared by every fence
 * and removed with the last one. `runWithDeadline` runs one SDK call inside a call context
 * (AsyncLocalStorage). The wrapper touches only requests made inside a call context to a URL under
 * that call's site URL: each gets the call's AbortSignal, its status and retry-after are recorded,
 * and the call may send one request. A transport failure or a 429 ends the call at once; any further
 * request (the SDK's retries) fails without touching the network, so the caller gets a typed outcome
 * right away and our own backoff stays in charge. Every other request goes straight to the fetch the
 * wrapper replaced.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { FetchError, SidecarError, isSidecarError } from '../errors.js';
import { systemClock, type Clock } from '../timers.js';

/** How a call ended without a value. */
export type CallFailure =
  /** No HTTP answer: deadline, cancellation, reset, refused connection. */
  | { readonly kind: 'transport'; readonly error: SidecarError }
  /** The server answered with an error status (or the call was ended after its one answer). */
  | {
      readonly kind: 'http';
      readonly status: number;
      /**
       * Infisical's own `message` from the response body, when the SDK passed it on: raw server text,
       * which `server-text.ts` scrubs and escapes before it is shown.
       */
      readonly serverMessage: string | undefined;
      /**
       * For a 404 only: whether the body was Infisical's JSON error envelope (docs/infisical-api.md
       * §1.4). Infisical's 404 means a missing object (or, at login on late-2024 servers, an unknown
       * client id); anything else means the site URL does not lead to Infisical's API.
       */
      readonly infisicalEnvelope?: boolean | undefined;
      /** From a 429's `retry-after`, in milliseconds. */
      readonly retryAfterMs: number | undefined;
    };

export type CallOutcome<T> =
  | { readonly ok: true; readonly value: T; readonly requests: number }
  | { readonly ok: false; readonly failure: CallFailure; readonly requests: number };

export interface CallOptions {
  /** The Infisical site URL (`INFISICAL_SITE_URL`); the call's requests under it are fenced. */
  readonly siteUrl: string;
  /** Deadline for the whole call, in milliseconds. */
  readonly timeoutMs: number;
  /** Cancels the call (shutdown, the `once` deadline). */
  readonly signal?: AbortSignal | undefined;
  /** The clock the deadline runs on (default the system's). */
  readonly clock?: Clock | undefined;
}

/**
 * `runWithDeadline` was called for a site URL that no fence covers: a wiring bug. Running the SDK
 * unfenced would bring back its ~65 s of hidden retries, so the call is refused instead.
 */
export class SdkFetchFenceMissingError extends SidecarError {
  override readonly name = 'SdkFetchFenceMissingError';
  constructor(siteUrl: string) {
    super('SIDECAR_UNEXPECTED', `no SDK fetch fence covers ${siteUrl}: call installSdkFetchFence(siteUrl) before the first Infisical call`);
  }
}

interface CallContext {
  /** Requests under this prefix belong to the call (see `sitePrefixOf`). */
  readonly sitePrefix: string;
  readonly controller: AbortController;
  requests: number;
  status: number | undefined;
  retryAfterMs: number | undefined;
  /** For a 404: whether its body is Infisical's error envelope, read from a copy of the response. */
  infisicalEnvelope: Promise<boolean> | undefined;
  /** The call's clock, for a retry-after given as an HTTP date. */
  readonly clock: Clock;
}

interface Fence {
  readonly sitePrefix: string;
}

/** The wrapper on `globalThis.fetch`, the fetch it replaced, and the fences that keep it there. */
interface FetchHook {
  readonly originalFetch: typeof globalThis.fetch;
  readonly fencedFetch: typeof globalThis.fetch;
  readonly fences: Set<Fence>;
}

const contexts = new AsyncLocalStorage<CallContext>();
let hook: FetchHook | undefined;

/** Ends the call once it has an answer worth reporting, so the SDK's own retries go nowhere. */
class CallSettled extends Error {
  override readonly name = 'CallSettled';
}

/**
 * Fences the SDK's requests to `siteUrl` (same origin, path under the site's path) and returns the
 * function that removes this fence again.
 *
 * Fences compose: the first one wraps `globalThis.fetch`, later ones (same or other site URLs) share
 * that wrapper, and removing the last one, in any order, puts the original fetch back. Removing a
 * fence twice is harmless. If other code wrapped `globalThis.fetch` after us, the last removal leaves
 * their wrapper in place (restoring would drop it), and ours, still in their chain, passes
 * everything through.
 */
export function installSdkFetchFence(siteUrl: string): () => void {
  const fence: Fence = { sitePrefix: sitePrefixOf(siteUrl) };
  hook ??= wrapGlobalFetch();
  const owner = hook;
  owner.fences.add(fence);
  return () => {
    if (!owner.fences.delete(fence) || owner.fences.size > 0) return;
    if (hook === owner) hook = undefined;
    if (globalThis.fetch === owner.fencedFetch) globalThis.fetch = owner.originalFetch;
  };
}

function wrapGlobalFetch(): FetchHook {
  const originalFetch = globalThis.fetch;
  const fences = new Set<Fence>();
  const fencedFetch: typeof globalThis.fetch = async (input, init) => {
    const context = contexts.getStore();
    // An empty set means this wrapper was retired while another wrapper sat on top of it.
    if (context === undefined || fences.size === 0 || !isUnder(input, context.sitePrefix)) return originalFetch(input, init);
    return sendOnce(originalFetch, context, input, init);
  };
  globalThis.fetch = fencedFetch;
  return { originalFetch, fencedFetch, fences };
}

/** The one request a call may send, under the call's signal. */
async function sendOnce(originalFetch: typeof globalThis.fetch, context: CallContext, input: string | URL | Request, init: RequestInit | undefined): Promise<Response> {
  const { controller } = context;
  const { signal } = controller;
  if (signal.aborted) throw signal.reason;
  if (context.requests > 0) {
    // The SDK is retrying (a 5xx today is not retried; a later version might): the budget is one.
    controller.abort(new CallSettled('one request per call'));
    throw signal.reason;
  }
  context.requests++;
  try {
    // A redirect would carry the login body (the client secret) to wherever the Location points,
    // outside the fence and past the https rule: Infisical never redirects its API, so it is an error.
    const response = await originalFetch(input, { ...init, redirect: 'error', signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
    context.status = response.status;
    if (response.status === 429) {
      context.retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), context.clock.now());
      // The SDK would sleep 1–8 s and ask again, ignoring retry-after; end the call here instead.
      controller.abort(new CallSettled('rate limited'));
    }
    if (response.status === 404) context.infisicalEnvelope = isInfisicalEnvelope(response.clone());
    return response;
  } catch (error) {
    if (!signal.aborted) controller.abort(transportError(error));
    throw signal.reason;
  }
}

/**
 * Runs one SDK call with a deadline, an optional parent signal, and at most one HTTP request to the
 * site. The outcome says what happened; it throws only `SdkFetchFenceMissingError`, when no
 * `installSdkFetchFence` covers `options.siteUrl`.
 */
export async function runWithDeadline<T>(call: () => Promise<T>, options: CallOptions): Promise<CallOutcome<T>> {
  const sitePrefix = sitePrefixOf(options.siteUrl);
  if (!isFenced(sitePrefix)) throw new SdkFetchFenceMissingError(options.siteUrl);
  const controller = new AbortController();
  const clock = options.clock ?? systemClock;
  const context: CallContext = { sitePrefix, controller, requests: 0, status: undefined, retryAfterMs: undefined, infisicalEnvelope: undefined, clock };
  const cancelTimer = clock.schedule(options.timeoutMs, () =>
    controller.abort(new FetchError('SIDECAR_FETCH_TIMEOUT', `no answer within ${options.timeoutMs} ms`, { retryable: true })),
  );
  const onParentAbort = () => controller.abort(new FetchError('SIDECAR_FETCH_TIMEOUT', 'cancelled before an answer arrived (deadline or shutdown)', { retryable: false }));
  if (options.signal?.aborted) onParentAbort();
  options.signal?.addEventListener('abort', onParentAbort, { once: true });

  const aborted = new Promise<never>((_, reject) => {
    if (controller.signal.aborted) reject(controller.signal.reason);
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  const sdkCall = contexts.run(context, call);
  // The SDK keeps sleeping through its retries after we stop waiting; it makes no further requests.
  sdkCall.catch(() => undefined);
  aborted.catch(() => undefined);

  try {
    const value = await Promise.race([sdkCall, aborted]);
    return { ok: true, value, requests: context.requests };
  } catch (error) {
    return { ok: false, failure: await failureOf(context, error), requests: context.requests };
  } finally {
    cancelTimer();
    options.signal?.removeEventListener('abort', onParentAbort);
    if (!controller.signal.aborted) controller.abort(new CallSettled('done'));
  }
}

/** Our own abort reasons (deadline, cancellation, transport) win; otherwise the server's answer. */
async function failureOf(context: CallContext, error: unknown): Promise<CallFailure> {
  const { signal } = context.controller;
  if (signal.aborted && isSidecarError(signal.reason)) return { kind: 'transport', error: signal.reason };
  // No answer and none of our reasons: the SDK failed before sending (e.g. a URL it cannot build).
  if (context.status === undefined) return { kind: 'transport', error: transportError(error) };
  const failure = { kind: 'http', status: context.status, serverMessage: serverMessageOf(error), retryAfterMs: context.retryAfterMs } as const;
  // Still under the call's deadline (its timer ends a body that never finishes).
  return context.infisicalEnvelope === undefined ? failure : { ...failure, infisicalEnvelope: await context.infisicalEnvelope };
}

/** Infisical's error bodies are far smaller; a larger one is not its envelope. */
const MAX_ENVELOPE_BYTES = 16 * 1024;

/**
 * Whether a response body is Infisical's error envelope `{ reqId, statusCode, message, error }`
 * (docs/infisical-api.md §1.4). Fastify's own 404 for an unknown route has no `reqId`; a web server
 * or proxy answers HTML. Never throws: an unreadable body is not the envelope.
 */
async function isInfisicalEnvelope(response: Response): Promise<boolean> {
  try {
    const text = await boundedText(response, MAX_ENVELOPE_BYTES);
    const body: unknown = text === undefined ? undefined : JSON.parse(text);
    if (typeof body !== 'object' || body === null) return false;
    const { reqId, statusCode, error } = body as Record<string, unknown>;
    return typeof reqId === 'string' && typeof statusCode === 'number' && typeof error === 'string';
  } catch {
    return false;
  }
}

/** The body as text, or undefined when it is longer than `maxBytes` (the rest is not read). */
async function boundedText(response: Response, maxBytes: number): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks).toString('utf8');
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
}

/** `retry-after` is seconds or an HTTP date; absent or unreadable → undefined (the caller backs off). */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  const value = header?.trim() ?? '';
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  // An HTTP date names its month; without that check V8 reads "-3" as 1 March 2001.
  if (!/[a-z]/i.test(value)) return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** `origin` plus the path with a trailing `/`: `https://h/infisical` covers `https://h/infisical/api/…`, not `https://h/infisical-old/…`. */
function sitePrefixOf(siteUrl: string): string {
  const url = new URL(siteUrl);
  return `${url.origin}${url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`}`;
}

function isUnder(input: string | URL | Request, sitePrefix: string): boolean {
  const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (!URL.canParse(href)) return false;
  const url = new URL(href);
  return `${url.origin}${url.pathname}`.startsWith(sitePrefix);
}

function isFenced(sitePrefix: string): boolean {
  return hook !== undefined && [...hook.fences].some((fence) => sitePrefix.startsWith(fence.sitePrefix));
}

function transportError(error: unknown): FetchError {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const detail = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
  return new FetchError('SIDECAR_FETCH_UNAVAILABLE', `request failed (${detail})`, { retryable: true });
}

/**
 * The SDK puts the server's `message` after `[StatusCode=NNN] ` (docs/infisical-api.md §6). It is
 * the server's text: Infisical's names folders and keys but never values, yet any server may echo
 * what it was sent or send control characters, so it is returned whole, for `server-text.ts`.
 */
function serverMessageOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const match = /\[StatusCode=\d+\]\s*([\s\S]*)$/.exec(error.message);
  const message = (match?.[1] ?? '').trim();
  return message === '' ? undefined : message;
}
