import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate, sqlDir } from '../../../src/db-triggers/migrate.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';

/**
 * Schema version 5 stamps set-based (sql/004: window functions) what version 4 stamped change by
 * change in a PL/pgSQL loop (sql/003). The rules must not change: two databases get the same
 * random histories (inserts, updates of one or both columns, deletes, re-inserts, several rows per
 * transaction, capture times that tie so that "previous + 1" wins), one stamped by version 4's
 * loop (kept here as multisite.stamp_v4), the other by version 5, in the same rounds (all or some
 * rows at a time); every change must get the same stamp, incarnation, base and clock after, and
 * version 5's row_clock must hold each row's clock after its last stamped change.
 */
describe('set-based stamping = version 4 stamping (real PostgreSQL)', () => {
  let names: string[];
  let dbs: Db[];
  beforeAll(async () => {
    names = await createDatabases('stamp', 2);
    dbs = await Promise.all(names.map((n) => openDb(dbUrl(n), { max: 1 })));
    // version 4's loop under another name: the functions of sql/003 are its only definition of stamp
    const v4 = readFileSync(join(sqlDir(), '003_key_capture.sql'), 'utf8');
    const fn = /CREATE OR REPLACE FUNCTION multisite\.stamp\(p_keys[\s\S]*?END \$\$;/.exec(v4)![0];
    for (const db of dbs) {
      await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int, w int)`);
      await migrate(db, { site: 'a', tables: ['t'] });
    }
    await dbs[0]!.exec(fn.replace('multisite.stamp(', 'multisite.stamp_v4('));
  }, 60_000);
  afterAll(async () => {
    await Promise.all((dbs ?? []).map((d) => d.close()));
    if (names) await dropDatabases(names);
  });

  it('gives every change the same stamp, incarnation, base and clock after', { timeout: 120_000 }, async () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor(seed / 65536) % n; // the high bits: the low ones of this generator cycle fast
    };
    const live = new Set<number>();
    const statements = (): string[] => {
      const id = 1 + rnd(4);
      const v = rnd(1000);
      if (!live.has(id)) {
        live.add(id);
        return [`INSERT INTO t VALUES (${id}, ${v}, ${v})`];
      }
      switch (rnd(5)) {
        case 0:
          live.delete(id);
          return [`DELETE FROM t WHERE id = ${id}`];
        case 1:
          return [`UPDATE t SET v = ${v} WHERE id = ${id}`];
        case 2:
          return [`UPDATE t SET w = ${v} WHERE id = ${id}`];
        case 3:
          return [`UPDATE t SET v = ${v}, w = ${v + 1} WHERE id = ${id}`];
        default:
          return [`UPDATE t SET v = v + 1 WHERE id >= ${id}`];
      }
    };
    for (let round = 0; round < 40; round++) {
      const tx: string[] = [];
      for (let i = 1 + rnd(6); i > 0; i--) tx.push(...statements());
      for (const db of dbs) {
        await db.exec(`BEGIN; ${tx.join('; ')}; COMMIT`);
        // identical capture times in both databases; some tie, so that "previous stamp + 1" wins
        await db.exec(
          `UPDATE multisite.change SET ts = timestamptz '2026-01-01 00:00:00+00' + (id / 3) * interval '1 ms' WHERE h IS NULL`,
        );
      }
      if (rnd(3) === 0) continue;
      const keys = rnd(2) === 0 ? null : JSON.stringify([1, 2, 3].map((id) => ['public.t', { id }]));
      await dbs[0]!.query(`SELECT multisite.stamp_v4($1::jsonb)`, [keys]);
      await dbs[1]!.query(`SELECT multisite.stamp($1::jsonb)`, [keys]);
    }
    for (const [i, db] of dbs.entries()) await db.query(`SELECT multisite.${i === 0 ? 'stamp_v4' : 'stamp'}()`);
    const stamped = (db: Db) =>
      db.query(`SELECT id, op::text, h::text, ins::text, base::text, s::text FROM multisite.change ORDER BY id`);
    const [v4, v5] = (await Promise.all(dbs.map(stamped))) as [
      Awaited<ReturnType<typeof stamped>>,
      Awaited<ReturnType<typeof stamped>>,
    ];
    expect(v4.rows.length).toBeGreaterThan(100);
    expect(v5.rows).toEqual(v4.rows);
    // the tie rule was exercised: some stamps came from the previous one, not the capture time
    const ties = await dbs[1]!.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM multisite.change WHERE h <> (extract(epoch FROM ts) * 1000)::bigint * 1024`,
    );
    expect(ties.rows[0]!.n).toBeGreaterThan(0);
    // row_clock (version 5) = the clock after each row's last change
    const clocks = await dbs[1]!.query<{ same: boolean }>(
      `SELECT r.s = c.s AND r.top = c.h AS same FROM multisite.row_clock r
         JOIN LATERAL (SELECT s, h FROM multisite.change WHERE tbl = r.tbl AND pk = r.pk ORDER BY id DESC LIMIT 1) c ON true`,
    );
    const rows = await dbs[1]!.query<{ n: number }>(`SELECT count(DISTINCT pk)::int AS n FROM multisite.change`);
    expect(clocks.rows.length).toBe(rows.rows[0]!.n);
    expect(clocks.rows.length).toBeGreaterThan(2);
    expect(clocks.rows.every((r) => r.same)).toBe(true);
  });
  it('stamps a change whose transaction was still open while the stamped tail moved past it', async () => {
    // sql/004's tail: an unkeyed stamp remembers that every transaction below its snapshot's
    // xmin is stamped. One still open then is not below it, so its changes are found once it commits.
    const db = dbs[1]!;
    const open = await openDb(dbUrl(names[1]!), { max: 1 });
    try {
      await open.exec(`BEGIN; INSERT INTO t VALUES (900, 1, 1)`);
      await db.exec(`INSERT INTO t VALUES (901, 1, 1)`);
      await db.query(`SELECT multisite.stamp()`); // 901 stamped; the tail stops below the open transaction
      await open.exec(`COMMIT`);
      await db.exec(`INSERT INTO t VALUES (902, 1, 1)`);
      await db.query(`SELECT multisite.stamp()`);
      const r = await db.query<{ id: string; stamped: boolean }>(
        `SELECT pk ->> 'id' AS id, h IS NOT NULL AS stamped FROM multisite.change WHERE (pk ->> 'id')::int >= 900 ORDER BY id`,
      );
      expect(r.rows).toEqual([
        { id: '900', stamped: true },
        { id: '901', stamped: true },
        { id: '902', stamped: true },
      ]);
    } finally {
      await open.close();
    }
  });
});
