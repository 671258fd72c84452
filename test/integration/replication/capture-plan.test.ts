import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';

/**
 * Stamping (multisite.stamp, sql/003) must probe the change table's indexes whatever the table's
 * statistics said when the connection planned it: PL/pgSQL keeps a connection's plans, and one
 * made while the change table was empty (fresh install, after a trim) scanned the whole table per
 * row from then on (version 3's trigger did: 819 updates/s instead of 7,000). auto_explain (nested
 * statements, sent to the client as notices) shows the plans.
 */
describe('stamping plans (real PostgreSQL)', () => {
  let names: string[];
  let db: Db;
  beforeAll(async () => {
    names = await createDatabases('capplan', 1);
    db = await openDb(dbUrl(names[0]!), { max: 1 });
    await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)`);
    await db.exec(`INSERT INTO t SELECT g, 0 FROM generate_series(1, 50) g`);
    await migrate(db, { site: 'a', tables: ['t'] });
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    if (names) await dropDatabases(names);
  });

  it('finds unstamped changes by index even when planned on an empty change table', { timeout: 60_000 }, async () => {
    // statistics of an empty table, as after a trim and an autovacuum
    await db.exec(`VACUUM ANALYZE multisite.change`);
    const c = new pg.Client({ connectionString: dbUrl(names[0]!) });
    const plans: string[] = [];
    c.on('notice', (m) => plans.push(m.message ?? ''));
    await c.connect();
    try {
      await c.query(`LOAD 'auto_explain'`);
      await c.query(`SET auto_explain.log_nested_statements = on`);
      await c.query(`SET auto_explain.log_level = notice`);
      // enough calls for PL/pgSQL to settle on its kept (generic) plans, planned on the empty table
      const stamp = (id: number) =>
        c.query(
          `SELECT multisite.stamp(jsonb_build_array(jsonb_build_array('public.t', jsonb_build_object('id', $1::int))))`,
          [id],
        );
      for (let i = 1; i <= 10; i++) await stamp(i);
      // then the change table fills up (unstamped changes of every row, a thousand rounds)
      await c.query(`UPDATE t SET v = v + g FROM generate_series(1, 20) g WHERE true`);
      for (let i = 0; i < 40; i++) await c.query(`UPDATE t SET v = v + 1`);
      await c.query(`SET auto_explain.log_min_duration = 0`);
      await stamp(11);
    } finally {
      await c.end();
    }
    const lookup = plans.filter((p) => p.includes('x.h IS NULL') && p.includes('jsonb_array_elements(p_keys)'));
    expect(lookup).toHaveLength(1);
    expect(lookup[0]).toMatch(/Index Scan using change_row_id_idx on change/);
    expect(lookup[0]).not.toMatch(/Seq Scan on change/);
  });
});
