/**
 * PostgreSQL role sync (issue 16): a new value of SIDECAR_POSTGRES_PASSWORD_KEY becomes the role's
 * password *before* the set that carries it is published, so the app never holds a password the
 * database refuses. docs/postgres-role-sync.md has the operator's view; this is the decision.
 *
 * For a set about to be published, with `target` its value of the key:
 * 1. `target` is what PostgreSQL was last seen to accept → publish (no connection: the common pass).
 * 2. A wrong, random password is tried first: if PostgreSQL lets it in, pg_hba says `trust` and no
 *    check below would prove anything. The role's password is still set (for the day pg_hba
 *    changes) and the set published, with SIDECAR_POSTGRES_TRUST_AUTH as a finding.
 * 3. `target` logs in → the role has it already (rotated by hand, or our own change whose publish
 *    was cut short) → publish.
 * 4. Each password the role may have now — those this process published, newest first, then the
 *    last-known-good cache's (after a restart or a reboot) — is tried; the first that logs in sets
 *    the role's password to a SCRAM-SHA-256 verifier of `target` built here (the plaintext never
 *    reaches the server, nor its logs), then `target` must log in on a fresh connection → publish.
 * 5. Otherwise hold: SIDECAR_POSTGRES_ROLE_REFUSED (it knew passwords, none works),
 *    SIDECAR_POSTGRES_PASSWORD_UNKNOWN (it knew none), SIDECAR_POSTGRES_UNREACHABLE (no answer;
 *    with SIDECAR_POSTGRES_UNREACHABLE=publish that one publishes and step 4 runs at a later pass),
 *    SIDECAR_POSTGRES_FAILED (PostgreSQL answered with an error).
 *
 * What a hold means for the volume is the syncer's call (src/sync/sync-once.ts): with a set on it,
 * that set stays; on an empty volume (a reboot), holding would keep PostgreSQL — which waits for
 * this sidecar's health — down for good, so something is published and the change is retried.
 *
 * Passwords live in this process's memory only, as the set on the volume does; nothing here logs,
 * reports or stores one.
 */
import { randomBytes } from 'node:crypto';
import { describeTarget, type PostgresTarget } from '../config/postgres.js';
import { SidecarError, type ErrorCode } from '../errors.js';
export { ROLE_SYNC_CODES } from './codes.js';
import { checkableThroughPg, LoginFailure, loginAs, type LoginAs, type RoleSession } from './connect.js';
import { scramSha256Verifier } from './scram.js';


/** How each check ended, counted for /metrics (`infisical_sidecar_postgres_role_checks_total`). */
export const ROLE_CHECK_RESULTS = ['set', 'already', 'trust', 'refused', 'unknown', 'unreachable', 'failed'] as const;
export type RoleCheckResult = (typeof ROLE_CHECK_RESULTS)[number];

export type RoleDecision =
  /**
   * Publish. `pending`: published, but the role is not known to accept it yet (PostgreSQL did not
   * answer, or refused a password already live): the loop retries soon, /healthz is `degraded`.
   * `finding`: published, with something to report (trust authentication).
   */
  | { readonly publish: true; readonly pending?: SidecarError | undefined; readonly finding?: SidecarError | undefined }
  /** Hold the set. `previousKnown`: the role may have another password this process knows (the cache's after a reboot). */
  | { readonly publish: false; readonly error: SidecarError; readonly previousKnown: boolean };

/** What /healthz shows: names and states, no password, no digest of one. */
export interface RoleSyncView {
  readonly role: string;
  readonly key: string;
  /** in_step: PostgreSQL accepted the live password; pending: a change waits (see lastError); unchecked: not asked yet. */
  readonly state: 'in_step' | 'pending' | 'unchecked';
  readonly lastCheckAt: string | null;
  readonly lastResult: RoleCheckResult | null;
  /** When the sidecar last changed the role's password. */
  readonly lastChangeAt: string | null;
}

export interface RoleSync {
  readonly key: string;
  /**
   * Steps 1–5 for a set from Infisical; never throws. `changed`: the key's value differs from the
   * set on the volume (or the volume holds none). An unchanged value is checked too, once per
   * process, but never held: the live set already carries it.
   */
  beforePublish(snapshot: ReadonlyMap<string, string>, changed: boolean, signal?: AbortSignal): Promise<RoleDecision>;
  /**
   * The write after a `set` failed before the swap (the volume still serves the old password): set
   * the role back to the password it had, so the app is not locked out. Returns what went wrong, if
   * the role could not be set back. A no-op when the last check changed nothing.
   */
  rollback(signal?: AbortSignal): Promise<SidecarError | undefined>;
  /** The set now live (from Infisical or the cache): its password is one the role may have. */
  published(snapshot: ReadonlyMap<string, string>): void;
  view(): RoleSyncView;
  counts(): Readonly<Record<RoleCheckResult, number>>;
}

