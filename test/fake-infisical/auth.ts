/**
 * Universal Auth for the fake: identities, lockout, and identity access tokens.
 *
 * Tokens are real HS256 JWTs signed with a per-server random key, so the fake can tell a malformed or
 * foreign token (403 TokenError, like jwt.verify on the server) from one it issued and then forgot
 * (401). They start with `eyJ`, never with `st.` (the CLI treats `st.` as a service token).
 *
 * The two server generations keep tokens differently (docs/infisical-api.md §1.3, §8):
 * - `current`: the JWT's `exp` is the end of its TTL, so expiry is a 403 TokenError from jwt.verify;
 *   renew issues a new JWT whose TTL is cut to the remaining max-TTL budget.
 * - `v2024`: the JWT's `exp` is the end of the max TTL; the TTL is a database row checked after the
 *   signature. A token past its TTL gets 401 "…due to TTL expiration" once (the row is deleted),
 *   then 401 "No identity access token found"; past its max TTL, 403 TokenError. Renew returns the
 *   same token with the window moved, until the next window would pass the max TTL.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ExpiredTokenForm, ServerGeneration } from './generation.js';

export type { ExpiredTokenForm } from './generation.js';

export interface TokenGrant {
  accessToken: string;
  expiresIn: number;
  accessTokenMaxTTL: number;
  tokenType: 'Bearer';
}

/** An error the HTTP layer turns into the standard envelope. */
export interface AuthFailure {
  ok: false;
  status: number;
  error: string;
  message: string;
}

export interface AuthOptions {
  generation: ServerGeneration;
  tokenTtlSeconds: number;
  tokenMaxTtlSeconds: number;
  /** How a token past its TTL fails on `current`; `v2024` always answers as that server did. */
  expiredTokenForm: ExpiredTokenForm;
  now: () => number;
}

interface Identity {
  clientSecret: string;
  revoked: boolean;
  failures: number[];
  lockedUntil: number;
}

/** One login session: renewals stay in the same lineage (same jti, shared MaxTTL budget). */
interface Lineage {
  jti: string;
  clientId: string;
  startedAt: number;
  /** Revoked; on `v2024` also "row deleted" (past its TTL, or refused a renewal past its max TTL). */
  revoked: boolean;
}

interface IssuedToken {
  lineage: Lineage;
  /** End of the current TTL window, epoch ms; null when the TTL is 0. `v2024` renewals move it. */
  ttlEndsAt: number | null;
  /** The JWT's `exp`, epoch ms; null when it has none. The TTL's end on `current`, the max TTL's on `v2024`. */
  jwtExpiresAt: number | null;
  forcedExpiry: ExpiredTokenForm | null;
}

const LOCKOUT_THRESHOLD = 3;
const LOCKOUT_WINDOW_MS = 30_000;
const LOCKOUT_DURATION_MS = 300_000;

const MSG_EXPIRED = 'Your token has expired. Please re-authenticate.';
const MSG_MALFORMED = 'The provided access token is malformed. Please use a valid token or generate a new one and try again.';
/** jsonwebtoken's own text, which the late-2024 error handler passed through unchanged. */
const MSG_V2024_MALFORMED = 'invalid token';
const MSG_LEGACY_NOT_FOUND = 'No identity access token found';
const MSG_LEGACY_TTL_EXPIRED = 'Failed to renew MI access token due to TTL expiration';

export class Auth {
  private readonly key = randomBytes(32);
  private readonly identities = new Map<string, Identity>();
  private readonly tokens = new Map<string, IssuedToken>();

  constructor(private readonly opts: AuthOptions) {}

  addIdentity(clientId: string, clientSecret: string): void {
    this.identities.set(clientId, { clientSecret, revoked: false, failures: [], lockedUntil: 0 });
  }

  revokeIdentity(clientId: string): void {
    const identity = this.identities.get(clientId);
    if (identity !== undefined) identity.revoked = true;
  }

  clearIdentities(): void {
    this.identities.clear();
  }

