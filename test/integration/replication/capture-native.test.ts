import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';

/**
 * The two capture triggers are one contract: native/multisite_capture.c (built and installed by
 * `make test`) and the PL/pgSQL functions migrate.ts generates must record the same changes. Two
 * databases get the same tables and the same statements, one captured natively, one by PL/pgSQL;
 * each row's history in multisite.change (operation and changed columns, in id order) must match.
 * The statements cover what the C code decides itself: typed comparisons (json and point have no
 * `=`, numeric 1.0 = 1.00, arrays, a domain, NULLs), generated columns, multi-row statements,
 * key changes (paired by key, a swap included), composite and quoted keys, columns added and
 * dropped after migrate, and apply sessions (not captured).
 */
const SCHEMA = `
  CREATE DOMAIN positive AS int CHECK (VALUE > 0);
  CREATE TABLE t (id int PRIMARY KEY, v int, w text, j json, p point, a int[], d positive, n numeric,
                  g int GENERATED ALWAYS AS (v * 2) STORED);
  CREATE TABLE k (a int, b text, v int, PRIMARY KEY (a, b));
  CREATE TABLE s (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v int);
  CREATE TABLE "Odd ""Name""" ("I'd" text, "Id" int, "Value" int, big text, PRIMARY KEY ("I'd", "Id"));
`;
const TABLES = ['t', 'k', 's', '"Odd ""Name"""'];

const STATEMENTS = [
  `INSERT INTO t (id, v, w, j, p, a, d, n) VALUES (1, 1, 'x', '{"a":1}', '(1,1)', '{1,2}', 1, 1.0)`,
  `INSERT INTO t (id, v, w, j, p, a, d, n) SELECT g, g, 'w' || g, '[]', point(g, g), ARRAY[g], g, g FROM generate_series(2, 40) g`,
  `UPDATE t SET v = v WHERE id = 1`, // nothing changed: no change row
  `UPDATE t SET n = 1.00 WHERE id = 1`, // equal by numeric's =: no change row
  `UPDATE t SET j = '{"a": 1}' WHERE id = 1`, // json has no =: compared as text, changed
  `UPDATE t SET j = '{"a": 1}', p = '(1,1)' WHERE id = 1`, // same text: no change row
  `UPDATE t SET p = '(2,1)' WHERE id = 1`,
  `UPDATE t SET a = '{1,2,3}', w = NULL WHERE id = 1`,
  `UPDATE t SET w = 'back', d = 5 WHERE id = 1`,
  `UPDATE t SET v = v + 1 WHERE id % 3 = 0`, // g (generated) changes too, and never counts
  `UPDATE t SET v = CASE WHEN id % 2 = 0 THEN v ELSE v + 1 END, w = 'even' WHERE id <= 10`,
  `UPDATE t SET id = id + 100 WHERE id BETWEEN 30 AND 32`, // key changes: delete + insert
  `UPDATE t SET id = id + 1000, v = 7 WHERE id > 38`,
  `DELETE FROM t WHERE id IN (2, 3, 4)`,
  `DELETE FROM t WHERE id > 1000`,
  `INSERT INTO k VALUES (1, 'a', 1), (1, 'b', 2), (2, 'a', 3)`,
  `UPDATE k SET v = v * 10`,
  `UPDATE k SET b = 'c' WHERE a = 1 AND b = 'b'`, // one part of the key changes
  `UPDATE k SET a = a + 1, v = 0 WHERE a = 2`,
  `ALTER TABLE k ADD COLUMN extra text`,
  `UPDATE k SET extra = 'new' WHERE a = 1`,
  `UPDATE k SET extra = 'new'`, // only the rows whose extra was NULL
  `ALTER TABLE k DROP COLUMN extra`,
  `UPDATE k SET v = 5 WHERE a = 1`,
  `INSERT INTO s SELECT g, g FROM generate_series(1, 6) g`,
  `UPDATE s SET id = CASE id WHEN 1 THEN 2 WHEN 2 THEN 1 ELSE id END WHERE id IN (1, 2)`, // a swap
  `UPDATE s SET id = 7 - id, v = v + 1 WHERE id BETWEEN 3 AND 4`, // a swap with a changed column
  `UPDATE s SET v = v + 1 WHERE id = 5`,
  `INSERT INTO "Odd ""Name""" VALUES ('o''1', 1, 1, repeat('x', 300000)), ('two', 2, 2, NULL)`,
  `UPDATE "Odd ""Name""" SET "Value" = 3 WHERE "Id" = 1`, // its big value (TOAST) untouched: not changed
  `UPDATE "Odd ""Name""" SET big = repeat('x', 299999) || 'y' WHERE "Id" = 1`,
  `UPDATE "Odd ""Name""" SET big = repeat('x', 299999) || 'y' WHERE "Id" = 1`, // the same value again
  `DELETE FROM "Odd ""Name""" WHERE "Id" = 2`,
  // the replicator's apply is not captured
  `BEGIN; SET LOCAL multisite.applying = 'on'; INSERT INTO t (id, v) VALUES (500, 1); UPDATE t SET v = 9 WHERE id = 1; COMMIT`,
  `UPDATE t SET v = 10 WHERE id = 500`,
];

