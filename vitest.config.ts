import { defineConfig } from 'vitest/config';

// Unit tests run in parallel; integration tests start real daemons (pdns_server, haproxy,
// PostgreSQL databases) on loopback and are given room to do so: a bound for a hung test, never a
// speed check (two suites side by side with other work made CLI-heavy tests pass 60 s).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/fast-check.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
