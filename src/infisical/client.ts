/**
 * The one module that knows `@infisical/sdk` and Infisical's wire format.
 *
 * Everything else sees `InfisicalClient.fetchFolders()`: log in when needed, fetch every folder
 * concurrently, re-login once on 401 *or* 403 (servers differ: docs/infisical-api.md §8), and turn
 * every failure into a typed `AuthError` / `FetchError` with the HTTP status, a retryable flag and,
 * for 429, the server's retry-after. Answers are classified once, by HTTP status, in `codeForStatus`;
 * re-login is read from that classification (`isTokenRejection`), never from an error's class.
 *
 * The SDK has no timeout, signal or retry options, and it retries network errors and 429s itself
 * for up to ~65 s, ignoring retry-after (§6). `call-context.ts` therefore runs each SDK call under a
 * deadline and lets it make exactly one HTTP request, so our own backoff stays in charge; its fence
 * must be installed for `siteUrl` (`installSdkFetchFence`) before the first call.
 *
 * The token is kept until Infisical refuses it: a changed credential file only changes what the
 * next login sends. After Infisical refuses the credentials, `login-backoff.ts` spaces further
 * logins so the identity is not locked out. Server text reaches error messages only through
 * `server-text.ts` (escaped, without the client secret or the token).
 */
import { InfisicalSDK } from '@infisical/sdk';
import * as z from 'zod';
import { AuthError, FetchError, isSidecarError, toSidecarError, type ErrorCode, type SidecarError } from '../errors.js';
import type { Credentials } from '../config/credentials.js';
import { formatDuration } from '../text.js';
import { systemClock, type Clock } from '../timers.js';
import { runWithDeadline, type CallFailure, type CallOutcome } from './call-context.js';
import { LOCKOUT, LoginBackoff } from './login-backoff.js';
import { shown } from './server-text.js';


export interface InfisicalClientOptions {
  readonly siteUrl: string;
  readonly projectId: string;
  readonly environment: string;
  readonly includeImports: boolean;
  readonly expandSecretReferences: boolean;
  readonly organizationSlug?: string | undefined;
  readonly requestTimeoutMs: number;
  /** Read at every login, so a rotated client secret file is picked up without a restart. */
  readonly credentials: () => Credentials;
  /** Clock for the spacing of refused logins; default the clock's. */
  readonly now?: () => number;
  /** Request deadlines and login spacing run on it; default the system's. */
  readonly clock?: Clock;
}

export interface FolderSecret {
  readonly key: string;
  readonly value: string;
}

export type FolderResult =
  | { readonly path: string; readonly ok: true; readonly secrets: readonly FolderSecret[] }
  | { readonly path: string; readonly ok: false; readonly error: SidecarError };

export interface ClientStats {
  /** HTTP requests sent to Infisical (logins and lists). */
  requests: number;
  logins: number;
  /** Logins forced by a 401/403 on a data call. */
  relogins: number;
  rateLimited: number;
}

export interface InfisicalClient {
  /** Fetches every folder concurrently; one result per folder, in the order given. */
  fetchFolders(paths: readonly string[], signal?: AbortSignal): Promise<FolderResult[]>;
  /**
   * A credential file changed. The token in use stays until Infisical refuses it; the next login
   * reads the new credentials, and if logins are backing off after a refusal, it may go out sooner
   * (never so soon that Infisical would lock the identity out).
   */
  credentialsChanged(): void;
  /** The client secret of the latest successful login, one Infisical accepted: the last-known-good cache's key (src/cache/). */
  loggedInClientSecret(): string | undefined;
  readonly stats: Readonly<ClientStats>;
}

/** Only the fields we read; the server sends many more (docs/infisical-api.md §2.1). */
const SecretSchema = z.object({ secretKey: z.string(), secretValue: z.string(), secretValueHidden: z.boolean().optional() });
const ListResponseSchema = z.object({
  secrets: z.array(SecretSchema),
  imports: z.array(z.object({ secretPath: z.string().optional(), secrets: z.array(SecretSchema) })).optional(),
});