export interface RoleSyncOptions {
  readonly key: string;
  readonly target: PostgresTarget;
  readonly timeoutMs: number;
  readonly whenUnreachable: 'hold' | 'publish';
  /** Passwords the role may have from outside this process, newest first (the cache's last set); read only when needed. */
  readonly knownElsewhere: () => Promise<readonly string[]>;
  /** Tests give a login against a server they control; the default is `pg`. */
  readonly login?: LoginAs;
  readonly now?: () => number;
}

/** Longer passwords are refused before any connection; see check(). */
const MAX_PASSWORD_BYTES = 1024;

const FAILED_RESULTS: ReadonlySet<RoleCheckResult> = new Set(['refused', 'unknown', 'unreachable', 'failed']);

/** Passwords kept as candidates: the live one and a few before it (a hold, then another rotation). */
const KNOWN_LIMIT = 4;

export function createRoleSync(options: RoleSyncOptions): RoleSync {
  const now = options.now ?? Date.now;
  const login = options.login ?? loginAs(options.target, options.timeoutMs);
  const role = describeTarget(options.target);
  const counts = Object.fromEntries(ROLE_CHECK_RESULTS.map((result) => [result, 0])) as Record<RoleCheckResult, number>;
  /** A password PostgreSQL accepted (or was given) in this process. */
  let accepted: string | undefined;
  /** Passwords this process published, newest first. */
  let known: string[] = [];
  let lastCheckAt: number | undefined;
  let lastResult: RoleCheckResult | undefined;
  let lastChangeAt: number | undefined;
  let livePassword: string | undefined;

  // Retryable: `once` waits for it within its deadline. The others need an operator, so `once` exits
  // with their code at once; `run` retries every hold with backoff either way.
  const error = (code: ErrorCode, message: string, retryable: boolean) => new SidecarError(code, message, { retryable });

  /** The change the last check made, for `rollback`. */
  let lastSet: { from: string; to: string } | undefined;

  async function check(password: string, candidates: readonly string[], signal?: AbortSignal): Promise<{ result: RoleCheckResult; error?: SidecarError }> {
    const ended = async (session: RoleSession) => session.end();
    const notIn = (answer: { kind: 'unreachable' | 'failed'; reason: string }) =>
      answer.kind === 'unreachable'
        ? { result: 'unreachable' as const, error: error('SIDECAR_POSTGRES_UNREACHABLE', `PostgreSQL at ${role} did not answer, or took no connection now (${answer.reason}); the new ${options.key} waits`, true) }
        : { result: 'failed' as const, error: error('SIDECAR_POSTGRES_FAILED', `PostgreSQL at ${role} answered with an error (${answer.reason}); the new ${options.key} waits`, false) };

    const setOn = async (session: RoleSession) => {
      try {
        await session.setPassword(scramSha256Verifier(password));
      } finally {
        await ended(session);
      }
    };

    if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
      const why = `the new ${options.key} for ${role} is longer than ${MAX_PASSWORD_BYTES} bytes: PostgreSQL before 15 prepares no more, and every login hashes it 4096 times (a 1 MB one takes seconds per login); choose a shorter one (the previous set stays)`;
      return { result: 'failed', error: error('SIDECAR_POSTGRES_FAILED', why, false) };
    }
    if (!checkableThroughPg(password)) {
      const why = `the new ${options.key} cannot be checked against ${role}: it is empty, holds a NUL, or mixes non-ASCII characters with control, private-use or unassigned ones, which PostgreSQL clients hash differently; choose another (the previous set stays)`;
      return { result: 'failed', error: error('SIDECAR_POSTGRES_FAILED', why, false) };
    }
    try {
      // Step 2: would a wrong password get in?
      const probe = await login(randomBytes(24).toString('base64url'), signal);
      if (probe.kind === 'in') {
        await setOn(probe.session);
        return {
          result: 'trust',
          error: error('SIDECAR_POSTGRES_TRUST_AUTH', `PostgreSQL at ${role} let the role in with a wrong password (trust authentication); its password was set to the new ${options.key}, but nothing checks it`, false),
        };
      }
      if (probe.kind !== 'refused') return notIn(probe);

      // Step 3: already in place?
      const direct = await login(password, signal);
      if (direct.kind === 'in') {
        await ended(direct.session);
        return { result: 'already' };
      }
      if (direct.kind !== 'refused') return notIn(direct);

      // Step 4: with a password the role may have now.
      for (const candidate of candidates.filter(checkableThroughPg)) {
        const attempt = await login(candidate, signal);
        if (attempt.kind === 'refused') continue;
        if (attempt.kind !== 'in') return notIn(attempt);
        // The session that made the change stays open until a fresh login proves it: if that login
        // fails, the same session sets the old password back, so a hold never locks the app out.
        let after: Awaited<ReturnType<LoginAs>>;
        try {
          await attempt.session.setPassword(scramSha256Verifier(password));
          after = await login(password, signal);
          if (after.kind !== 'in') await attempt.session.setPassword(scramSha256Verifier(candidate));
        } finally {
          await ended(attempt.session);
        }
        if (after.kind === 'in') {
          await ended(after.session);
          lastSet = { from: candidate, to: password };
          lastChangeAt = now();
          return { result: 'set' };
        }
        return notIn(after.kind === 'refused' ? { kind: 'failed', reason: 'the new password was refused right after the change; the previous one was set back' } : after);
      }
      return candidates.length === 0
        ? {
            result: 'unknown',
            error: error(
              'SIDECAR_POSTGRES_PASSWORD_UNKNOWN',
              `PostgreSQL refuses the new ${options.key} for ${role}, and the sidecar knows no other password of the role (the volume was empty and no cache holds one): set it by hand once (docs/production.md §6)`,
              false,
            ),
          }
        : {
            result: 'refused',
            error: error(
              'SIDECAR_POSTGRES_ROLE_REFUSED',
              `PostgreSQL refuses ${role} with the new ${options.key} and with the ${candidates.length === 1 ? 'password' : `${candidates.length} passwords`} it had before: the role's password was changed by other means (or the role does not exist, or its password expired: VALID UNTIL); the previous set stays`,
              false,
            ),
          };
    } catch (thrown) {
      if (thrown instanceof LoginFailure) return notIn({ kind: thrown.kind === 'unreachable' ? 'unreachable' : 'failed', reason: thrown.reason });
      return notIn({ kind: 'failed', reason: thrown instanceof Error && thrown.message.startsWith('refusing') ? 'verifier-shape' : 'unexpected' });
    }
  }

  return {
    key: options.key,
    async beforePublish(snapshot, changed, signal) {
      lastSet = undefined;
      const password = snapshot.get(options.key);
      // Without the key there is nothing to keep in step (the required-keys check is where a missing one is caught).
      if (password === undefined) return { publish: true };
      if (password === accepted) {
        // Back to a password PostgreSQL accepted (a hold ended by putting the old value back in Infisical).
        if (lastResult !== undefined && FAILED_RESULTS.has(lastResult)) lastResult = 'already';
        return { publish: true };
      }
      const candidates = unique([...known, ...(await options.knownElsewhere().catch(() => []))]).filter((candidate) => candidate !== password);
      const { result, error: problem } = await check(password, candidates, signal);
      counts[result]++;
      lastCheckAt = now();
      lastResult = result;
      if (result === 'set' || result === 'already' || result === 'trust') {
        accepted = password;
        return { publish: true, finding: problem };
      }
      if (!changed || (result === 'unreachable' && options.whenUnreachable === 'publish')) return { publish: true, pending: problem };
      return { publish: false, error: problem!, previousKnown: candidates.length > 0 };
    },
    async rollback(signal) {
      const change = lastSet;
      lastSet = undefined;
      if (!change) return undefined;
      const failed = (reason: string) =>
        new SidecarError('SIDECAR_POSTGRES_FAILED', `the files could not be written after ${role} got the new ${options.key}, and setting the previous one back failed (${reason}): the app's new connections are refused until the files are written`);
      try {
        const session = await login(change.to, signal);
        if (session.kind !== 'in') return failed(session.kind === 'refused' ? 'refused' : session.reason);
        try {
          await session.session.setPassword(scramSha256Verifier(change.from));
        } finally {
          await session.session.end();
        }
        accepted = change.from;
        lastResult = 'already';
        return undefined;
      } catch (thrown) {
        return failed(thrown instanceof LoginFailure ? thrown.reason : 'unexpected');
      }
    },
    published(snapshot) {
      const password = snapshot.get(options.key);
      livePassword = password;
      if (password === undefined) return;
      known = unique([password, ...known]).slice(0, KNOWN_LIMIT);
    },
    view: () => ({
      role,
      key: options.key,
      state: lastResult === undefined ? 'unchecked' : FAILED_RESULTS.has(lastResult) || livePassword !== accepted ? 'pending' : 'in_step',
      lastCheckAt: iso(lastCheckAt),
      lastResult: lastResult ?? null,
      lastChangeAt: iso(lastChangeAt),
    }),
    counts: () => ({ ...counts }),
  };
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function iso(time: number | undefined): string | null {
  return time === undefined ? null : new Date(time).toISOString();
}
