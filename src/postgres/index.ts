/**
 * Role sync as the composition root sees it: built from the config when
 * SIDECAR_POSTGRES_PASSWORD_KEY is set, nothing otherwise. The passwords the role may have from
 * before this process come from the last-known-good cache (SIDECAR_CACHE_DIR), when there is one.
 */
import type { CacheFallback } from '../cache/index.js';
import type { Config } from '../config/schema.js';
import { createRoleSync, type RoleSync } from './role-sync.js';

export type { RoleSync, RoleSyncView } from './role-sync.js';
export { ROLE_CHECK_RESULTS } from './role-sync.js';

export function createRoleSyncFor(config: Config, cache: CacheFallback | undefined): RoleSync | undefined {
  const key = config.postgresPasswordKey;
  if (key === undefined || config.postgresTarget === undefined) return undefined;
  return createRoleSync({
    key,
    target: config.postgresTarget,
    timeoutMs: config.postgresTimeoutMs,
    whenUnreachable: config.postgresUnreachable,
    async knownElsewhere() {
      const latest = await cache?.latest();
      // Folders merge in order, the later one winning: the same rule the sync pass applies.
      const value = latest?.folders.flatMap((folder) => folder.secrets).findLast((secret) => secret.key === key)?.value;
      return value === undefined ? [] : [value];
    },
  });
}