export function createInfisicalClient(options: InfisicalClientOptions): InfisicalClient {
  const stats: ClientStats = { requests: 0, logins: 0, relogins: 0, rateLimited: 0 };
  const callOptions = (signal: AbortSignal | undefined) => ({ siteUrl: options.siteUrl, timeoutMs: options.requestTimeoutMs, signal, clock });
  const clock = options.clock ?? systemClock;
  const now = options.now ?? (() => clock.now());
  const loginBackoff = new LoginBackoff(now);
  let session: InfisicalSDK | undefined;
  let loginInFlight: Promise<InfisicalSDK> | undefined;
  // The client secrets of the latest login attempt and of the session's login: a server may echo them.
  let latestSecret: string | undefined;
  let sessionSecret: string | undefined;
  /** The latest refused login, repeated (with the backoff) while further logins are held back. */
  let lastRefusal: SidecarError | undefined;

  const loginUrl = `${options.siteUrl}/api/v1/auth/universal-auth/login`;
  const listUrl = `${options.siteUrl}/api/v3/secrets/raw`;

  /** Server text as it may be shown: without the credentials in play, escaped (server-text.ts). */
  const show = (text: string, sdk?: InfisicalSDK): string =>
    shown(text, [latestSecret, sessionSecret, session?.auth().getAccessToken() ?? undefined, sdk?.auth().getAccessToken() ?? undefined]);

  async function login(signal: AbortSignal | undefined): Promise<InfisicalSDK> {
    // Concurrent folder fetches that all hit a 401 share one login.
    loginInFlight ??= (async () => {
      const heldUntil = loginBackoff.heldUntil();
      if (heldUntil !== undefined && lastRefusal !== undefined) throw heldBack(lastRefusal, heldUntil);
      loginBackoff.attempted();
      const { clientId, clientSecret } = options.credentials();
      latestSecret = clientSecret;
      const sdk = new InfisicalSDK({ siteUrl: options.siteUrl });
      const body = { clientId, clientSecret, ...(options.organizationSlug ? { organizationSlug: options.organizationSlug } : {}) };
      const outcome = await runWithDeadline(() => sdk.auth().universalAuth.login(body), callOptions(signal));
      count(outcome);
      stats.logins++;
      if (!outcome.ok) {
        const error = errorFor('login', outcome.failure, `POST ${loginUrl}`);
        if (error.code === 'SIDECAR_AUTH_INVALID_CREDENTIALS') {
          loginBackoff.refused();
          lastRefusal = error;
        }
        throw error;
      }
      loginBackoff.succeeded();
      lastRefusal = undefined;
      session = sdk;
      sessionSecret = clientSecret;
      return sdk;
    })().finally(() => {
      loginInFlight = undefined;
    });
    return loginInFlight;
  }

  /**
   * A login not sent, because Infisical refused the last one and another this soon could lock the
   * identity. The refusal's code and text, and when the next login goes. No retry-after: the
   * refresh loop would then hold back the pass a changed credential file triggers.
   */
  function heldBack(refusal: SidecarError, until: number): SidecarError {
    const lockout = `${LOCKOUT.failures} refused logins within ${formatDuration(LOCKOUT.windowMs)} lock it for ${formatDuration(LOCKOUT.durationMs)}`;
    return new AuthError(
      refusal.code,
      `${refusal.message}; logins are backing off so that Infisical does not lock the identity out (${lockout}): next attempt at ${new Date(until).toISOString()} (in ${formatDuration(until - now())}), sooner once a credential file changes`,
      { status: refusal.status, hint: refusal.hint },
    );
  }

  async function listFolder(sdk: InfisicalSDK, path: string, signal: AbortSignal | undefined): Promise<FolderSecret[]> {
    const outcome = await runWithDeadline(
      () =>
        sdk.secrets().listSecrets({
          projectId: options.projectId,
          environment: options.environment,
          secretPath: path,
          includeImports: options.includeImports,
          expandSecretReferences: options.expandSecretReferences,
          recursive: false,
          viewSecretValue: true,
        }),
      callOptions(signal),
    );
    count(outcome);
    if (!outcome.ok) throw errorFor('list', outcome.failure, `GET ${listUrl} (folder ${path})`, sdk);
    return mergeFolder(outcome.value, path, listUrl, show);
  }

  async function fetchOne(path: string, signal: AbortSignal | undefined): Promise<FolderSecret[]> {
    const sdk = session ?? (await login(signal));
    try {
      return await listFolder(sdk, path, signal);
    } catch (error) {
      if (!isTokenRejection(error)) throw error;
      // Log in once more. A second refusal means the identity really lacks access.
      if (session === sdk) {
        session = undefined;
        stats.relogins++;
      }
      const fresh = session ?? (await login(signal));
      try {
        return await listFolder(fresh, path, signal);
      } catch (retryError) {
        if (!isTokenRejection(retryError)) throw retryError;
        throw new AuthError('SIDECAR_AUTH_FORBIDDEN', `${retryError.message} (again after a fresh login)`, { status: retryError.status });
      }
    }
  }

  function count(outcome: CallOutcome<unknown>): void {
    stats.requests += outcome.requests;
    if (!outcome.ok && outcome.failure.kind === 'http' && outcome.failure.status === 429) stats.rateLimited++;
  }

  /** A failed call as a typed error: transport errors get the method and URL; answers are classified by status. */
  function errorFor(call: Call, failure: CallFailure, where: string, sdk?: InfisicalSDK): SidecarError {
    if (failure.kind === 'transport') return new FetchError(failure.error.code, `${where}: ${failure.error.message}`, { retryable: failure.error.retryable });
    const { status, serverMessage, retryAfterMs } = failure;
    const code = codeForStatus(call, status, failure.infisicalEnvelope);
    return errorForCode(code, `${where}: ${status}${serverMessage ? ` ${show(serverMessage, sdk)}` : ''}`, status, retryAfterMs);
  }

  return {
    stats,
    credentialsChanged() {
      loginBackoff.credentialsChanged();
    },
    loggedInClientSecret: () => sessionSecret,
    async fetchFolders(paths, signal) {
      return Promise.all(
        paths.map(async (path): Promise<FolderResult> => {
          try {
            return { path, ok: true, secrets: await fetchOne(path, signal) };
          } catch (error) {
            return { path, ok: false, error: toSidecarError(error) };
          }
        }),
      );
    },
  };
}