  /** Inputs are already trimmed by the caller (the route schema trims). */
  login(clientId: string, clientSecret: string): TokenGrant | AuthFailure {
    const identity = this.identities.get(clientId);
    const now = this.opts.now();
    if (identity === undefined && this.opts.generation === 'v2024') {
      return { ok: false, status: 404, error: 'NotFound', message: 'No identity with specified client ID was found' };
    }
    if (identity === undefined || identity.revoked) return unauthorized('Invalid credentials');
    if (identity.lockedUntil > now) {
      return unauthorized('This identity auth method is temporarily locked, please try again later');
    }
    if (!safeEqual(identity.clientSecret, clientSecret)) {
      identity.failures = identity.failures.filter((t) => now - t < LOCKOUT_WINDOW_MS);
      identity.failures.push(now);
      if (identity.failures.length >= LOCKOUT_THRESHOLD) {
        identity.lockedUntil = now + LOCKOUT_DURATION_MS;
        identity.failures = [];
      }
      return unauthorized('Invalid credentials');
    }
    identity.failures = [];
    const lineage: Lineage = { jti: randomUUID(), clientId, startedAt: now, revoked: false };
    return this.issue(lineage, this.opts.tokenTtlSeconds);
  }

  /** Bearer check for data routes. */
  authenticate(token: string): { ok: true; clientId: string } | AuthFailure {
    const found = this.verify(token);
    if (!found.ok) return found;
    const refusal = this.opts.generation === 'v2024' ? this.refuseV2024(found.token) : this.refuseCurrent(found.token, 'use');
    return refusal ?? { ok: true, clientId: found.token.lineage.clientId };
  }

  renew(token: string): TokenGrant | AuthFailure {
    const found = this.verify(token);
    if (!found.ok) return found;
    if (this.opts.generation === 'v2024') return this.refuseV2024(found.token) ?? this.renewV2024(token, found.token);
    return this.refuseCurrent(found.token, 'renew') ?? this.renewCurrent(found.token.lineage);
  }

  revoke(token: string): { ok: true } | AuthFailure {
    const found = this.verify(token);
    if (!found.ok) return found;
    const issued = found.token;
    if (this.opts.generation === 'v2024') {
      if (this.pastJwtExpiry(issued)) return tokenError(MSG_EXPIRED);
      if (issued.lineage.revoked) return unauthorized(MSG_LEGACY_NOT_FOUND);
    } else if (this.expiredForm(issued) !== null) {
      return tokenError(MSG_EXPIRED);
    }
    issued.lineage.revoked = true;
    return { ok: true };
  }

  /** Every token issued so far fails from now on; tokens issued later are unaffected. */
  expireAll(form: ExpiredTokenForm): void {
    for (const t of this.tokens.values()) t.forcedExpiry = form;
  }

  private issue(lineage: Lineage, ttlSeconds: number): TokenGrant {
    const now = this.opts.now();
    const iat = Math.floor(now / 1000);
    const claims: Record<string, unknown> = {
      identityId: lineage.clientId,
      clientSecretId: lineage.clientId,
      identityAccessTokenId: lineage.jti,
      authTokenType: 'identityAccessToken',
      iat,
      jti: lineage.jti,
      // A nonce keeps two tokens issued in the same second distinct.
      nonce: randomBytes(8).toString('hex'),
    };
    const jwtLifetimeSeconds = this.opts.generation === 'v2024' ? this.opts.tokenMaxTtlSeconds : ttlSeconds;
    if (jwtLifetimeSeconds > 0) claims['exp'] = iat + Math.ceil(jwtLifetimeSeconds);
    const accessToken = this.sign(claims);
    this.tokens.set(accessToken, {
      lineage,
      ttlEndsAt: ttlSeconds > 0 ? now + ttlSeconds * 1000 : null,
      jwtExpiresAt: jwtLifetimeSeconds > 0 ? now + jwtLifetimeSeconds * 1000 : null,
      forcedExpiry: null,
    });
    return { accessToken, expiresIn: ttlSeconds, accessTokenMaxTTL: this.opts.tokenMaxTtlSeconds, tokenType: 'Bearer' };
  }

  /** `current`: expiry in the configured form, then revocation. */
  private refuseCurrent(token: IssuedToken, purpose: 'use' | 'renew'): AuthFailure | null {
    const expiredForm = this.expiredForm(token);
    if (expiredForm === '403') return tokenError(MSG_EXPIRED);
    if (expiredForm === '401') return unauthorized(purpose === 'use' ? MSG_LEGACY_NOT_FOUND : MSG_LEGACY_TTL_EXPIRED);
    if (!token.lineage.revoked) return null;
    if (purpose === 'renew') return unauthorized('Cannot renew: token has been revoked');
    return unauthorized(this.opts.expiredTokenForm === '401' ? MSG_LEGACY_NOT_FOUND : 'Failed to authorize: token has been revoked');
  }

