import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicaLagMs } from '../../../src/partitions/index.js';
import { createCluster, type Cluster } from '../replication/harness.js';

/**
 * Auto failback waits until the returning site's replica has caught up (`max-lag-ms`). The lag it
 * reads, on real PostgreSQL: the age of the oldest change at a peer not yet applied there.
 */
describe('replica lag for auto failback (real PostgreSQL)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster('lagfb', ['a', 'b'], 'CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL)', ['orders']);
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  const lagOf = (site: string) => replicaLagMs(c.site(site).db, c.sites.filter((s) => s.name !== site).map((s) => ({ name: s.name, db: s.db })));

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
