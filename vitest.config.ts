import { defineConfig } from 'vitest/config';

// Unit tests run in parallel; integration tests start real daemons (pdns_server, haproxy,
// PostgreSQL databases) on loopback and are given room to do so.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/fast-check.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
