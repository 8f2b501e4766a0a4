/** Role sync against PostgreSQL impostors that misbehave on purpose (test/helpers/hostile-pg.ts): every step ends within SIDECAR_POSTGRES_TIMEOUT. */
import { describe, expect, it } from 'vitest';
import { loginAs } from '../../src/postgres/connect.js';
import { createRoleSync } from '../../src/postgres/role-sync.js';
import { startHostile, type Mode } from '../helpers/hostile-pg.js';

const target = (port: number, sslMode: 'disable' | 'prefer' | 'require' = 'disable') => ({ host: '127.0.0.1', port, role: 'app', database: 'app', sslMode, sslRootCert: undefined });

async function timed<T>(p: Promise<T>, capMs: number): Promise<{ ms: number; value: T | 'HUNG' }> {
  const start = Date.now();
  const value = await Promise.race([p, new Promise<'HUNG'>((r) => setTimeout(() => r('HUNG'), capMs))]);
  return { ms: Date.now() - start, value };
}

describe('a hostile PostgreSQL against SIDECAR_POSTGRES_TIMEOUT=500ms', () => {
  for (const [mode, ssl] of [['silent', 'disable'], ['silent', 'prefer'], ['ssl-yes-then-silent', 'prefer'], ['ssl-yes-then-silent', 'require'], ['trust-hang-query', 'disable']] as [Mode, 'disable' | 'prefer' | 'require'][]) {
    it(`loginAs: ${mode} sslmode=${ssl} ends within the timeout`, async () => {
      const h = await startHostile(mode);
      try {
        const r = await timed(loginAs(target(h.port, ssl), 500)('pw-attack-1'), 5_000);
        expect(r.value).not.toBe('HUNG');
        if (r.value !== 'HUNG' && r.value.kind === 'in') {
          const end = await timed(r.value.session.end(), 5_000);
        }
      } finally {
        await h.close();
      }
    });
  }

  it('role sync: a trust server that never closes after Terminate does not hold beforePublish past the timeouts', async () => {
    const h = await startHostile('trust-no-close');
    try {
      const sync = createRoleSync({ key: 'POSTGRES_PASSWORD', target: target(h.port), timeoutMs: 500, whenUnreachable: 'hold', knownElsewhere: async () => [] });
      const r = await timed(sync.beforePublish(new Map([['POSTGRES_PASSWORD', 'pw-attack-new']]), true), 10_000);
      expect(r.value, 'beforePublish must end within a few timeouts').not.toBe('HUNG');
    } finally {
      await h.close();
    }
  }, 20_000);

  it('role sync: first login refused, later logins trust and never close (the "already" path): bounded', async () => {
    const h = await startHostile('refuse-then-trust-no-close');
    try {
      const sync = createRoleSync({ key: 'POSTGRES_PASSWORD', target: target(h.port), timeoutMs: 500, whenUnreachable: 'hold', knownElsewhere: async () => [] });
      const r = await timed(sync.beforePublish(new Map([['POSTGRES_PASSWORD', 'pw-attack-new']]), true), 10_000);
      expect(r.value).not.toBe('HUNG');
    } finally {
      await h.close();
    }
  }, 20_000);
});
