import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { installOwnerWins, ownerWinsPolicy, writeOwnership } from '../../../src/db-triggers/owner-wins.js';
import { initialOwnership, rulesOf, type Ownership } from '../../../src/partitions/ownership.js';
import { TWO_SITES } from '../../unit/partitions/fixtures.js';
import { createCluster, digest, type Cluster } from '../replication/harness.js';

/**
 * owner-wins on real PostgreSQL, two sites: the epoch is stamped into each row by a trigger at
 * write time, ships with the change, and decides conflicts identically at both sites.
 */
const text = `${TWO_SITES.replace('site: a\n', 'site: a\nreplication:\n  tables: [orders]\n  sites: { a: { db: "postgres://x@127.0.0.1/a" }, b: { db: "postgres://x@127.0.0.1/b" } }\n')}  tables: { orders: tenant_id }\n`;
const partitions = parseConfig(text, 'x.yaml').config.partitions!;
const initial = [...initialOwnership(rulesOf(partitions, ['a', 'b']), Date.now()).values()];
const p1 = initial.find((o) => o.partition === 'p1')!;

describe('owner-wins on real PostgreSQL', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster(
      'ownerwins',
      ['a', 'b'],
      'CREATE TABLE orders (id int PRIMARY KEY, tenant_id text NOT NULL, qty int NOT NULL)',
      ['orders'],
      {
        policy: ownerWinsPolicy({ partitions, fallback: { kind: 'latest' } }),
      },
    );
    for (const s of c.sites) await installOwnerWins(s.db, partitions, initial);
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  const row = async (site: string, id: number) =>
    (
      await c
        .site(site)
        .db.query<{ qty: number; owner_epoch: string | null }>('SELECT qty, owner_epoch FROM orders WHERE id = $1', [
          id,
        ])
    ).rows[0];

  it("a write is stamped with the partition's epoch at write time; rows outside partitions are not", async () => {
    await c.site('a').db.query(`INSERT INTO orders VALUES (1, 't1', 0), (2, 'zz', 0), (3, 't2', 0)`);
    await c.syncAll();
    for (const s of ['a', 'b']) {
      expect(await row(s, 1)).toEqual({ qty: 0, owner_epoch: '1:a' });
      expect(await row(s, 2)).toEqual({ qty: 0, owner_epoch: null });
      expect(await row(s, 3)).toEqual({ qty: 0, owner_epoch: '1:b' }); // p2 is active at b
    }
  });

  it("after a failover, the stale owner's later write loses at both sites and is logged", async () => {
    // b took p1 over (epoch 2); a, cut off, still thinks it owns p1 (epoch 1)
    const moved: Ownership = { ...p1, active: 'b', epoch: 2, since: Date.now(), reason: 'failure transfer: a is down' };
    await writeOwnership(c.site('b').db, moved);
    await c.site('b').db.query(`UPDATE orders SET qty = 20 WHERE id = 1`);
    await c.site('a').db.query(`UPDATE orders SET qty = 10 WHERE id = 1`); // later: `latest` would keep it
    // outside partitions, the default policy (latest) still applies: a's later write wins
    await c.site('b').db.query(`UPDATE orders SET qty = 200 WHERE id = 2`);
    await c.site('a').db.query(`UPDATE orders SET qty = 100 WHERE id = 2`);
    expect(await row('a', 1)).toEqual({ qty: 10, owner_epoch: '1:a' });
    expect(await row('b', 1)).toEqual({ qty: 20, owner_epoch: '2:b' });
    await c.syncAll();
    for (const s of ['a', 'b']) {
      expect(await row(s, 1)).toEqual({ qty: 20, owner_epoch: '2:b' });
      expect((await row(s, 2))!.qty).toBe(100);
    }
    const [da, db] = await c.digests(['orders']);
    expect(da).toBe(db);
    for (const s of ['a', 'b']) {
      const log = await c
        .site(s)
        .db.query<{ winner_site: string; loser_site: string; reason: string }>(
          `SELECT winner_site, loser_site, reason FROM multisite.conflict WHERE tbl = 'public.orders' AND pk->>'id' = '1' AND 'qty' = ANY(columns)`,
        );
      expect(log.rows).toEqual([
        expect.objectContaining({ winner_site: 'b', loser_site: 'a', reason: expect.stringMatching(/owner rule/) }),
      ]);
    }
  });

  it("in one epoch, the active site's write beats a standby's later one", async () => {
    // a learns epoch 2 (b active) when it comes back; both write p2's row 3 (active at b, epoch 1)
    await writeOwnership(c.site('a').db, { ...p1, active: 'b', epoch: 2, since: Date.now(), reason: 'announced' });
    await c.site('b').db.query(`UPDATE orders SET qty = 30 WHERE id = 3`);
    await c.site('a').db.query(`UPDATE orders SET qty = 31 WHERE id = 3`);
    await c.syncAll();
    for (const s of ['a', 'b']) expect(await row(s, 3)).toEqual({ qty: 30, owner_epoch: '1:b' });
    expect(await digest(c.site('a').db, ['orders'])).toBe(await digest(c.site('b').db, ['orders']));
  });
});
