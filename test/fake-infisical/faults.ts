/**
 * Fault injection rules. Rules are checked in the order they were added; every matching `latency`
 * rule adds its delay, and the first matching rule of any other kind decides the response. A rule
 * with `times` is consumed on each match and disappears when it reaches zero.
 */
import { normalizePath } from './store.js';

export type FaultRoute = 'login' | 'renew' | 'revoke' | 'list' | 'any';

export interface FaultMatch {
  /** Which API route the rule applies to; default 'any' (never the /__fake control API). */
  route?: FaultRoute;
  /** Only list requests whose normalized `secretPath` equals this. */
  path?: string;
  /** How many matching requests the rule affects; default unlimited. */
  times?: number;
}

export type FaultAction =
  /** Answer with this status. `body` defaults to the standard envelope; a string body is sent as-is. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Delay, then carry on (with the next terminal rule or the normal handler). */
  | { kind: 'latency'; ms: number }
  /** Never answer; the socket stays open until the client gives up or the server closes. */
  | { kind: 'hang' }
  /** Destroy the socket without a response. */
  | { kind: 'reset' }
  /** 200 with a JSON content type and a truncated, unparseable body. */
  | { kind: 'malformed' }
  /** The real 429 envelope plus a `retry-after` header. */
  | { kind: 'rateLimit'; retryAfterSeconds: number }
  /**
   * A server that echoes credentials: `status` with the standard envelope, its message `message` with
   * `{credential}` replaced by what the request carried (a login's client secret, else the bearer token).
   */
  | { kind: 'echoCredential'; status: number; message: string };

export type FaultRule = FaultMatch & FaultAction;

export interface FaultControl {
  add(rule: FaultRule): void;
  clear(): void;
  /** A snapshot of the active rules (with remaining `times`). */
  list(): FaultRule[];
}

export interface FaultDecision {
  delayMs: number;
  action: Exclude<FaultAction, { kind: 'latency' }> | null;
}

export class Faults implements FaultControl {
  private rules: FaultRule[] = [];

  add(rule: FaultRule): void {
    this.rules.push(parseFaultRule(rule));
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Finds and consumes the rules that apply to one request. */
  decide(route: Exclude<FaultRoute, 'any'> | 'other', secretPath: string | undefined): FaultDecision {
    const decision: FaultDecision = { delayMs: 0, action: null };
    for (const rule of [...this.rules]) {
      if (rule.route !== undefined && rule.route !== 'any' && rule.route !== route) continue;
      if (rule.path !== undefined && (secretPath === undefined || rule.path !== secretPath)) continue;
      if (rule.kind !== 'latency' && decision.action !== null) continue;
      this.consume(rule);
      if (rule.kind === 'latency') decision.delayMs += rule.ms;
      else decision.action = stripMatch(rule);
    }
    return decision;
  }

  private consume(rule: FaultRule): void {
    if (rule.times === undefined) return;
    rule.times -= 1;
    if (rule.times <= 0) this.rules = this.rules.filter((r) => r !== rule);
  }
}

function stripMatch(rule: FaultRule): Exclude<FaultAction, { kind: 'latency' }> {
  switch (rule.kind) {
    case 'status': {
      const action: FaultAction = { kind: 'status', status: rule.status };
      if (rule.body !== undefined) action.body = rule.body;
      if (rule.headers !== undefined) action.headers = rule.headers;
      return action;
    }
    case 'rateLimit':
      return { kind: 'rateLimit', retryAfterSeconds: rule.retryAfterSeconds };
    case 'echoCredential':
      return { kind: 'echoCredential', status: rule.status, message: rule.message };
    case 'latency':
      throw new Error('unreachable: latency is not terminal');
    default:
      return { kind: rule.kind };
  }
}

const ROUTES: readonly string[] = ['login', 'renew', 'revoke', 'list', 'any'];

/** Validates a rule (from code or the control API) and returns a private copy with a normalized path. */
export function parseFaultRule(input: unknown): FaultRule {
  if (typeof input !== 'object' || input === null) throw new Error('fault rule must be an object');
  const r = input as Record<string, unknown>;
  const match: FaultMatch = {};
  if (r['route'] !== undefined) {
    if (typeof r['route'] !== 'string' || !ROUTES.includes(r['route'])) throw new Error(`fault route must be one of ${ROUTES.join(', ')}`);
    match.route = r['route'] as FaultRoute;
  }
  if (r['path'] !== undefined) {
    if (typeof r['path'] !== 'string') throw new Error('fault path must be a string');
    match.path = normalizePath(r['path']);
  }
  if (r['times'] !== undefined) {
    if (!Number.isInteger(r['times']) || (r['times'] as number) < 1) throw new Error('fault times must be a positive integer');
    match.times = r['times'] as number;
  }
  const nonNegative = (name: string): number => {
    const v = r[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`fault ${name} must be a non-negative number`);
    return v;
  };
  const httpStatus = (): number => {
    const status = r['status'];
    if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 599) throw new Error('fault status must be an HTTP status code');
    return status as number;
  };
  switch (r['kind']) {
    case 'status': {
      const rule: FaultRule = { ...match, kind: 'status', status: httpStatus() };
      if (r['body'] !== undefined) rule.body = r['body'];
      if (r['headers'] !== undefined) {
        const h = r['headers'];
        if (typeof h !== 'object' || h === null || Object.values(h).some((v) => typeof v !== 'string')) {
          throw new Error('fault headers must map names to strings');
        }
        rule.headers = { ...(h as Record<string, string>) };
      }
      return rule;
    }
    case 'latency':
      return { ...match, kind: 'latency', ms: nonNegative('ms') };
    case 'rateLimit':
      return { ...match, kind: 'rateLimit', retryAfterSeconds: Math.ceil(nonNegative('retryAfterSeconds')) };
    case 'echoCredential':
      if (typeof r['message'] !== 'string') throw new Error('fault message must be a string');
      return { ...match, kind: 'echoCredential', status: httpStatus(), message: r['message'] };
    case 'hang':
    case 'reset':
    case 'malformed':
      return { ...match, kind: r['kind'] };
    default:
      throw new Error('fault kind must be one of status, latency, hang, reset, malformed, rateLimit, echoCredential');
  }
}