interface History {
  [row: string]: string[];
}

/** Each row's changes in id order, as "op cols". */
async function histories(db: Db): Promise<History> {
  const r = await db.query<{ tbl: string; pk: string; op: string; cols: string[] | null }>(
    `SELECT tbl, pk::text AS pk, op::text AS op, cols FROM multisite.change ORDER BY id`,
  );
  const out: History = {};
  for (const x of r.rows) {
    const key = `${x.tbl} ${x.pk}`;
    (out[key] ??= []).push(`${x.op} ${(x.cols ?? []).join(',')}`.trim());
  }
  return out;
}

describe('native capture = PL/pgSQL capture (real PostgreSQL)', () => {
  let names: string[];
  let dbs: Db[];
  beforeAll(async () => {
    names = await createDatabases('capnative', 2);
    dbs = await Promise.all(names.map((n) => openDb(dbUrl(n), { max: 1 })));
    for (const db of dbs) await db.exec(SCHEMA);
  }, 60_000);
  afterAll(async () => {
    await Promise.all((dbs ?? []).map((d) => d.close()));
    if (names) await dropDatabases(names);
  });

  it('installs each capture as asked', async () => {
    const native = await migrate(dbs[0]!, { site: 'a', tables: TABLES, capture: 'native' });
    const plpgsql = await migrate(dbs[1]!, { site: 'a', tables: TABLES, capture: 'plpgsql' });
    expect([native.capture, plpgsql.capture]).toEqual(['native', 'plpgsql']);
    const fn = await dbs[0]!.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE p.proname = 'capture_native' AND NOT t.tgisinternal`,
    );
    expect(fn.rows[0]!.n).toBe(String(TABLES.length * 3));
  });

  it('records the same history for every row', { timeout: 60_000 }, async () => {
    for (const st of STATEMENTS) for (const db of dbs) await db.exec(st);
    const native = await histories(dbs[0]!);
    const plpgsql = await histories(dbs[1]!);
    expect(native).toEqual(plpgsql);
    // the statements did capture (a comparison of two empty tables proves nothing)
    expect(native['public.t {"id": 1}']).toEqual(['I', 'U j', 'U p', 'U a,w', 'U d,w', 'U v,w']);
    expect(native['public.s {"id": 1}']).toEqual(['I', 'U v']);
    expect(native['public.t {"id": 500}']).toEqual(['U v']);
    expect(native[`public."Odd ""Name""" {"Id": 1, "I'd": "o'1"}`]).toEqual(['I', 'U Value', 'U big']);
    expect(Object.keys(native).length).toBeGreaterThan(45);
  });

  it('keeps capturing a table whose columns change in another session', async () => {
    // the C code keeps each table's plan per backend: a column added elsewhere must be seen
    const other = await openDb(dbUrl(names[0]!), { max: 1 });
    try {
      await other.exec(`ALTER TABLE s ADD COLUMN later int`);
      await dbs[0]!.exec(`UPDATE s SET later = 1 WHERE id = 6`);
      const h = await histories(dbs[0]!);
      expect(h['public.s {"id": 6}']).toEqual(['I', 'U later']);
    } finally {
      await other.close();
    }
  });

  it('refuses native capture it cannot install, and auto falls back with the reason', async () => {
    const missing = { site: 'a', tables: TABLES, nativeLibrary: '$libdir/multisite_capture_missing' };
    await expect(migrate(dbs[1]!, { ...missing, capture: 'native' })).rejects.toThrow(
      /capture: native, but the server cannot create multisite\.capture_native \(could not access file.*make -C native install/,
    );
    const auto = await migrate(dbs[1]!, missing);
    expect(auto.capture).toBe('plpgsql');
    expect(auto.fallback).toMatch(/multisite_capture_missing/);
  });
});
