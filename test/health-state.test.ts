/**
 * HealthState rules: cache mode ends on a refusal from
 * Infisical and past the cache's age limit; lint warnings survive a pass that never got to the lint.
 */
import { describe, expect, it } from 'vitest';
import { SidecarError } from '../src/errors.js';
import { HealthState } from '../src/health/state.js';
import type { SyncOutcome } from '../src/sync/sync-once.js';

const base: SyncOutcome = {
  ok: true, startedAt: 0, finishedAt: 0, folders: [], error: undefined, missingKeys: [], keyCount: 1, keys: ['EMAIL_URL'],
  changed: true, revision: 1, previousRevision: 0, changedKeys: ['EMAIL_URL'], bytesWritten: 1, filesWritten: 1, skipped: [], overridden: [],
};
const unreachable = new SidecarError('SIDECAR_FETCH_UNAVAILABLE', 'request failed (ECONNREFUSED)', { retryable: true });

describe('HealthState', () => {
  it('cache mode turns stale past SIDECAR_CACHE_MAX_AGE, and failing on a refusal', () => {
    let now = 1_000_000;
    const state = new HealthState({ maxStalenessMs: 60_000, secretPaths: [], cacheMaxAgeMs: 3_600_000 }, () => now);
    state.record({ ...base, finishedAt: now, fromCache: { confirmedAt: now - 3_000_000, ageMs: 3_000_000, fetchError: unreachable } });
    expect(state.report()).toMatchObject({ status: 'cache', healthy: true, source: 'cache' });
    now += 700_000;
    expect(state.report()).toMatchObject({ status: 'stale', healthy: false });

    const refused = new HealthState({ maxStalenessMs: 60_000, secretPaths: [], cacheMaxAgeMs: 3_600_000 }, () => now);
    refused.record({ ...base, finishedAt: now, fromCache: { confirmedAt: now, ageMs: 0, fetchError: unreachable } });
    refused.record({ ...base, ok: false, finishedAt: now, changed: false, error: new SidecarError('SIDECAR_AUTH_INVALID_CREDENTIALS', 'POST …/login: 401 Invalid credentials') });
    expect(refused.report()).toMatchObject({ status: 'failing', healthy: false });
  });

  it('keeps the lint warnings of the set on the volume through a pass that failed before the lint', () => {
    const state = new HealthState({ maxStalenessMs: 60_000, secretPaths: [] });
    const finding = { key: 'EMAIL_URL', ruleId: 'url-userinfo-delimiter', severity: 'breaks', message: 'm', fix: 'f' } as const;
    state.record({ ...base, findings: [finding] } as SyncOutcome);
    state.record({ ...base, ok: false, changed: false, error: unreachable });
    expect(state.report().warnings).toEqual([{ key: 'EMAIL_URL', severity: 'breaks' }]);
  });
});
