/**
 * Role sync as the composition root sees it: built from the config when
 * SIDECAR_POSTGRES_PASSWORD_KEY is set, nothing otherwise. The passwords the role may have from
 * before this process: the one in the set on the volume (a restart, `once` after `run`), read from
 * the `files` output, then the last-known-good cache's (SIDECAR_CACHE_DIR) after a reboot.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { CacheFallback } from '../cache/index.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../timers.js';
import { createRoleSync, type RoleSync } from './role-sync.js';

export type { RoleSync, RoleSyncView } from './role-sync.js';
export { ROLE_CHECK_RESULTS } from './role-sync.js';

export function createRoleSyncFor(config: Config, cache: CacheFallback | undefined, clock?: Clock): RoleSync | undefined {
  const key = config.postgresPasswordKey;
  if (key === undefined || config.postgresTarget === undefined) return undefined;
  return createRoleSync({
    key,
    target: config.postgresTarget,
    timeoutMs: config.postgresTimeoutMs,
    whenUnreachable: config.postgresUnreachable,
    ...(clock ? { now: () => clock.now() } : {}),
    async knownElsewhere() {
      const live = await readLive(config, key);
      const latest = await cache?.latest();
      // Folders merge in order, the later one winning: the same rule the sync pass applies.
      const cached = latest?.folders.flatMap((folder) => folder.secrets).findLast((secret) => secret.key === key)?.value;
      return [live, cached].filter((value): value is string => value !== undefined);
    },
  });
}

/** The key's value in the live version's `files` output, if there is one; a link in the last step is not followed. */
async function readLive(config: Config, key: string): Promise<string | undefined> {
  const files = config.outputs.find((output) => output.format === 'files');
  if (!files) return undefined;
  try {
    const handle = await open(path.join(config.outputDir, files.path, key), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      // A password is small; anything near this size is not one the app could use in a URL anyway.
      const { size } = await handle.stat();
      return size > 1_048_576 ? undefined : await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}
