/**
 * A faithful fake of the Infisical HTTP API surface a Universal Auth machine identity uses: login,
 * token renew/revoke, and the v3/v4 secret list endpoints, with Infisical's error envelopes, ETags,
 * reference expansion, imports and fault injection. Built on node:http only, so it also runs as a
 * standalone process (main.ts) for the demo and the Docker e2e.
 *
 * The `/__fake/*` control API has NO authentication: it is a test tool. Never expose it beyond
 * loopback or a private test network.
 *
 * Spec: docs/infisical-api.md §1–4, §7, §8. Where real servers differ, `generation` picks which one
 * the fake answers like (generation.ts, auth.ts); `current` is the default.
 */
import { createHash, randomInt } from 'node:crypto';
import { createServer, STATUS_CODES } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Auth } from './auth.js';
import type { AuthFailure, TokenGrant } from './auth.js';
import { Faults, parseFaultRule } from './faults.js';
import type { FaultAction, FaultControl, FaultRoute } from './faults.js';
import { GENERATION_TRAITS } from './generation.js';
import type { ExpiredTokenForm, MissingFolderAnswer, ServerGeneration } from './generation.js';
import { FixedWindowLimiter } from './rate-limit.js';
import { GLITCHTIP_SEED } from './seed.js';
import type { FakeSeed } from './seed.js';
import { normalizePath, Store } from './store.js';
import type { Project, SetSecretOptions } from './store.js';
import { sendWebhook } from './webhook.js';
import type { WebhookDelivery } from './webhook.js';
import { systemClock, type Clock } from '../../src/timers.js';

export type { FakeSeed } from './seed.js';
export type { FaultControl, FaultRule } from './faults.js';
export type { ExpiredTokenForm, MissingFolderAnswer, ServerGeneration } from './generation.js';
export type { SetSecretOptions } from './store.js';

export interface FakeInfisicalOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** Default GLITCHTIP_SEED. Copied, never mutated. */
  seed?: FakeSeed;
  /** Which server to answer like where real ones differ (docs/infisical-api.md §8); default 'current'. */
  generation?: ServerGeneration;
  /** '404': SecretPathNotFound (current). 'empty': 200 {secrets:[],imports:[]} (v2024). Default: the generation's. */
  missingFolder?: MissingFolderAnswer;
  /** `expiresIn` of issued tokens; default 2592000 (30 days). 0 = never expires. */
  tokenTtlSeconds?: number;
  /** `accessTokenMaxTTL` and the renewal budget; default max(2592000, tokenTtlSeconds). 0 = no budget. */
  tokenMaxTtlSeconds?: number;
  /**
   * The default form of `expireTokens()`: '403' TokenError or '401'. Default: the generation's ('403'
   * current, '401' v2024). On 'current' it is also how a token past its TTL fails ('401': "No identity
   * access token found"); 'v2024' always answers TTL and max-TTL expiry as that server did.
   */
  expiredTokenForm?: ExpiredTokenForm;
  /**
   * Secret reads (v3/v4 list) allowed per client IP per fixed 60 s window, counted after
   * authentication, with x-ratelimit-* headers on every list answer. Default: no limit (self-hosted
   * current servers; the late-2024 server allowed 40).
   */
  secretReadsPerMinute?: number;
  /** Clock for token expiry and lockout (not for timestamps in secrets); default the clock's. */
  now?: () => number;
  /** Request arrival times, token expiry, rate windows and latency faults run on it; default the system's. */
  clock?: Clock;
}

export interface RequestLogEntry {
  method: string;
  /** Path without the query string, trailing slash kept as sent. */
  path: string;
  query: Record<string, string>;
  /** 0 while pending, or when no response was sent (hang, reset, client gone). */
  status: number;
  /** Arrival time, epoch ms. */
  at: number;
  /** Time to the end of the response. */
  ms: number;
}

