import { defineConfig } from 'vitest/config';

/**
 * The fast tier (`npm test`): unit and in-process integration tests against the fake Infisical, on
 * real files, with time on a clock the tests move (test/helpers/clock.ts). Real PostgreSQL, crashes,
 * torn reads, filesystem faults and soaks are the system tier (vitest.system.config.ts); Docker is
 * the e2e (test/e2e/run.sh).
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/system/**', 'test/e2e/**', 'node_modules/**'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // The tests mostly wait on I/O, not the CPU: more files at once than cores keeps two cores busy.
    maxWorkers: 4,
  },
});
