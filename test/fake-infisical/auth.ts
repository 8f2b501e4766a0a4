/**
 * Universal Auth for the fake: identities, lockout, and identity access tokens.
 *
 * Tokens are real HS256 JWTs signed with a per-server random key, so the fake can tell a malformed or
 * foreign token (403 TokenError, like jwt.verify on the server) from one it issued and then forgot
 * (401). They start with `eyJ`, never with `st.` (the CLI treats `st.` as a service token).
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

export type ExpiredTokenForm = '401' | '403';

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
  tokenTtlSeconds: number;
  tokenMaxTtlSeconds: number;
  expiredTokenForm: ExpiredTokenForm;
  now: () => number;
}

interface Identity {
  clientSecret: string;
  revoked: boolean;
  failures: number[];
  lockedUntil: number;
}

/** One login session: renewals issue new JWTs in the same lineage (same jti, shared MaxTTL budget). */
interface Lineage {
  jti: string;
  clientId: string;
  startedAt: number;
  revoked: boolean;
}

interface IssuedToken {
  lineage: Lineage;
  /** null when the TTL is 0 (no expiry in this fake). */
  expiresAt: number | null;
  forcedExpiry: ExpiredTokenForm | null;
}

const LOCKOUT_THRESHOLD = 3;
const LOCKOUT_WINDOW_MS = 30_000;
const LOCKOUT_DURATION_MS = 300_000;

const MSG_EXPIRED = 'Your token has expired. Please re-authenticate.';
const MSG_MALFORMED = 'The provided access token is malformed. Please use a valid token or generate a new one and try again.';
const MSG_LEGACY_NOT_FOUND = 'No identity access token found';

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
    const expiredForm = this.expiredForm(found.token);
    if (expiredForm === '403') return tokenError(MSG_EXPIRED);
    if (expiredForm === '401') return unauthorized(MSG_LEGACY_NOT_FOUND);
    if (found.token.lineage.revoked) {
      return unauthorized(this.opts.expiredTokenForm === '401' ? MSG_LEGACY_NOT_FOUND : 'Failed to authorize: token has been revoked');
    }
    return { ok: true, clientId: found.token.lineage.clientId };
  }

  /** Newer-server semantics: the new JWT's TTL is cut to the remaining MaxTTL budget. */
  renew(token: string): TokenGrant | AuthFailure {
    const found = this.verify(token);
    if (!found.ok) return found;
    const expiredForm = this.expiredForm(found.token);
    if (expiredForm === '403') return tokenError(MSG_EXPIRED);
    if (expiredForm === '401') return unauthorized('Failed to renew MI access token due to TTL expiration');
    const { lineage } = found.token;
    if (lineage.revoked) return unauthorized('Cannot renew: token has been revoked');
    let ttl = this.opts.tokenTtlSeconds;
    const maxTtl = this.opts.tokenMaxTtlSeconds;
    if (maxTtl > 0) {
      const remaining = Math.floor((lineage.startedAt + maxTtl * 1000 - this.opts.now()) / 1000);
      if (remaining <= 0) return unauthorized('Cannot renew: identity access token has reached its max TTL');
      ttl = ttl === 0 ? remaining : Math.min(ttl, remaining);
    }
    return this.issue(lineage, ttl);
  }

  revoke(token: string): { ok: true } | AuthFailure {
    const found = this.verify(token);
    if (!found.ok) return found;
    if (this.expiredForm(found.token) !== null) return tokenError(MSG_EXPIRED);
    found.token.lineage.revoked = true;
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
    if (ttlSeconds > 0) claims['exp'] = iat + Math.ceil(ttlSeconds);
    const accessToken = this.sign(claims);
    this.tokens.set(accessToken, {
      lineage,
      expiresAt: ttlSeconds > 0 ? now + ttlSeconds * 1000 : null,
      forcedExpiry: null,
    });
    return { accessToken, expiresIn: ttlSeconds, accessTokenMaxTTL: this.opts.tokenMaxTtlSeconds, tokenType: 'Bearer' };
  }

  private expiredForm(token: IssuedToken): ExpiredTokenForm | null {
    if (token.forcedExpiry !== null) return token.forcedExpiry;
    if (token.expiresAt !== null && this.opts.now() >= token.expiresAt) return this.opts.expiredTokenForm;
    return null;
  }

  /** Signature first, then our records, like jwt.verify followed by the token lookup. */
  private verify(token: string): { ok: true; token: IssuedToken } | AuthFailure {
    const parts = token.split('.');
    const [header, payload, signature] = parts;
    if (parts.length !== 3 || header === undefined || payload === undefined || signature === undefined || signature === '') {
      return tokenError(MSG_MALFORMED);
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