  /** `current`: the new JWT's TTL is cut to the remaining MaxTTL budget. */
  private renewCurrent(lineage: Lineage): TokenGrant | AuthFailure {
    let ttl = this.opts.tokenTtlSeconds;
    const maxTtl = this.opts.tokenMaxTtlSeconds;
    if (maxTtl > 0) {
      const remaining = Math.floor((lineage.startedAt + maxTtl * 1000 - this.opts.now()) / 1000);
      if (remaining <= 0) return unauthorized('Cannot renew: identity access token has reached its max TTL');
      ttl = ttl === 0 ? remaining : Math.min(ttl, remaining);
    }
    return this.issue(lineage, ttl);
  }

  /**
   * `v2024`, for data routes and renew alike: jwt.verify (max TTL) first, then the token row: gone →
   * not found; past its TTL → deleted, and this one answer says why.
   */
  private refuseV2024(token: IssuedToken): AuthFailure | null {
    if (token.forcedExpiry === '403' || this.pastJwtExpiry(token)) return tokenError(MSG_EXPIRED);
    if (token.lineage.revoked) return unauthorized(MSG_LEGACY_NOT_FOUND);
    if (token.forcedExpiry === '401' || (token.ttlEndsAt !== null && this.opts.now() >= token.ttlEndsAt)) {
      token.lineage.revoked = true;
      return unauthorized(MSG_LEGACY_TTL_EXPIRED);
    }
    return null;
  }

  /** `v2024`: the same token, its TTL window moved, unless the new window would pass the max TTL. */
  private renewV2024(accessToken: string, token: IssuedToken): TokenGrant | AuthFailure {
    const now = this.opts.now();
    const ttlMs = this.opts.tokenTtlSeconds * 1000;
    const maxTtl = this.opts.tokenMaxTtlSeconds;
    if (maxTtl > 0 && now + ttlMs > token.lineage.startedAt + maxTtl * 1000) {
      token.lineage.revoked = true;
      return unauthorized('Failed to renew MI access token past its Max TTL expiration');
    }
    token.ttlEndsAt = ttlMs > 0 ? now + ttlMs : null;
    return { accessToken, expiresIn: this.opts.tokenTtlSeconds, accessTokenMaxTTL: maxTtl, tokenType: 'Bearer' };
  }

  private pastJwtExpiry(token: IssuedToken): boolean {
    return token.jwtExpiresAt !== null && this.opts.now() >= token.jwtExpiresAt;
  }

  /** `current`: a forced expiry, or the TTL (= the JWT's exp) ran out, in the configured form. */
  private expiredForm(token: IssuedToken): ExpiredTokenForm | null {
    if (token.forcedExpiry !== null) return token.forcedExpiry;
    if (this.pastJwtExpiry(token)) return this.opts.expiredTokenForm;
    return null;
  }

  /** Signature first, then our records, like jwt.verify followed by the token lookup. */
  private verify(token: string): { ok: true; token: IssuedToken } | AuthFailure {
    const parts = token.split('.');
    const [header, payload, signature] = parts;
    if (parts.length !== 3 || header === undefined || payload === undefined || signature === undefined || signature === '') {
      return tokenError(this.opts.generation === 'v2024' ? MSG_V2024_MALFORMED : MSG_MALFORMED);
    }
    const expected = createHmac('sha256', this.key).update(`${header}.${payload}`).digest('base64url');
    if (!safeEqual(expected, signature)) return tokenError('invalid signature');
    const issued = this.tokens.get(token);
    if (issued === undefined) return unauthorized(MSG_LEGACY_NOT_FOUND);
    return { ok: true, token: issued };
  }

  private sign(claims: Record<string, unknown>): string {
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const signature = createHmac('sha256', this.key).update(`${header}.${payload}`).digest('base64url');
    return `${header}.${payload}.${signature}`;
  }
}

function unauthorized(message: string): AuthFailure {
  return { ok: false, status: 401, error: 'UnauthorizedError', message };
}

function tokenError(message: string): AuthFailure {
  return { ok: false, status: 403, error: 'TokenError', message };
}

/** Constant-time compare; a length mismatch is a plain mismatch. */
function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
