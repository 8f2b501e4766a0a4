/** Role sync's error codes, in a module of their own: the sync log names them without loading the PostgreSQL client. */
import type { ErrorCode } from '../errors.js';

/** The codes a role check reports (a hold, a pending change, a finding). */
export const ROLE_SYNC_CODES: ReadonlySet<ErrorCode> = new Set([
  'SIDECAR_POSTGRES_UNREACHABLE',
  'SIDECAR_POSTGRES_ROLE_REFUSED',
  'SIDECAR_POSTGRES_PASSWORD_UNKNOWN',
  'SIDECAR_POSTGRES_FAILED',
  'SIDECAR_POSTGRES_TRUST_AUTH',
]);