export interface FakeInfisical {
  /** e.g. http://127.0.0.1:PORT (no trailing slash, no /api): what the SDK calls siteUrl. */
  url: string;
  /** The first project of the seed (the demo project by default). */
  projectId: string;
  /** Create (version 1) or rotate (version + 1, new updatedAt). Creates the folder and environment if needed. */
  setSecret(env: string, path: string, key: string, value: string, opts?: SetSecretOptions): void;
  /** Returns whether the secret existed. */
  deleteSecret(env: string, path: string, key: string, projectId?: string): boolean;
  addFolder(env: string, path: string, projectId?: string): void;
  /** Removes the folder and its subfolders; returns whether it existed. */
  removeFolder(env: string, path: string, projectId?: string): boolean;
  /** Appends an import (last position) to folder env:path, importing fromEnv:fromPath. */
  addImport(env: string, path: string, fromEnv: string, fromPath: string, projectId?: string): void;
  /** Adds or replaces (and un-revokes) an identity. */
  addIdentity(clientId: string, clientSecret: string): void;
  /** Later logins get 401 Invalid credentials; tokens already issued keep working. */
  revokeIdentity(clientId: string): void;
  /** Every token issued so far fails from now on; default form is the expiredTokenForm option. */
  expireTokens(form?: ExpiredTokenForm): void;
  faults: FaultControl;
  requests: RequestLogEntry[];
  /**
   * Resolves with the request log once `test` holds for it, checked at every request that arrives
   * (an event, not a poll): "the sidecar's third list request reached the fake".
   */
  whenRequests(test: (requests: readonly RequestLogEntry[]) => boolean): Promise<RequestLogEntry[]>;
  clearRequests(): void;
  /** Back to the seed (data, identities, lockouts); clears faults and the request log. Issued tokens stay as they are. */
  reset(): void;
  /** POSTs a signed `secrets.modified` webhook, as a project webhook would after a change. */
  sendWebhook(url: string, secretKey: string | undefined, event: { environment: string; secretPath: string; projectId?: string }): Promise<WebhookDelivery>;
  /** Stops listening and destroys every open socket, including hung ones. */
  close(): Promise<void>;
}

type ApiRoute = 'login' | 'renew' | 'revoke' | 'listV3' | 'listV4' | 'status';

interface Reply {
  status: number;
  /** Serialized with JSON.stringify unless `raw` is set. */
  json?: unknown;
  raw?: string;
  headers?: Record<string, string>;
}

const API_BODY_LIMIT = 1024 * 1024; // fastify's default bodyLimit
const CONTROL_BODY_LIMIT = 64 * 1024 * 1024; // room for 1 MiB values after JSON escaping
const DEFAULT_TTL_SECONDS = 2_592_000;
const RATE_LIMIT_WINDOW_MS = 60_000;
/** x-ratelimit-limit of a `rateLimit` fault when no real limit is configured: the older instance default. */
const FAULT_RATE_LIMIT = 60;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** Default `error` names, as the server's error classes name them. */
const ERROR_NAMES: Record<number, string> = {
  400: 'BadRequest',
  401: 'UnauthorizedError',
  403: 'ForbiddenError',
  404: 'NotFound',
  422: 'ValidationFailure',
  429: 'RateLimitExceeded',
  500: 'InternalServerError',
  504: 'GatewayTimeoutError',
};

