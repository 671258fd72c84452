import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/pg.js';
import { createCluster, type Cluster } from './harness.js';

/**
 * Tombstones (row clocks of deleted rows) are trimmed after `tombstone-retention-days`; the row
 * clocks of live rows stay; replication goes on normally over a trimmed key.
 */
describe('tombstone retention (real PostgreSQL)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster('tomb', ['a', 'b'], 'CREATE TABLE items (id int PRIMARY KEY, v text)', ['items']);
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  const clocks = async (site: string) =>
    (
      await c
        .site(site)
        .db.query<{ id: string; tomb: boolean }>(
          `SELECT pk->>'id' AS id, jsonb_typeof(s->'d') = 'object' AS tomb FROM multisite.row_clock ORDER BY 1`,
        )
    ).rows;

  it("keeps young tombstones, trims old ones, never a live row's clock", { timeout: 180_000 }, async () => {
    await c.site('a').db.query(`INSERT INTO items VALUES (1, 'x'), (2, 'y'), (3, 'z')`);
    await c.site('a').db.query(`DELETE FROM items WHERE id = 2`);
    await c.syncAll();
    // a's own clocks live in its change rows until every peer has them: trimming folds them into row_clock
    // (a transaction running anywhere in the cluster holds the acknowledgement back: wait it out)
    await waitFor(
      "a's changes acknowledged and trimmed",
      async () => {
        await c.syncAll();
        for (const s of ['a', 'b']) await c.site(s).rep.trim();
        return (
          (await c.site('a').db.query<{ n: number }>(`SELECT count(*)::int AS n FROM multisite.change`)).rows[0]!.n ===
          0
        );
      },
      120_000,
      100,
    );
    for (const s of ['a', 'b'])
      expect(await clocks(s)).toEqual([
        { id: '1', tomb: false },
        { id: '2', tomb: true },
        { id: '3', tomb: false },
      ]);
    for (const s of ['a', 'b']) expect(await c.site(s).rep.trimTombstones(60_000)).toBe(0); // a minute's retention: too young
    // wait until the delete is measurably in the past, then trim with a retention shorter than its age
    const t0 = Date.now();
    while (Date.now() - t0 < 20) await c.site('a').db.query('SELECT 1');
    for (const s of ['a', 'b']) expect(await c.site(s).rep.trimTombstones(10)).toBe(1);
    for (const s of ['a', 'b'])
      expect(await clocks(s)).toEqual([
        { id: '1', tomb: false },
        { id: '3', tomb: false },
      ]);
  });

  it('replication goes on over a trimmed key: re-insert, update, delete converge', async () => {
    await c.site('b').db.query(`INSERT INTO items VALUES (2, 'again')`);
    await c.syncAll();
    await c.site('a').db.query(`UPDATE items SET v = 'changed' WHERE id = 2`);
    await c.syncAll();
    await c.site('b').db.query(`DELETE FROM items WHERE id = 3`);
    await c.syncAll();
    const [da, db] = await c.digests(['items']);
    expect(da).toBe(db);
    expect((await c.site('a').db.query<{ id: number; v: string }>('SELECT id, v FROM items ORDER BY id')).rows).toEqual(
      [
        { id: 1, v: 'x' },
        { id: 2, v: 'changed' },
      ],
    );
  });
});