/**
 * One folder's secrets after import precedence: among imports the last one wins, and the folder's
 * own secrets win over every import (as the Infisical CLI; the Node SDK's merge does the opposite).
 */
function mergeFolder(body: unknown, path: string, url: string, show: (serverText: string) => string): FolderSecret[] {
  const parsed = ListResponseSchema.safeParse(body);
  if (!parsed.success) {
    throw new FetchError('SIDECAR_FETCH_UNAVAILABLE', `GET ${url} (folder ${path}): malformed response body (not the secrets list schema)`, {
      retryable: true,
    });
  }
  const merged = new Map<string, string>();
  const layers = [...(parsed.data.imports ?? []).map((imported) => imported.secrets), parsed.data.secrets];
  for (const layer of layers) {
    for (const secret of layer) {
      if (secret.secretValueHidden === true) {
        throw new AuthError('SIDECAR_AUTH_FORBIDDEN', `GET ${url} (folder ${path}): the identity may list ${show(secret.secretKey)} but not read its value`, {
          hint: 'Grant the machine identity "Read Value" on secrets in this environment and folder.',
        });
      }
      merged.set(secret.secretKey, secret.secretValue);
    }
  }
  return [...merged].map(([key, value]) => ({ key, value }));
}

type Call = 'login' | 'list';

/**
 * A data call answered 401 (older servers) or 403 `TokenError` (newer ones), which `codeForStatus`
 * classifies as `SIDECAR_AUTH_FORBIDDEN`: the token expired or was revoked (docs/infisical-api.md §8).
 * The same code without a status (a value the identity may not read) needs no new login.
 */
function isTokenRejection(error: unknown): error is SidecarError {
  return isSidecarError(error) && error.code === 'SIDECAR_AUTH_FORBIDDEN' && error.status !== undefined;
}

/**
 * The one classification of Infisical's answers, by HTTP status (`codeForStatus`). The code decides
 * the exit code (src/errors.ts), the retryable flag the backoff, and `isTokenRejection` reads
 * re-login from it.
 */
function errorForCode(code: ErrorCode, detail: string, status: number, retryAfterMs: number | undefined): SidecarError {
  switch (code) {
    case 'SIDECAR_AUTH_INVALID_CREDENTIALS':
    case 'SIDECAR_AUTH_FORBIDDEN':
      return new AuthError(code, detail, { status });
    case 'SIDECAR_FETCH_RATE_LIMITED':
      return new FetchError(code, detail, { status, retryable: true, retryAfterMs });
    case 'SIDECAR_FETCH_UNAVAILABLE':
      return new FetchError(code, detail, { status, retryable: true });
    default:
      return new FetchError(code, detail, { status });
  }
}

/** `infisicalEnvelope`: for a 404, whether Infisical answered it (call-context.ts); otherwise the site URL leads elsewhere. */
function codeForStatus(call: Call, status: number, infisicalEnvelope: boolean | undefined): ErrorCode {
  if (status === 429) return 'SIDECAR_FETCH_RATE_LIMITED';
  if (status === 404 && infisicalEnvelope === false) return 'SIDECAR_SITE_URL_WRONG';
  if (call === 'login') {
    // Older servers answer an unknown client id with 404 rather than 401 (docs/infisical-api.md §8).
    if (status === 400 || status === 401 || status === 404 || status === 422) return 'SIDECAR_AUTH_INVALID_CREDENTIALS';
    if (status === 403) return 'SIDECAR_AUTH_FORBIDDEN';
  } else {
    if (status === 401 || status === 403) return 'SIDECAR_AUTH_FORBIDDEN';
    if (status === 404) return 'SIDECAR_FETCH_NOT_FOUND';
  }
  if (status >= 400 && status < 500) return 'SIDECAR_FETCH_REJECTED';
  return 'SIDECAR_FETCH_UNAVAILABLE';
}