export async function startFakeInfisical(opts: FakeInfisicalOptions = {}): Promise<FakeInfisical> {
  const seed = structuredClone(opts.seed ?? GLITCHTIP_SEED);
  const generation = opts.generation ?? 'current';
  const traits = GENERATION_TRAITS[generation];
  const missingFolder = opts.missingFolder ?? traits.missingFolder;
  const expiredTokenForm = opts.expiredTokenForm ?? traits.expiredTokenForm;
  const tokenTtlSeconds = opts.tokenTtlSeconds ?? DEFAULT_TTL_SECONDS;
  const clock = opts.clock ?? systemClock;
  const now = opts.now ?? (() => clock.now());
  const secretReads = opts.secretReadsPerMinute === undefined ? undefined : new FixedWindowLimiter(opts.secretReadsPerMinute, RATE_LIMIT_WINDOW_MS);
  const auth = new Auth({
    generation,
    tokenTtlSeconds,
    tokenMaxTtlSeconds: opts.tokenMaxTtlSeconds ?? Math.max(DEFAULT_TTL_SECONDS, tokenTtlSeconds),
    expiredTokenForm,
    now,
  });
  let store = new Store(seed);
  const loadIdentities = (): void => {
    auth.clearIdentities();
    for (const id of seed.identities) auth.addIdentity(id.clientId, id.clientSecret);
  };
  loadIdentities();
  const faults = new Faults();
  const requests: RequestLogEntry[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<() => void>();
  const requestWatchers = new Set<() => void>();
  let closed = false;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const cancel = clock.schedule(ms, () => {
        timers.delete(cancel);
        resolve();
      });
      timers.add(cancel);
    });

  // ---- API routes -------------------------------------------------------------------------------

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, route: ApiRoute | null, entry: RequestLogEntry): Promise<void> {
    const query = entry.query;
    const isList = route === 'listV3' || route === 'listV4';
    const faultRoute: Exclude<FaultRoute, 'any'> | 'other' = isList ? 'list' : route === 'login' || route === 'renew' || route === 'revoke' ? route : 'other';
    const decision = faults.decide(faultRoute, isList ? normalizePath(query['secretPath'] ?? '/') : undefined);
    if (decision.delayMs > 0) await sleep(decision.delayMs);
    if (res.destroyed || req.socket.destroyed) return;
    if (decision.action?.kind === 'echoCredential') return send(req, res, await echoCredential(req, decision.action));
    if (decision.action !== null) {
      applyFault(req, res, decision.action);
      return;
    }
    switch (route) {
      case 'login':
        return send(req, res, await login(req));
      case 'renew':
      case 'revoke':
        return send(req, res, await tokenRoute(req, route));
      case 'listV3':
      case 'listV4':
        return send(req, res, list(req, route, query));
      case 'status':
        return send(req, res, { status: 200, json: { date: new Date(clock.now()).toISOString(), message: 'Ok' } });
      case null:
        // fastify's own not-found body, which Infisical does not wrap.
        return send(req, res, {
          status: 404,
          json: { message: `Route ${req.method ?? 'GET'}:${url.pathname} not found`, error: 'Not Found', statusCode: 404 },
        });
    }
  }

  function applyFault(req: IncomingMessage, res: ServerResponse, action: Exclude<FaultAction, { kind: 'latency' | 'echoCredential' }>): void {
    switch (action.kind) {
      case 'hang':
        return; // the socket is tracked, so close() still ends it
      case 'reset':
        req.socket.destroy();
        return;
      case 'malformed':
        return send(req, res, { status: 200, raw: '{"secrets":[{"secretKey":"TRUNC', headers: { 'content-type': 'application/json; charset=utf-8' } });
      case 'rateLimit':
        return send(req, res, rateLimited(action.retryAfterSeconds, secretReads?.limit ?? FAULT_RATE_LIMIT));
      case 'status': {
        const { status, body, headers } = action;
        const reply: Reply = { status };
        if (headers !== undefined) reply.headers = headers;
        if (typeof body === 'string') {
          reply.raw = body;
        } else if (body !== undefined) {
          reply.json = body;
        } else if (status >= 400) {
          const message = status === 500 ? 'Something went wrong' : (STATUS_CODES[status] ?? 'Error');
          reply.json = envelope(status, ERROR_NAMES[status] ?? (STATUS_CODES[status] ?? 'Error').replaceAll(' ', ''), message);
        } else if (status !== 204 && status !== 304) {
          reply.json = {};
        }
        return send(req, res, reply);
      }
    }
  }

  /** The `echoCredential` fault: the envelope, its message carrying the login's client secret or the bearer token. */
  async function echoCredential(req: IncomingMessage, action: { status: number; message: string }): Promise<Reply> {
    const parsed = req.method === 'POST' ? await readApiBody(req) : { body: undefined };
    const clientSecret = 'body' in parsed ? (parsed.body as { clientSecret?: unknown } | undefined)?.clientSecret : undefined;
    const credential = typeof clientSecret === 'string' ? clientSecret : (req.headers.authorization ?? '').slice(7);
    const status = action.status;
    return error(status, ERROR_NAMES[status] ?? 'Error', action.message.replaceAll('{credential}', credential));
  }

  /** 429 as @fastify/rate-limit + Infisical's error builder send it; the body's wording depends on the generation. */
  function rateLimited(secondsLeft: number, limit: number): Reply {
    return {
      status: 429,
      json: envelope(429, 'RateLimitExceeded', `Rate limit exceeded. Please try again in ${traits.rateLimitWait(secondsLeft)}`),
      headers: { 'retry-after': String(secondsLeft), ...rateLimitHeaders(limit, 0, secondsLeft) },
    };
  }

  async function login(req: IncomingMessage): Promise<Reply> {
    const parsed = await readApiBody(req);
    if ('reply' in parsed) return parsed.reply;
    const issues: ZodIssue[] = [];
    const clientId = requiredString(parsed.body, 'clientId', issues);
    const clientSecret = requiredString(parsed.body, 'clientSecret', issues);
    if (clientId === undefined || clientSecret === undefined) return validationFailure(issues, traits.validationStatus);
    return grantOrFailure(auth.login(clientId, clientSecret));
  }

  async function tokenRoute(req: IncomingMessage, route: 'renew' | 'revoke'): Promise<Reply> {
    const parsed = await readApiBody(req);
    if ('reply' in parsed) return parsed.reply;
    const issues: ZodIssue[] = [];
    const token = requiredString(parsed.body, 'accessToken', issues);
    if (token === undefined) return validationFailure(issues, traits.validationStatus);
    if (route === 'renew') return grantOrFailure(auth.renew(token));
    const result = auth.revoke(token);
    return result.ok ? { status: 200, json: { message: 'Successfully revoked access token' } } : failure(result);
  }

  function list(req: IncomingMessage, route: 'listV3' | 'listV4', query: Record<string, string>): Reply {
    // Authentication runs in onRequest, before query validation.
    const header = req.headers.authorization;
    if (header === undefined || header === '') return failure({ ok: false, status: 401, error: 'UnauthorizedError', message: 'Token missing' });
    const authResult = auth.authenticate(header.slice(7)); // the server slices without checking the scheme word
    if (!authResult.ok) return failure(authResult);
    if (secretReads === undefined) return listAuthenticated(route, query);
    // The route's limiter runs in preValidation: after authentication, before the query is checked.
    const window = secretReads.take(req.socket.remoteAddress ?? '', now());
    if (!window.allowed) return rateLimited(window.resetSeconds, secretReads.limit);
    const reply = listAuthenticated(route, query);
    return { ...reply, headers: { ...reply.headers, ...rateLimitHeaders(secretReads.limit, window.remaining, window.resetSeconds) } };
  }

  function listAuthenticated(route: 'listV3' | 'listV4', query: Record<string, string>): Reply {

    const v4 = route === 'listV4';
    const issues: ZodIssue[] = [];
    const flag = (name: string, fallback: boolean): boolean => {
      const v = query[name];
      if (v === undefined) return fallback;
      if (v === 'true' || v === 'false') return v === 'true';
      issues.push({
        received: v,
        code: 'invalid_enum_value',
        options: ['true', 'false'],
        path: [name],
        message: `Invalid enum value. Expected 'true' | 'false', received '${v}'`,
      });
      return fallback;
    };
    const expand = flag('expandSecretReferences', v4);
    const recursive = flag('recursive', false);
    const viewSecretValue = flag('viewSecretValue', true);
    // v3 reads only snake_case include_imports; v4 only camelCase includeImports.
    const includeImports = v4 ? flag('includeImports', true) : flag('include_imports', false);
    if (v4) flag('includePersonalOverrides', false);
    const projectIdParam = query[v4 ? 'projectId' : 'workspaceId']?.trim();
    if (v4 && projectIdParam === undefined) {
      issues.push({ code: 'invalid_type', expected: 'string', received: 'undefined', path: ['projectId'], message: 'Required' });
    }
    if (issues.length > 0) return validationFailure(issues, traits.validationStatus);

    let project: Project | undefined;
    if (projectIdParam !== undefined && projectIdParam !== '') {
      project = store.projects.get(projectIdParam);
      if (project === undefined) return error(404, 'NotFound', `Project with ID '${projectIdParam}' not found`);
    } else {
      const slug = v4 ? undefined : query['workspaceSlug']?.trim();
      if (slug === undefined || slug === '') return error(400, 'BadRequest', 'You must provide projectSlug or workspaceId');
      project = store.projectBySlug(slug);
      if (project === undefined) return error(404, 'NotFound', `Project with slug '${slug}' not found`);
    }
    const environment = query['environment']?.trim();
    if (environment === undefined || environment === '') return error(400, 'BadRequest', 'Missing project id or environment');
    const secretPath = normalizePath(query['secretPath'] ?? '/');
    const tagSlugs = (query['tagSlugs'] ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);

    const result = store.list(project, { environment, secretPath, recursive, includeImports, expand, viewSecretValue, tagSlugs });
    if (result.ok) {
      return { status: 200, json: includeImports || traits.importsKeyAlways ? { secrets: result.secrets, imports: result.imports } : { secrets: result.secrets } };
    }
    if (missingFolder === 'empty') return { status: 200, json: { secrets: [], imports: [] } };
    if (result.reason === 'environment') {
      return error(404, 'NotFound', `Environment with slug '${environment}' in project with ID ${project.id} not found`);
    }
    return error(
      404,
      'SecretPathNotFound',
      `Folder with path '${secretPath}' in environment '${environment}' was not found. Please ensure the environment slug and secret path is correct.`,
    );
  }

  // ---- control API (no auth: test tool only) -----------------------------------------------------

  async function handleControl(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    let body: Record<string, unknown> = {};
    if (req.method !== 'GET') {
      const raw = await readBody(req, CONTROL_BODY_LIMIT);
      if (raw === 'too-large') return send(req, res, { status: 413, json: { error: 'body too large' } });
      if (raw.length > 0) {
        try {
          const parsed: unknown = JSON.parse(raw.toString('utf8'));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          body = parsed as Record<string, unknown>;
        } catch {
          return send(req, res, { status: 400, json: { error: 'body must be a JSON object' } });
        }
      }
    }
    try {
      send(req, res, await control(`${req.method ?? 'GET'} ${path}`, body));
    } catch (err) {
      send(req, res, { status: 400, json: { error: err instanceof Error ? err.message : String(err) } });
    }
  }

  async function control(op: string, b: Record<string, unknown>): Promise<Reply> {
    const str = (name: string): string => {
      const v = b[name];
      if (typeof v !== 'string') throw new Error(`${name} must be a string`);
      return v;
    };
    const optStr = (name: string): string | undefined => (b[name] === undefined ? undefined : str(name));
    const ok = (extra: Record<string, unknown> = {}): Reply => ({ status: 200, json: { ok: true, ...extra } });
    switch (op) {
      case 'GET /__fake/health':
        return ok({ url: fake.url });
      case 'PUT /__fake/secrets': {
        const opts: SetSecretOptions = {};
        const projectId = optStr('projectId');
        const comment = optStr('comment');
        if (projectId !== undefined) opts.projectId = projectId;
        if (comment !== undefined) opts.comment = comment;
        if (typeof b['skipMultilineEncoding'] === 'boolean') opts.skipMultilineEncoding = b['skipMultilineEncoding'];
        fake.setSecret(str('environment'), str('path'), str('key'), str('value'), opts);
        return ok();
      }
      case 'DELETE /__fake/secrets':
        return ok({ deleted: fake.deleteSecret(str('environment'), str('path'), str('key'), optStr('projectId')) });
      case 'PUT /__fake/folders':
        fake.addFolder(str('environment'), str('path'), optStr('projectId'));
        return ok();
      case 'DELETE /__fake/folders':
        return ok({ deleted: fake.removeFolder(str('environment'), str('path'), optStr('projectId')) });
      case 'PUT /__fake/imports':
        fake.addImport(str('environment'), str('path'), str('fromEnvironment'), str('fromPath'), optStr('projectId'));
        return ok();
      case 'PUT /__fake/identities':
        fake.addIdentity(str('clientId'), str('clientSecret'));
        return ok();
      case 'DELETE /__fake/identities':
        fake.revokeIdentity(str('clientId'));
        return ok();
      case 'POST /__fake/faults':
        faults.add(parseFaultRule(b));
        return ok();
      case 'GET /__fake/faults':
        return { status: 200, json: { faults: faults.list() } };
      case 'DELETE /__fake/faults':
        faults.clear();
        return ok();
      case 'POST /__fake/expire-tokens': {
        const form = b['form'];
        if (form !== undefined && form !== '401' && form !== '403') throw new Error('form must be "401" or "403"');
        fake.expireTokens(form);
        return ok();
      }
      case 'GET /__fake/requests':
        return { status: 200, json: { requests } };
      case 'DELETE /__fake/requests':
        fake.clearRequests();
        return ok();
      case 'POST /__fake/reset':
        fake.reset();
        return ok();
      case 'POST /__fake/webhook': {
        const event: { environment: string; secretPath: string; projectId?: string } = { environment: str('environment'), secretPath: str('secretPath') };
        const projectId = optStr('projectId');
        if (projectId !== undefined) event.projectId = projectId;
        const delivery = await fake.sendWebhook(str('url'), optStr('secretKey'), event);
        return ok({ delivery });
      }
      default:
        return { status: 404, json: { error: `unknown control route ${op}` } };
    }
  }

  // ---- server plumbing ---------------------------------------------------------------------------

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname; // ignoreTrailingSlash
    if (path === '/__fake' || path.startsWith('/__fake/')) {
      // Control calls stay out of the request log, so tests only see what the client under test sent.
      handleControl(req, res, path).catch((err: unknown) => internalError(req, res, err));
      return;
    }
    const entry: RequestLogEntry = { method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), status: 0, at: clock.now(), ms: 0 };
    requests.push(entry);
    for (const watcher of [...requestWatchers]) watcher();
    res.on('finish', () => {
      entry.status = res.statusCode;
      entry.ms = clock.now() - entry.at;
    });
    res.on('close', () => {
      if (!res.writableFinished) entry.ms = clock.now() - entry.at;
    });
    handleApi(req, res, url, routeOf(req.method ?? 'GET', path), entry).catch((err: unknown) => internalError(req, res, err));
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A hung request must not be cut by Node's own request timeout before the client's.
  server.requestTimeout = 0;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;

  const fake: FakeInfisical = {
    url: `http://${urlHost(address.address)}:${address.port}`,
    projectId: store.projects.keys().next().value ?? '',
    setSecret: (env, path, key, value, setOpts) => {
      store.setSecret(env, path, key, value, setOpts);
    },
    deleteSecret: (env, path, key, projectId) => store.deleteSecret(env, path, key, projectId),
    addFolder: (env, path, projectId) => {
      store.addFolder(env, path, projectId);
    },
    removeFolder: (env, path, projectId) => store.removeFolder(env, path, projectId),
    addImport: (env, path, fromEnv, fromPath, projectId) => store.addImport(env, path, fromEnv, fromPath, projectId),
    addIdentity: (clientId, clientSecret) => auth.addIdentity(clientId, clientSecret),
    revokeIdentity: (clientId) => auth.revokeIdentity(clientId),
    expireTokens: (form) => auth.expireAll(form ?? expiredTokenForm),
    faults,
    requests,
    whenRequests: (test) =>
      new Promise((resolve) => {
        const watcher = () => {
          if (!test(requests)) return;
          requestWatchers.delete(watcher);
          resolve(requests);
        };
        requestWatchers.add(watcher);
        watcher();
      }),
    clearRequests: () => {
      requests.length = 0;
    },
    reset: () => {
      store = new Store(seed);
      loadIdentities();
      secretReads?.clear();
      faults.clear();
      requests.length = 0;
    },
    sendWebhook: (url, secretKey, event) => {
      const project = store.project(event.projectId);
      return sendWebhook(url, secretKey, {
        ...event,
        projectId: project.id,
        projectName: project.name,
        environmentName: project.environments.get(event.environment)?.name ?? event.environment,
      }, clock);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      for (const cancel of timers) cancel();
      timers.clear();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await done;
    },
  };
  return fake;
}

