/**
 * A deadline and a one-request budget for each `@infisical/sdk` call.
 *
 * The SDK calls the global `fetch` with its own 10 s timeout and retries thrown errors and 429s up
 * to five times with sleeps we cannot cancel (docs/infisical-api.md §6: ~65 s against a hanging
 * server), and it drops the HTTP status into its message text. We cannot pass it a signal, so
 * `installFetchHook` wraps `globalThis.fetch` once: inside `runWithDeadline` (tracked with
 * AsyncLocalStorage) every request gets our AbortSignal, the status and retry-after are recorded,
 * and the first failure or 429 aborts the whole call. The SDK's hidden retries then fail at once
 * without touching the network, and the caller gets a typed outcome right away. Outside a call
 * context the hook passes requests through untouched.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { FetchError, type SidecarError } from '../errors.js';

interface CallContext {
  readonly controller: AbortController;
  requests: number;
  status: number | undefined;
  retryAfterMs: number | undefined;
}

export type CallOutcome<T> =
  | { readonly ok: true; readonly value: T; readonly requests: number; readonly status: number | undefined }
  | {
      readonly ok: false;
      /** Set for transport failures (timeout, reset, refused); undefined when the server answered. */
      readonly error: SidecarError | undefined;
      readonly status: number | undefined;
      readonly serverMessage: string | undefined;
      readonly retryAfterMs: number | undefined;
      readonly requests: number;
    };

const contexts = new AsyncLocalStorage<CallContext>();
let hookInstalled = false;

/** Stops the SDK's own retry once the call has an answer worth reporting. */
class CallSettled extends Error {
  override readonly name = 'CallSettled';
}

function installFetchHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  const originalFetch = globalThis.fetch;
  globalThis.fetch = async function fetchWithCallContext(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const context = contexts.getStore();
    if (context === undefined) return originalFetch(input, init);
    const { signal } = context.controller;
    if (signal.aborted) throw signal.reason;
    context.requests++;
    try {
      const response = await originalFetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
      context.status = response.status;
      if (response.status === 429) {
        context.retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
        // The SDK would sleep 1–8 s and ask again, ignoring retry-after; end the call here instead.
        context.controller.abort(new CallSettled('rate limited'));
      }
      return response;
    } catch (error) {
      if (!signal.aborted) context.controller.abort(transportError(error));
      throw signal.reason;
    }
  };
}

/**
 * Runs one SDK call with a deadline, an optional parent signal (shutdown), and at most one HTTP
 * request. Never throws; the outcome says what happened.
 */
export async function runWithDeadline<T>(call: () => Promise<T>, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<CallOutcome<T>> {
  installFetchHook();
  const controller = new AbortController();
  const context: CallContext = { controller, requests: 0, status: undefined, retryAfterMs: undefined };
  const timer = setTimeout(
    () => controller.abort(new FetchError('SIDECAR_FETCH_TIMEOUT', `no answer within ${options.timeoutMs} ms`, { retryable: true })),
    options.timeoutMs,
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
    return { ok: true, value, requests: context.requests, status: context.status };
  } catch (error) {
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
    const transport = reason instanceof FetchError ? reason : undefined;
    return {
      ok: false,
      error: transport ?? (context.status === undefined ? transportError(reason) : undefined),
      status: transport ? undefined : context.status,
      serverMessage: transport ? undefined : serverMessageOf(error),
      retryAfterMs: context.retryAfterMs,
      requests: context.requests,
    };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onParentAbort);
    if (!controller.signal.aborted) controller.abort(new CallSettled('done'));
  }
}

/** `retry-after` is seconds or an HTTP date; absent or unreadable → undefined (the caller backs off). */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function transportError(error: unknown): FetchError {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const detail = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
  return new FetchError('SIDECAR_FETCH_UNAVAILABLE', `request failed (${detail})`, { retryable: true });
}

/**
 * The SDK puts the server's `message` after `[StatusCode=NNN] ` (docs §6). It is Infisical's own
 * text (e.g. "Invalid credentials"), which names folders and keys but never values.
 */
function serverMessageOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const match = /\[StatusCode=\d+\]\s*([\s\S]*)$/.exec(error.message);
  const message = (match?.[1] ?? '').trim();
  return message === '' ? undefined : message.slice(0, 300);
}
