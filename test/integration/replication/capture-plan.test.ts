import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';

/**
 * The capture trigger's clock lookup must probe the change table's index whatever the table's
 * statistics said when the connection planned it: PL/pgSQL keeps a connection's plans, and one
 * made while the change table was empty (fresh install, after a trim) scanned the whole table per
 * row from then on. auto_explain (nested statements, sent to the client as notices) shows the plans.
 */
describe('capture trigger plans (real PostgreSQL)', () => {
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

  it('looks a row clock up by index even when planned on an empty change table', { timeout: 60_000 }, async () => {
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
      // enough statements for PL/pgSQL to settle on its kept (generic) plan
      for (let i = 1; i <= 10; i++) await c.query(`UPDATE t SET v = v + 1 WHERE id = $1`, [i]);
      await c.query(`SET auto_explain.log_min_duration = 0`);
      await c.query(`UPDATE t SET v = v + 1 WHERE id = 11`);
    } finally {
      await c.end();
    }
    const capture = plans.filter((p) => p.includes('INSERT INTO multisite.change'));
    expect(capture).toHaveLength(1);
    expect(capture[0]).toMatch(/Index Scan Backward using change_row_id_idx on change/);
    expect(capture[0]).not.toMatch(/Seq Scan on change/);
  });
});