// ---- helpers ------------------------------------------------------------------------------------

function routeOf(method: string, path: string): ApiRoute | null {
  if (method === 'POST' && path === '/api/v1/auth/universal-auth/login') return 'login';
  if (method === 'POST' && path === '/api/v1/auth/token/renew') return 'renew';
  if (method === 'POST' && path === '/api/v1/auth/token/revoke') return 'revoke';
  if (method === 'GET' && path === '/api/v3/secrets/raw') return 'listV3';
  if (method === 'GET' && path === '/api/v4/secrets') return 'listV4';
  if (method === 'GET' && path === '/api/status') return 'status';
  return null;
}

function urlHost(address: string): string {
  if (address === '0.0.0.0' || address === '::') return '127.0.0.1';
  return address.includes(':') ? `[${address}]` : address;
}

/** `req-` + 14 alphanumerics, like alphaNumericNanoId(14). */
function reqId(): string {
  let id = 'req-';
  for (let i = 0; i < 14; i++) id += ALNUM[randomInt(ALNUM.length)];
  return id;
}

function envelope(statusCode: number, errorName: string, message: string | unknown[]): Record<string, unknown> {
  return { reqId: reqId(), statusCode, message, error: errorName };
}

function error(status: number, errorName: string, message: string): Reply {
  return { status, json: envelope(status, errorName, message) };
}

