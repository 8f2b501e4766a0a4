import { defineConfig } from 'vitest/config';

/**
 * The system tier (`npm run test:system`): real PostgreSQL servers, writer processes SIGKILLed
 * mid-write, reader processes across thousands of rewrites, a full tmpfs, soaks, and the
 * django-environ oracle. Slower, and the only tier with real-time bounds (each says why it needs one).
 */
export default defineConfig({
  test: {
    include: ['test/system/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    maxWorkers: 2,
    // The helpers' default clock is the real one here (test/helpers/clock.ts, tierClock).
    env: { SIDECAR_TEST_TIME: 'real' },
  },
});
