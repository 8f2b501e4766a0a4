/** Edge cases of role sync's inputs: long passwords, odd URLs. */
import { describe, expect, it } from 'vitest';
import { parsePostgresUrl } from '../src/config/postgres.js';
import { loadConfig } from '../src/config/load.js';
import { checkableThroughPg } from '../src/postgres/connect.js';
import { passwordAsLibpqSends, scramSha256Verifier } from '../src/postgres/scram.js';
import { glitchtipSidecarEnv } from './fake-infisical/seed.js';

describe('role sync edge cases', () => {
  it('a long non-ASCII password is prepared without overflowing the stack', () => {
    for (const n of [50_000, 130_000, 200_000]) {
      const password = 'é'.repeat(n);
      expect(passwordAsLibpqSends(password)).toHaveLength(n);
      expect(checkableThroughPg(password)).toBe(true);
    }
    expect(() => scramSha256Verifier('é'.repeat(200_000))).not.toThrow();
  });

  it('SIDECAR_POSTGRES_URL: repeated parameters, a password anywhere, sockets are refused; IPv6 and quoted names parse', () => {
    const problem = (url: string) => {
      const parsed = parsePostgresUrl(url);
      return 'problem' in parsed ? parsed.problem : undefined;
    };
    expect(problem('postgres://app@db/app?sslmode=disable&sslmode=verify-full')).toMatch(/sslmode given more than once/);
    expect(problem('postgres://app:S3cretPw-in-url@db:5432/app')).toMatch(/holds a password/);
    expect(problem('postgres://app@db/app?password=S3cretPw-in-query')).toMatch(/unsupported parameter password/);
    expect(problem('postgres://app@/app?host=/var/run/postgresql')).toBeDefined(); // a unix socket: no host, refused
    expect(problem('postgres://app@db/app?sslmode=verify-full')).toMatch(/needs sslrootcert/);
    expect(parsePostgresUrl('postgres://app@[::1]:5433/app')).toMatchObject({ host: '::1', port: 5433 });
    expect(parsePostgresUrl("postgres://o'brien%20x@db/my%20db")).toMatchObject({ role: "o'brien x", database: 'my db' });
    for (const url of ['postgres://app:S3cretPw-in-url@db:5432/app', 'postgres://app@db/app?password=S3cretPw-in-query']) {
      expect(() => loadConfig({ ...glitchtipSidecarEnv('http://127.0.0.1:1', '/tmp/x'), SIDECAR_POSTGRES_PASSWORD_KEY: 'POSTGRES_PASSWORD', SIDECAR_POSTGRES_URL: url })).toThrow(
        expect.objectContaining({ message: expect.not.stringContaining('S3cretPw') }),
      );
    }
  });
});