function failure(f: AuthFailure): Reply {
  return error(f.status, f.error, f.message);
}

function grantOrFailure(result: TokenGrant | AuthFailure): Reply {
  if ('ok' in result) return failure(result);
  // Exactly the four keys of the route's response schema.
  return {
    status: 200,
    json: { accessToken: result.accessToken, expiresIn: result.expiresIn, accessTokenMaxTTL: result.accessTokenMaxTTL, tokenType: result.tokenType },
  };
}

interface ZodIssue {
  code: string;
  path: Array<string | number>;
  message: string;
  [extra: string]: unknown;
}

/** The zod issue array as `message`, not a string; 422 on current servers, 401 on late-2024 ones. */
function validationFailure(issues: ZodIssue[], status: 401 | 422): Reply {
  return { status, json: envelope(status, 'ValidationFailure', issues) };
}

function rateLimitHeaders(limit: number, remaining: number, resetSeconds: number): Record<string, string> {
  return { 'x-ratelimit-limit': String(limit), 'x-ratelimit-remaining': String(remaining), 'x-ratelimit-reset': String(resetSeconds) };
}

/** zod `z.string().trim()` on a body field: returns the trimmed value or records an issue. */
function requiredString(body: unknown, name: string, issues: ZodIssue[]): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    if (!issues.some((i) => i.path.length === 0)) {
      issues.push({ code: 'invalid_type', expected: 'object', received: body === null ? 'null' : Array.isArray(body) ? 'array' : typeof body, path: [], message: 'Required' });
    }
    return undefined;
  }
  const v = (body as Record<string, unknown>)[name];
  if (typeof v === 'string') return v.trim();
  issues.push({
    code: 'invalid_type',
    expected: 'string',
    received: v === undefined ? 'undefined' : v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v,
    path: [name],
    message: v === undefined ? 'Required' : `Expected string, received ${v === null ? 'null' : typeof v}`,
  });
  return undefined;
}

