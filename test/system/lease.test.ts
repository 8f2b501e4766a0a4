/**
 * A lease holder really frozen by SIGSTOP, in its own process on the real clock (test/tools/lease-holder.mjs
 * running the lease code transpiled from src/). Real time is the point here: the freeze is the
 * kernel's, the takeover comes when the holder's file has really not been renewed for its TTL, and on
 * SIGCONT the holder's overdue renewal timer is what finds the takeover. The same rule on manual
 * clocks, exactly, is in test/lease.test.ts ("a holder frozen past its TTL finds the takeover …").
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildLeaseModule, startLeaseProcess } from '../helpers/lease-holder.js';
import { makeTempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

const leaseFiles = (dir: string) => readdirSync(dir).filter((entry) => entry.startsWith('..lease'));

describe('OutputLease between real processes on the real clock', () => {
  it('a holder frozen past its TTL is taken over, and on waking stops and says so instead of fighting', async () => {
    const modulePath = buildLeaseModule();
    const dir = makeTempDir();
    const frozen = startLeaseProcess([modulePath, dir, 'hold', '600', '0', 'system']);
    await waitFor(() => frozen.events[0]?.event === 'acquired', 'the first holder has the lease');
    frozen.child.kill('SIGSTOP');

    // The 600 ms TTL passes in real time, then a look every 200 ms: about a second, plus a process
    // start; 5 s leaves room for a machine ten times slower to start node.
    const recreated = startLeaseProcess([modulePath, dir, 'hold', '600', String(Number.POSITIVE_INFINITY), 'system']);
    await waitFor(() => recreated.events[0]?.event === 'acquired', 'the new holder takes over the expired lease', 5_000);
    frozen.child.kill('SIGCONT');

    expect(await frozen.exited).toBe(3);
    expect(frozen.events[1]).toMatchObject({ event: 'lost', code: 'SIDECAR_OUTPUT_LEASE_LOST', message: expect.stringContaining((recreated.events[0]!.holder as { instance: string }).instance) });
    // The new holder keeps it: its file is the only one, and it is still renewed.
    expect(leaseFiles(dir)).toEqual(['..lease-000002']);
    recreated.child.kill('SIGTERM');
    expect(await recreated.exited).toBe(0);
    expect(leaseFiles(dir)).toEqual([]);
  });
});
