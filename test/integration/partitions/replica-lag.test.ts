import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { ReplicaLagReporter } from '../../../src/db-triggers/lag-reporter.js';
import { realTimers } from '../../../src/shared/timers.js';
import { replicaLagMs } from '../../../src/partitions/index.js';
import { createCluster, type Cluster } from '../replication/harness.js';

/**
 * A site's replica lag on real PostgreSQL: the age of the oldest change at a peer not yet applied
 * there. Auto failback waits on it (`max-lag-ms`), and the heartbeats carry it (ReplicaLagReporter).
 * One pair of databases serves every test; each test leaves them synced.
 */
let c: Cluster;
beforeAll(async () => {
  c = await createCluster('lagfb', ['a', 'b'], 'CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL)', [
    'orders',
  ]);
}, 60_000);
afterAll(async () => {
  await c?.close();
});

describe('replica lag for auto failback (real PostgreSQL)', () => {
  const lagOf = (site: string) =>
    replicaLagMs(
      c.site(site).db,
      c.sites.filter((s) => s.name !== site).map((s) => ({ name: s.name, db: s.db })),
    );

  it('0 when caught up; grows with the age of changes written at a peer while the site applies nothing; 0 again after sync', async () => {
    expect(await lagOf('b')).toBe(0);
    await c.site('a').db.query('INSERT INTO orders SELECT g, 0 FROM generate_series(1, 100) g');
    const t0 = performance.now();
    const first = (await lagOf('b'))!;
    expect(first).toBeGreaterThanOrEqual(0);
    // wait (without a blind sleep) until the pending change is older than a 300 ms max-lag-ms
    let lag = first;
    while (lag <= 300 && performance.now() - t0 < 10_000) lag = (await lagOf('b'))!;
    expect(lag).toBeGreaterThan(300);
    expect(await lagOf('a')).toBe(0); // a has nothing to apply from b
    await c.syncAll();
    expect(await lagOf('b')).toBe(0);
  });

  it('unknown (undefined) when a peer cannot be read: auto failback waits', async () => {
    expect(await replicaLagMs(c.site('b').db, [{ name: 'a', db: null }])).toBeUndefined();
  });
});

describe('ReplicaLagReporter: the lag heartbeats carry (real PostgreSQL)', () => {
  const configAt = (site: string, dbs: Record<string, string>) =>
    parseConfig(
      `site: ${site}
sites: [{ name: a }, { name: b }]
zones: [{ name: example.com, records: ["@ SOA ns1 hostmaster 1 3600 600 86400 60"] }]
replication:
  tables: [orders]
  sites: { ${Object.entries(dbs)
    .map(([s, url]) => `${s}: { db: "${url}" }`)
    .join(', ')} }
`,
      `${site}.yaml`,
    );

  it("reads b's lag behind a from both databases; 0 when caught up", async () => {
    const loaded = configAt('b', { a: c.site('a').url, b: c.site('b').url });
    expect(ReplicaLagReporter.applies(loaded)).toBe(true);
    const reporter = new ReplicaLagReporter(loaded, { timers: realTimers, logger: pino({ level: 'silent' }) });
    try {
      expect(await reporter.read()).toBe(0);
      await c.site('a').db.query(`INSERT INTO orders VALUES (1000, 1)`);
      let lag = (await reporter.read())!;
      const t0 = performance.now();
      while (lag < 50 && performance.now() - t0 < 10_000) lag = (await reporter.read())!;
      expect(lag).toBeGreaterThanOrEqual(50);
      expect(reporter.lagMs).toBe(lag);
      await c.syncAll();
      expect(await reporter.read()).toBe(0);
    } finally {
      await reporter.stop();
    }
  });

  it('unknown when a database cannot be reached; not used at all with embedded databases', async () => {
    const loaded = configAt('b', { a: 'postgres://nobody@127.0.0.1:1/none', b: c.site('b').url });
    const reporter = new ReplicaLagReporter(loaded, { timers: realTimers, logger: pino({ level: 'silent' }) });
    try {
      expect(await reporter.read()).toBeUndefined();
    } finally {
      await reporter.stop();
    }
    expect(ReplicaLagReporter.applies(configAt('b', { a: 'pglite:memory', b: c.site('b').url }))).toBe(false);
  });
});