/** Reads a body the way fastify (+ @fastify/formbody) would parse it, or the error reply it would send. */
async function readApiBody(req: IncomingMessage): Promise<{ body: unknown } | { reply: Reply }> {
  const raw = await readBody(req, API_BODY_LIMIT);
  if (raw === 'too-large') return { reply: error(413, 'Payload Too Large', 'Request body is too large') };
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (raw.length === 0 && contentType !== 'application/json') return { body: undefined };
  const text = raw.toString('utf8');
  switch (contentType) {
    case 'application/json':
      if (raw.length === 0) return { reply: error(400, 'Bad Request', "Body cannot be empty when content-type is set to 'application/json'") };
      try {
        return { body: JSON.parse(text) as unknown };
      } catch {
        return { reply: error(400, 'Bad Request', 'Body is not valid JSON but content-type is set to \'application/json\'') };
      }
    case 'application/x-www-form-urlencoded':
      return { body: Object.fromEntries(new URLSearchParams(text)) };
    case 'text/plain':
      return { body: text };
    default:
      return { reply: error(415, 'Unsupported Media Type', `Unsupported Media Type: ${contentType}`) };
  }
}

/** Collects the whole body; past `limit` keeps draining (so the reply can still be sent) but reports it. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > limit ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Sends a reply with @fastify/etag semantics: strong ETag of the body, 304 when If-None-Match equals it. */
function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.headersSent) return;
  const headers: Record<string, string | number> = {};
  let body = '';
  if (reply.raw !== undefined) {
    body = reply.raw;
    headers['content-type'] = 'text/plain; charset=utf-8';
  } else if (reply.json !== undefined) {
    body = JSON.stringify(reply.json);
    headers['content-type'] = 'application/json; charset=utf-8';
  }
  for (const [k, v] of Object.entries(reply.headers ?? {})) headers[k.toLowerCase()] = v;
  if (body.length > 0) {
    const etag = `"${createHash('sha1').update(body).digest('base64')}"`;
    headers['etag'] = etag;
    if (req.headers['if-none-match'] === etag) {
      delete headers['content-type'];
      res.writeHead(304, headers);
      res.end();
      return;
    }
    headers['content-length'] = Buffer.byteLength(body);
  }
  res.writeHead(reply.status, headers);
  res.end(body);
}

function internalError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  // Surface fake bugs in the test output instead of hiding them behind a generic 500.
  console.error('fake-infisical: handler failed', err);
  send(req, res, error(500, 'InternalServerError', 'Something went wrong'));
}
