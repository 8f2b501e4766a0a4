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
 */
import { InfisicalSDK } from '@infisical/sdk';
import { z } from 'zod';
import { AuthError, FetchError, isSidecarError, toSidecarError, type ErrorCode, type SidecarError } from '../errors.js';
import type { Credentials } from '../config/credentials.js';
import { runWithDeadline, type CallFailure, type CallOutcome } from './call-context.js';


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
  /** Forgets the token, so the next fetch logs in again (credentials rotated). */
  invalidate(): void;
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
  const callOptions = (signal: AbortSignal | undefined) => ({ siteUrl: options.siteUrl, timeoutMs: options.requestTimeoutMs, signal });
  let session: InfisicalSDK | undefined;
  let loginInFlight: Promise<InfisicalSDK> | undefined;

  const loginUrl = `${options.siteUrl}/api/v1/auth/universal-auth/login`;
  const listUrl = `${options.siteUrl}/api/v3/secrets/raw`;

  async function login(signal: AbortSignal | undefined): Promise<InfisicalSDK> {
    // Concurrent folder fetches that all hit a 401 share one login.
    loginInFlight ??= (async () => {
      const { clientId, clientSecret } = options.credentials();
      const sdk = new InfisicalSDK({ siteUrl: options.siteUrl });
      const body = { clientId, clientSecret, ...(options.organizationSlug ? { organizationSlug: options.organizationSlug } : {}) };
      const outcome = await runWithDeadline(() => sdk.auth().universalAuth.login(body), callOptions(signal));
      count(outcome);
      stats.logins++;
      if (!outcome.ok) throw errorFor('login', outcome.failure, `POST ${loginUrl}`);
      session = sdk;
      return sdk;
    })().finally(() => {
      loginInFlight = undefined;
    });
    return loginInFlight;
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
    if (!outcome.ok) throw errorFor('list', outcome.failure, `GET ${listUrl} (folder ${path})`);
    return mergeFolder(outcome.value, path, listUrl);
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

  return {
    stats,
    invalidate() {
      session = undefined;
    },
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
function mergeFolder(body: unknown, path: string, url: string): FolderSecret[] {
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
        throw new AuthError('SIDECAR_AUTH_FORBIDDEN', `GET ${url} (folder ${path}): the identity may list ${secret.secretKey} but not read its value`, {
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

/** A failed call as a typed error: transport errors get the method and URL; answers are classified by status. */
function errorFor(call: Call, failure: CallFailure, where: string): SidecarError {
  if (failure.kind === 'transport') return new FetchError(failure.error.code, `${where}: ${failure.error.message}`, { retryable: failure.error.retryable });
  const { status, serverMessage, retryAfterMs } = failure;
  return errorForStatus(call, status, `${where}: ${status}${serverMessage ? ` ${serverMessage}` : ''}`, retryAfterMs);
}

/**
 * The one classification of Infisical's answers, by HTTP status. The code decides the exit code
 * (src/errors.ts), the retryable flag the backoff, and `isTokenRejection` reads re-login from it.
 */
function errorForStatus(call: Call, status: number, detail: string, retryAfterMs: number | undefined): SidecarError {
  const code = codeForStatus(call, status);
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

function codeForStatus(call: Call, status: number): ErrorCode {
  if (status === 429) return 'SIDECAR_FETCH_RATE_LIMITED';
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
