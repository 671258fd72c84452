import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { captureFunction, migrate, MigrationError, sqlDir, uninstall } from '../../../src/db-triggers/migrate.js';
import { dbSource, readChanges } from '../../../src/db-triggers/reader.js';
import { Replicator } from '../../../src/db-triggers/replicator.js';
import { replicationStatus } from '../../../src/db-triggers/status.js';
import { createDatabases, dbUrl, dropDatabases, waitFor } from '../support/pg.js';
import { createCluster, digest, type Cluster } from './harness.js';

const run = promisify(execFile);

const SCHEMA = `
CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE item (
  region text, id bigint, parent_id int REFERENCES parent(id),
  label text, email text UNIQUE, price numeric(30,10), doc jsonb, blob bytea, at timestamptz,
  tags text[], nums int[], n int,
  PRIMARY KEY (region, id)
);
`;
const TABLES = ['parent', 'item'];

async function rows(db: Db, sql: string): Promise<unknown[]> {
  return (await db.query(sql)).rows;
}

describe('replication between two sites on PostgreSQL', () => {
  let c: Cluster;
  let A: Db;
  let B: Db;
  beforeAll(async () => {
    c = await createCluster('rep', ['a', 'b'], SCHEMA, TABLES);
    A = c.site('a').db;
    B = c.site('b').db;
  });
  afterAll(async () => {
    await c?.close();
  });

  it('replicates every type exactly, composite keys and foreign keys included', async () => {
    await A.query(`INSERT INTO parent VALUES (1, 'p1')`);
    await A.query(
      `INSERT INTO item VALUES ('eu', 9007199254740993, 1, 'first', 'x@example.com', 12345678901234567890.1234567891,
        '{"a": [1, 2.50, {"b": null}], "big": 123456789012345678901234567890}', '\\x00ff10', '2024-02-29 12:34:56.789012+05:30',
        '{"a b", "c,d", NULL}', '{1,2,3}', NULL)`,
    );
    await A.query(`UPDATE item SET n = 7, label = NULL WHERE region = 'eu'`);
    await c.syncAll();
    const [da, db] = await c.digests(TABLES);
    expect(db).toBe(da);
    expect(db).toContain('12345678901234567890.1234567891');
    expect(db).toContain('9007199254740993');
    expect(db).toContain('123456789012345678901234567890');
    expect(db).toContain('\\x00ff10');
    // no echo: B applied without capturing, so B's queue stays empty
    expect(await rows(B, `SELECT count(*)::int AS n FROM multisite.change`)).toEqual([{ n: 0 }]);
  });

  it('keeps foreign keys enforced in the apply session (no session_replication_role)', async () => {
    await A.query(`INSERT INTO parent VALUES (2, 'p2')`);
    await A.query(`INSERT INTO item (region, id, parent_id) VALUES ('us', 1, 2)`);
    await A.query(`UPDATE parent SET name = 'p2b' WHERE id = 2`);
    await A.query(`DELETE FROM item WHERE region = 'us'`);
    await A.query(`DELETE FROM parent WHERE id = 2`);
    await c.syncAll();
    expect(await rows(B, `SELECT id FROM parent ORDER BY id`)).toEqual([{ id: 1 }]);
    // a change whose parent is missing at B cannot apply: it goes to the conflict log, replication goes on
    await B.query(`DELETE FROM parent WHERE id = 1`).catch(() => undefined); // refused: item references it
    await A.query(`INSERT INTO parent VALUES (3, 'p3')`);
    await c.syncAll();
    expect(await rows(B, `SELECT id FROM parent ORDER BY id`)).toEqual([{ id: 1 }, { id: 3 }]);
  });

  it('same row, different columns at both sites: merged, no conflict', async () => {
    await A.query(`INSERT INTO item (region, id, label, n) VALUES ('m', 1, 'orig', 0)`);
    await c.syncAll();
    await A.query(`UPDATE item SET label = 'from-a' WHERE region = 'm'`);
    await B.query(`UPDATE item SET n = 42 WHERE region = 'm'`);
    const before = await rows(A, `SELECT count(*)::int AS n FROM multisite.conflict`);
    await c.syncAll();
    expect(await rows(A, `SELECT label, n FROM item WHERE region = 'm'`)).toEqual([{ label: 'from-a', n: 42 }]);
    expect(await rows(B, `SELECT label, n FROM item WHERE region = 'm'`)).toEqual([{ label: 'from-a', n: 42 }]);
    expect(await rows(A, `SELECT count(*)::int AS n FROM multisite.conflict`)).toEqual(before);
  });

  it('same column at both sites: same winner everywhere, the loser logged with both versions and dropped from its queue', async () => {
    await A.query(`INSERT INTO item (region, id, label) VALUES ('c', 1, 'orig')`);
    await c.syncAll();
    await A.query(`UPDATE item SET label = 'a-wins?' WHERE region = 'c'`);
    await B.query(`UPDATE item SET label = 'b-wins?' WHERE region = 'c'`); // later stamp
    // b's replicator applies first: a's older change loses at b; then a applies b's change
    await c.site('b').rep.syncAll();
    await c.site('a').rep.syncAll();
    await c.syncAll();
    const [da, db] = await c.digests(TABLES);
    expect(da).toBe(db);
    expect(await rows(A, `SELECT label FROM item WHERE region = 'c'`)).toEqual([{ label: 'b-wins?' }]);
    for (const site of [A, B]) {
      const log = await rows(
        site,
        `SELECT kind, columns, winner_site, loser_site, winner->>'label' AS w, loser->>'label' AS l FROM multisite.conflict WHERE pk->>'region' = 'c'`,
      );
      expect(log).toContainEqual({
        kind: 'update-update',
        columns: ['label'],
        winner_site: 'b',
        loser_site: 'a',
        w: 'b-wins?',
        l: 'a-wins?',
      });
    }
  });

  it("a write 0.3 ms after the other site's, in the same millisecond, still wins (latest)", async () => {
    await A.query(`INSERT INTO item (region, id, label) VALUES ('ms', 1, 'orig')`);
    await c.syncAll();
    await B.query(`UPDATE item SET label = 'b-first' WHERE region = 'ms'`);
    await A.query(`UPDATE item SET label = 'a-later' WHERE region = 'ms'`);
    // the capture times, pinned into one millisecond (ahead of every clock already seen): b's at
    // .1 ms, a's at .4 ms; whole milliseconds tied them and the site name then picked b
    const ms = new Date(Math.floor(Date.now() / 1000) * 1000 + 2000).toISOString();
    const pin = (db: Db, us: number) =>
      db.query(`UPDATE multisite.change SET ts = $1::timestamptz + make_interval(secs => $2) WHERE h IS NULL`, [
        ms,
        us / 1e6,
      ]);
    await pin(B, 100);
    await pin(A, 400);
    await c.syncAll();
    for (const site of [A, B])
      expect(await rows(site, `SELECT label FROM item WHERE region = 'ms'`)).toEqual([{ label: 'a-later' }]);
  });

  it('delete vs update: the delete wins at both sites, the update is logged', async () => {
    await A.query(`INSERT INTO item (region, id, label) VALUES ('d', 1, 'orig')`);
    await c.syncAll();
    await A.query(`UPDATE item SET label = 'upd' WHERE region = 'd'`);
    await B.query(`DELETE FROM item WHERE region = 'd'`);
    await c.syncAll();
    expect(await rows(A, `SELECT * FROM item WHERE region = 'd'`)).toEqual([]);
    expect(await rows(B, `SELECT * FROM item WHERE region = 'd'`)).toEqual([]);
    const kinds = [
      ...(await rows(A, `SELECT kind FROM multisite.conflict WHERE pk->>'region' = 'd'`)),
      ...(await rows(B, `SELECT kind FROM multisite.conflict WHERE pk->>'region' = 'd'`)),
    ];
    expect(kinds.length).toBeGreaterThan(0);
  });

  it('delete vs delete: both gone, nothing stops', async () => {
    await A.query(`INSERT INTO item (region, id) VALUES ('dd', 1)`);
    await c.syncAll();
    await A.query(`DELETE FROM item WHERE region = 'dd'`);
    await B.query(`DELETE FROM item WHERE region = 'dd'`);
    await c.syncAll();
    expect(await rows(A, `SELECT * FROM item WHERE region = 'dd'`)).toEqual([]);
    expect(await rows(B, `SELECT * FROM item WHERE region = 'dd'`)).toEqual([]);
  });

  it('insert vs insert with the same key: one version everywhere, logged', async () => {
    await A.query(`INSERT INTO item (region, id, label) VALUES ('ii', 1, 'from-a')`);
    await B.query(`INSERT INTO item (region, id, label) VALUES ('ii', 1, 'from-b')`);
    await c.syncAll();
    const [da, db] = await c.digests(TABLES);
    expect(da).toBe(db);
    expect(await rows(A, `SELECT label FROM item WHERE region = 'ii'`)).toEqual([{ label: 'from-b' }]);
    expect(
      await rows(A, `SELECT kind, loser->>'label' AS l FROM multisite.conflict WHERE pk->>'region' = 'ii'`),
    ).toEqual([{ kind: 'insert-insert', l: 'from-a' }]);
  });

  it('a clash on a secondary unique key: logged, replication continues, both sites keep the row written last', async () => {
    await A.query(`INSERT INTO item (region, id, email) VALUES ('u', 1, 'same@example.com')`);
    await B.query(`INSERT INTO item (region, id, email) VALUES ('u', 2, 'same@example.com')`); // written later: keeps the key
    await A.query(`INSERT INTO item (region, id, label) VALUES ('u', 3, 'after the clash')`);
    await c.syncAll();
    expect(await rows(B, `SELECT label FROM item WHERE region = 'u' AND id = 3`)).toEqual([
      { label: 'after the clash' },
    ]);
    const logs: unknown[] = [];
    for (const site of [A, B]) {
      expect(await rows(site, `SELECT id::int FROM item WHERE region = 'u' AND email IS NOT NULL`)).toEqual([
        { id: 2 },
      ]);
      logs.push(
        ...(await rows(
          site,
          `SELECT kind, columns, winner->>'id' AS w, loser->>'id' AS l FROM multisite.conflict WHERE kind = 'unique-clash'`,
        )),
      );
    }
    // logged where it was found (the losing insert then left its queue, so the other site never saw it)
    expect(logs).toContainEqual({ kind: 'unique-clash', columns: ['email'], w: '2', l: '1' });
    const [da, db] = await c.digests(TABLES);
    expect(db).toBe(da);
    // clean up for the next tests
    await A.query(`DELETE FROM item WHERE region = 'u'`);
    await c.syncAll();
  });

  it('a row that cannot apply at all goes to the conflict log as apply-error; the rest applies', async () => {
    await B.exec(`ALTER TABLE item ADD CONSTRAINT label_not_poison CHECK (label IS DISTINCT FROM 'poison')`);
    try {
      await A.query(`INSERT INTO item (region, id, label) VALUES ('e', 1, 'poison'), ('e', 2, 'fine')`);
      await c.syncAll();
      expect(await rows(B, `SELECT id::int FROM item WHERE region = 'e'`)).toEqual([{ id: 2 }]);
      const errs = await rows(B, `SELECT kind, reason FROM multisite.conflict WHERE pk->>'region' = 'e'`);
      expect(errs).toHaveLength(1);
      expect(errs[0]).toMatchObject({ kind: 'apply-error' });
      expect((errs[0] as { reason: string }).reason).toMatch(/23514.*label_not_poison/);
    } finally {
      await B.exec(`ALTER TABLE item DROP CONSTRAINT label_not_poison`);
    }
  });

  it('never skips a change whose transaction commits after a later one was read (no gaps)', async () => {
    // t1 takes the first change id, t2 a later one and commits first; the replicator runs between
    const t1 = await openDb(c.site('a').url, { max: 1 });
    try {
      await t1.transaction(async (tx) => {
        await tx.query(`INSERT INTO item (region, id, label) VALUES ('gap', 1, 'slow')`);
        await A.query(`INSERT INTO item (region, id, label) VALUES ('gap', 2, 'fast')`);
        await c.site('b').rep.syncAll(); // reads id 2 while id 1 is uncommitted
        expect(await rows(B, `SELECT id::int FROM item WHERE region = 'gap'`)).toEqual([{ id: 2 }]);
      });
    } finally {
      await t1.close();
    }
    await c.site('b').rep.syncAll();
    expect(await rows(B, `SELECT id::int FROM item WHERE region = 'gap' ORDER BY id`)).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('trims changes every peer acknowledged', async () => {
    await A.query(`INSERT INTO item (region, id) SELECT 'trim', g FROM generate_series(1, 50) g`);
    await c.syncAll();
    // b acknowledges up to its read snapshot's xmin: a transaction running anywhere in the cluster
    // (other tests) holds that back, so acknowledge and trim until it has passed
    await waitFor(
      'every acknowledged change trimmed',
      async () => {
        await c.site('b').rep.syncAll();
        await c.site('a').rep.trim();
        return (await A.query<{ n: number }>(`SELECT count(*)::int AS n FROM multisite.change`)).rows[0]!.n === 0;
      },
      120_000,
      100,
    );
  }, 180_000);

  it('a running replicator applies what arrives while it runs (polling, no wake-up signal)', async () => {
    const rb = c.site('b').rep;
    await rb.start();
    try {
      await A.query(`INSERT INTO item (region, id, label) VALUES ('live', 1, 'now')`);
      await waitFor(
        'the row at b',
        async () => (await rows(B, `SELECT 1 FROM item WHERE region = 'live'`)).length === 1,
        60_000,
        20,
      );
      const st = await replicationStatus(B, [{ name: 'a', db: A }]);
      expect(st.peers[0]).toMatchObject({ peer: 'a', pending: 0, lagSeconds: 0, stale: false });
      expect(st.recentConflicts.length).toBeGreaterThan(0);
    } finally {
      await rb.stop();
    }
  });

  it('LISTEN (Db.listen) reconnects after its connection is killed, and wakes its caller', async () => {
    const wakes: string[] = [];
    const peer = await openDb(c.site('a').url, { applicationName: 'ms-listen-test' });
    try {
      const stop = await peer.listen('multisite_change', (p) => wakes.push(p));
      await A.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ms-listen-test' AND query LIKE 'LISTEN%'`,
      );
      await waitFor('the reconnect wake-up', () => wakes.length > 0, 10_000);
      wakes.length = 0;
      await A.query(`NOTIFY multisite_change, 'after reconnect'`);
      await waitFor('a notification on the new connection', () => wakes.includes('after reconnect'), 10_000);
      await stop();
    } finally {
      await peer.close();
    }
  });

  it('a PRIMARY KEY change is a delete of the old key and an insert of the new one', async () => {
    await A.query(`INSERT INTO item (region, id, label) VALUES ('pk', 1, 'moved')`);
    await c.syncAll();
    await A.query(`UPDATE item SET id = 2 WHERE region = 'pk'`);
    await c.syncAll();
    expect(await rows(B, `SELECT id::int, label FROM item WHERE region = 'pk'`)).toEqual([{ id: 2, label: 'moved' }]);
  });
});

describe('batches', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster('batch', ['a', 'b'], `CREATE TABLE t (id int PRIMARY KEY, v text);`, ['t'], {
      batchSize: 700,
    });
  });
  afterAll(async () => {
    await c?.close();
  });
  it('reads every change exactly once: many small transactions, then one larger than a batch (ids past 999 and 9999)', async () => {
    const A = c.site('a').db;
    let next = 0;
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        for (;;) {
          const i = next++;
          if (i >= 1200) return;
          await A.query(`INSERT INTO t VALUES ($1::int, 'single')`, [i]);
        }
      }),
    );
    await A.query(`INSERT INTO t SELECT g, 'bulk' FROM generate_series(1200, 11200) g`);
    await c.syncAll();
    const B = c.site('b').db;
    expect(await rows(B, `SELECT count(*)::int AS n FROM t`)).toEqual([{ n: 11201 }]);
    expect(await rows(B, `SELECT changes::int AS n FROM multisite.watermark WHERE peer = 'a'`)).toEqual([{ n: 11201 }]);
  });
});

describe('a read that finds unstamped changes', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster('cut', ['a', 'b'], `CREATE TABLE t (id int PRIMARY KEY, v int);`, ['t']);
    // changes committed after a read's stamp_batch and before its snapshot: here, all of them
    await c
      .site('a')
      .db.exec(
        `CREATE OR REPLACE FUNCTION multisite.stamp_batch(p_xmin xid8, p_applied xid8[], p_limit int) RETURNS int LANGUAGE sql AS 'SELECT 0'`,
      );
  });
  afterAll(async () => {
    await c?.close();
  });
  it('ends the batch before them (they come in the next read, once), or stamps them at its head', async () => {
    const A = c.site('a').db;
    const ids = (b: Awaited<ReturnType<typeof readChanges>>) => b.changes.map((x) => JSON.parse(x.pk).id as number);
    await A.query(`INSERT INTO t VALUES (1, 1)`);
    await A.query(`SELECT multisite.stamp()`);
    await A.query(`INSERT INTO t VALUES (2, 2)`);
    await A.query(`INSERT INTO t VALUES (3, 3)`);
    const first = await readChanges(A, { xmin: 0n, applied: [] }, 100);
    expect(ids(first)).toEqual([1]);
    await A.query(`SELECT multisite.stamp()`);
    const second = await readChanges(A, first.next, 100);
    expect(ids(second)).toEqual([2, 3]);
    expect((await readChanges(A, second.next, 100)).changes).toEqual([]);
    // the batch's first transaction unstamped: stamped in the read's snapshot, read once
    await A.query(`INSERT INTO t VALUES (4, 4)`);
    const head = await readChanges(A, second.next, 100);
    expect(ids(head)).toEqual([4]);
    expect(head.changes[0]!.h).toBeGreaterThan(0);
    expect((await readChanges(A, head.next, 100)).changes).toEqual([]);
  });
});

describe('three sites', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await createCluster('rep3', ['a', 'b', 'c'], `CREATE TABLE kv (k int PRIMARY KEY, v text, w int);`, ['kv']);
  });
  afterAll(async () => {
    await c?.close();
  });
  it('converges with writes everywhere', async () => {
    for (const s of c.sites) {
      await s.db.query(`INSERT INTO kv SELECT g, '${s.name}', 0 FROM generate_series(1, 20) g ON CONFLICT DO NOTHING`);
    }
    await c.syncAll();
    await c.site('a').db.query(`UPDATE kv SET v = 'a2' WHERE k <= 10`);
    await c.site('b').db.query(`UPDATE kv SET w = 1 WHERE k <= 15`);
    await c.site('c').db.query(`DELETE FROM kv WHERE k > 18`);
    await c.syncAll();
    const d = await c.digests(['kv']);
    expect(d[1]).toBe(d[0]);
    expect(d[2]).toBe(d[0]);
    expect(await rows(c.site('c').db, `SELECT count(*)::int AS n FROM kv`)).toEqual([{ n: 18 }]);
  });

  it('resolves a secondary-unique clash the same way whatever order the sites sync in', async () => {
    for (const s of c.sites) await s.db.exec(`ALTER TABLE kv ADD COLUMN u text UNIQUE`);
    await c.site('a').db.query(`INSERT INTO kv (k, v, u) VALUES (100, 'from a', 'key')`);
    await c.site('b').db.query(`INSERT INTO kv (k, v, u) VALUES (200, 'from b', 'key')`); // later: keeps the key
    // c first takes a's row, then meets b's
    await c.site('c').rep.syncPeer({ name: 'a' });
    await c.site('c').rep.syncPeer({ name: 'b' });
    await c.syncAll();
    const d = await c.digests(['kv']);
    expect(d[1]).toBe(d[0]);
    expect(d[2]).toBe(d[0]);
    expect(await rows(c.site('c').db, `SELECT k FROM kv WHERE u = 'key'`)).toEqual([{ k: 200 }]);
  });
});

/**
 * After an upgrade: b takes a's changes, then both sites write one column of row 2 at once; both
 * sites must end identical (one winner). Returns the end state's digest.
 */
async function concurrentWritesAfterUpgrade(dbs: Db[]): Promise<string> {
  const reps = dbs.map(
    (db, i) => new Replicator({ site: 'ab'[i]!, local: db, peers: [{ name: 'ab'[1 - i]!, db: dbs[1 - i]! }] }),
  );
  await reps[1]!.syncAll();
  await dbs[0]!.query(`UPDATE t SET v = 'from a' WHERE id = 2`);
  await dbs[1]!.query(`UPDATE t SET v = 'from b' WHERE id = 2`);
  for (let i = 0; i < 2; i++) for (const r of reps) await r.syncAll();
  const [da, dbb] = await Promise.all(dbs.map((d) => digest(d, ['t'])));
  expect(dbb).toBe(da);
  return da!;
}

describe('migrate', () => {
  const created: string[] = [];
  afterAll(async () => {
    await dropDatabases(created);
  });

  it('is idempotent, refuses a table without a primary key, and uninstalls cleanly', async () => {
    const [name] = await createDatabases('mig', 1);
    created.push(name!);
    const db = await openDb(dbUrl(name!));
    try {
      await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE nokey (v text);`);
      await migrate(db, { site: 'a', tables: ['t'] });
      await migrate(db, { site: 'a', tables: ['public.t'] });
      const trig = await db.query(
        `SELECT tgname FROM pg_trigger WHERE tgrelid = 't'::regclass AND NOT tgisinternal ORDER BY 1`,
      );
      expect(trig.rows).toEqual([
        { tgname: 'multisite_capture_d' },
        { tgname: 'multisite_capture_i' },
        { tgname: 'multisite_capture_u' },
      ]);
      await expect(migrate(db, { site: 'a', tables: ['nokey'] })).rejects.toThrow(MigrationError);
      await expect(migrate(db, { site: 'a', tables: ['nokey'] })).rejects.toThrow(/public\.nokey has no primary key/);
      await db.query(`INSERT INTO t VALUES (1, 'x')`);
      expect((await db.query(`SELECT count(*)::int AS n FROM multisite.change`)).rows).toEqual([{ n: 1 }]);
      await uninstall(db);
      expect((await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'multisite'`)).rows).toEqual([
        { n: 0 },
      ]);
      await db.query(`INSERT INTO t VALUES (2, 'y')`); // no trigger left behind
    } finally {
      await db.close();
    }
  });

  it('upgrades a version-1 install in place: pending row-trigger changes still ship, clocks carry on, conflicts still found', async () => {
    const names = await createDatabases('upg', 2);
    created.push(...names);
    const dbs = await Promise.all(names.map((n) => openDb(dbUrl(n))));
    try {
      for (const [i, db] of dbs.entries()) {
        // what version 1's migrate left behind: 001 with its capture functions, a row trigger and a NOTIFY trigger
        await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text, w text)`);
        await db.exec(readFileSync(join(sqlDir(), '001_replication.sql'), 'utf8'));
        await db.exec(readFileSync(new URL('../../fixtures/replication/v1-capture.sql', import.meta.url), 'utf8'));
        await db.exec(`
          INSERT INTO multisite.site (one, name) VALUES (true, '${'ab'[i]}');
          CREATE TRIGGER multisite_capture AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION multisite.capture('id');
          CREATE TRIGGER multisite_notify AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH STATEMENT EXECUTE FUNCTION multisite.notify();
          INSERT INTO multisite.replicated_table (tbl, pk_columns) VALUES ('public.t', '{id}');`);
      }
      const [A1] = dbs as [Db, Db];
      await A1.query(`INSERT INTO t VALUES (1, 'a', 'a'), (2, 'a', 'a')`);
      await A1.query(`UPDATE t SET v = 'a2' WHERE id = 1`);
      for (const [i, db] of dbs.entries()) await migrate(db, { site: 'ab'[i]!, tables: ['t'] });
      expect((await A1.query(`SELECT schema_version FROM multisite.site`)).rows).toEqual([{ schema_version: 5 }]);
      // version 1's capture functions are gone with its triggers
      const v1 = await A1.query(
        `SELECT proname FROM pg_proc WHERE pronamespace = 'multisite'::regnamespace AND proname IN ('capture', 'capture_row', 'pk_of', 'notify')`,
      );
      expect(v1.rows).toEqual([]);
      const trig = await A1.query(
        `SELECT tgname FROM pg_trigger WHERE tgrelid = 't'::regclass AND NOT tgisinternal ORDER BY 1`,
      );
      expect(trig.rows.map((r) => r.tgname)).toEqual([
        'multisite_capture_d',
        'multisite_capture_i',
        'multisite_capture_u',
      ]);
      // a version-4 write on top of a version-1 row clock: captured unstamped, stamped after it
      await A1.query(`UPDATE t SET w = 'a3' WHERE id = 1`);
      const stamps = () =>
        A1.query<{ op: string; s: boolean; h: string | null }>(
          `SELECT op::text, s IS NOT NULL AS s, h::text FROM multisite.change ORDER BY id`,
        );
      expect((await stamps()).rows.map((r) => [r.op, r.s, r.h === null])).toEqual([
        ['I', false, false],
        ['I', false, false],
        ['U', false, false],
        ['U', false, true],
      ]);
      await A1.query(`SELECT multisite.stamp()`);
      const h = await stamps();
      expect(h.rows.map((r) => [r.op, r.s])).toEqual([
        ['I', false],
        ['I', false],
        ['U', false],
        ['U', true],
      ]);
      expect(BigInt(h.rows[3]!.h!)).toBeGreaterThan(BigInt(h.rows[2]!.h!));
      const da = await concurrentWritesAfterUpgrade(dbs);
      expect(da).toContain('(1,a2,a3)');
      // a synced first: it logged the conflict and dropped its losing change, so b never saw it
      expect((await A1.query(`SELECT kind, winner_site, loser_site FROM multisite.conflict`)).rows).toEqual([
        { kind: 'update-update', winner_site: 'b', loser_site: 'a' },
      ]);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('upgrades a version-3 install in place: its stamped changes ship, later key-only changes stamp after them', async () => {
    const names = await createDatabases('upg3', 2);
    created.push(...names);
    const dbs = await Promise.all(names.map((n) => openDb(dbUrl(n))));
    try {
      for (const [i, db] of dbs.entries()) {
        // what version 3's migrate left behind: 001, 002, a stamping statement trigger per operation
        await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text, w text)`);
        for (const f of ['001_replication.sql', '002_statement_capture.sql'])
          await db.exec(readFileSync(join(sqlDir(), f), 'utf8'));
        await db.exec(readFileSync(new URL('../../fixtures/replication/v3-capture.sql', import.meta.url), 'utf8'));
        const fn = captureFunction('public.t');
        await db.exec(`
          INSERT INTO multisite.site (one, name, schema_version) VALUES (true, '${'ab'[i]}', 3);
          CREATE TRIGGER multisite_capture_i AFTER INSERT ON t REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();
          CREATE TRIGGER multisite_capture_u AFTER UPDATE ON t REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();
          CREATE TRIGGER multisite_capture_d AFTER DELETE ON t REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();
          INSERT INTO multisite.replicated_table (tbl, pk_columns) VALUES ('public.t', '{id}');`);
      }
      const [A] = dbs as [Db, Db];
      await A.query(`INSERT INTO t VALUES (1, 'a', 'a'), (2, 'a', 'a'), (3, 'a', 'a')`);
      await A.query(`UPDATE t SET v = 'a2' WHERE id = 1`);
      // stamped by the version-3 trigger, carrying its row
      const v3 = await A.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM multisite.change WHERE h IS NOT NULL AND s IS NOT NULL AND "row" IS NOT NULL`,
      );
      expect(v3.rows).toEqual([{ n: 4 }]);
      for (const [i, db] of dbs.entries()) await migrate(db, { site: 'ab'[i]!, tables: ['t'] });
      expect((await A.query(`SELECT schema_version FROM multisite.site`)).rows).toEqual([{ schema_version: 5 }]);
      // after the upgrade: key-only, unstamped; stamped after the version-3 change of the same row
      await A.query(`UPDATE t SET w = 'a3' WHERE id = 1`);
      await A.query(`DELETE FROM t WHERE id = 3`);
      const last = await A.query<{ row: boolean; h: string | null }>(
        `SELECT "row" IS NOT NULL AS row, h::text FROM multisite.change ORDER BY id DESC LIMIT 2`,
      );
      expect(last.rows).toEqual([
        { row: false, h: null },
        { row: false, h: null },
      ]);
      const da = await concurrentWritesAfterUpgrade(dbs);
      // b's reader stamped the key-only changes after the version-3 change of their row
      const h = await A.query<{ h: string }>(`SELECT h::text FROM multisite.change WHERE pk = '{"id": 1}' ORDER BY id`);
      expect(h.rows.map((r) => BigInt(r.h))).toEqual(
        [...h.rows.map((r) => BigInt(r.h))].sort((x, y) => (x < y ? -1 : 1)),
      );
      expect(new Set(h.rows.map((r) => r.h)).size).toBe(3);
      expect(da).toContain('(1,a2,a3)');
      expect(da).not.toContain('(3,');
      const logged = await A.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM multisite.conflict WHERE kind = 'update-update'`,
      );
      expect(logged.rows).toEqual([{ n: 1 }]);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('upgrades a version-4 install in place: clocks of changes version 4 stamped carry on into row_clock', async () => {
    const names = await createDatabases('upg4', 2);
    created.push(...names);
    const dbs = await Promise.all(names.map((n) => openDb(dbUrl(n))));
    try {
      // version 4: sql/001-003 (003 defines its loop stamper, which stored clocks only in change rows)
      const v4 = readFileSync(join(sqlDir(), '003_key_capture.sql'), 'utf8');
      const stampV4 = /CREATE OR REPLACE FUNCTION multisite\.stamp\(p_keys[\s\S]*?END \$\$;/.exec(v4)![0];
      for (const [i, db] of dbs.entries()) {
        await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text, w text)`);
        await migrate(db, { site: 'ab'[i]!, tables: ['t'] });
        await db.exec(`${stampV4}; UPDATE multisite.site SET schema_version = 4`);
      }
      const [A, B] = dbs as [Db, Db];
      // stamped by version 4 (a peer's reader did it): clocks in the change rows, none in row_clock
      await A.query(`INSERT INTO t VALUES (1, 'a', 'a'), (2, 'a', 'a')`);
      await A.query(`UPDATE t SET v = 'a2' WHERE id = 1`);
      await A.query(`SELECT multisite.stamp()`);
      expect((await A.query(`SELECT count(*)::int AS n FROM multisite.row_clock`)).rows).toEqual([{ n: 0 }]);
      const before = await A.query<{ h: string }>(
        `SELECT max(h)::text AS h FROM multisite.change WHERE pk = '{"id": 1}'`,
      );
      // the new code refuses a version-4 schema (its row_clock is not every row's clock yet)
      const early = new Replicator({ site: 'b', local: B, peers: [{ name: 'a', db: A }] });
      await expect(early.syncPeer({ name: 'a' })).rejects.toThrow(/schema is version 4.*run multisite migrate/);
      for (const [i, db] of dbs.entries()) await migrate(db, { site: 'ab'[i]!, tables: ['t'] });
      expect((await A.query(`SELECT schema_version FROM multisite.site`)).rows).toEqual([{ schema_version: 5 }]);
      // the upgrade folded each row's latest version-4 clock into row_clock
      const folded = await A.query<{ id: string; top: string }>(
        `SELECT pk ->> 'id' AS id, top::text AS top FROM multisite.row_clock ORDER BY 1`,
      );
      expect(folded.rows.map((r) => r.id)).toEqual(['1', '2']);
      expect(folded.rows[0]!.top).toBe(before.rows[0]!.h);
      // a write after the upgrade stamps above the version-4 stamp of its row
      await A.query(`UPDATE t SET w = 'a3' WHERE id = 1`);
      await A.query(`SELECT multisite.stamp()`);
      const h = await A.query<{ h: string }>(`SELECT h::text FROM multisite.change WHERE pk = '{"id": 1}' ORDER BY id`);
      expect(BigInt(h.rows[2]!.h)).toBeGreaterThan(BigInt(before.rows[0]!.h));
      const da = await concurrentWritesAfterUpgrade(dbs);
      expect(da).toContain('(1,a2,a3)');
      const logged = await A.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM multisite.conflict WHERE kind = 'update-update'`,
      );
      expect(logged.rows).toEqual([{ n: 1 }]);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
  });

  it('captures the changed columns after a column is added or dropped without migrate (compared as JSON)', async () => {
    const [name] = await createDatabases('cols', 1);
    created.push(name!);
    const db = await openDb(dbUrl(name!));
    try {
      await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text, gone text)`);
      await migrate(db, { site: 'a', tables: ['t'] });
      await db.query(`INSERT INTO t VALUES (1, 'x', 'y')`);
      const cols = async () =>
        (
          await db.query<{ cols: string[] }>(
            `SELECT cols FROM multisite.change WHERE op = 'U' ORDER BY id DESC LIMIT 1`,
          )
        ).rows[0]?.cols;
      await db.query(`UPDATE t SET v = 'typed' WHERE id = 1`);
      expect(await cols()).toEqual(['v']);
      await db.exec(`ALTER TABLE t ADD COLUMN extra int`);
      await db.query(`UPDATE t SET extra = 1 WHERE id = 1`);
      expect(await cols()).toEqual(['extra']);
      await db.exec(`ALTER TABLE t DROP COLUMN gone`);
      await db.query(`UPDATE t SET v = 'after drop', extra = 2 WHERE id = 1`);
      expect(await cols()).toEqual(['extra', 'v']);
      await migrate(db, { site: 'a', tables: ['t'] });
      await db.query(`UPDATE t SET extra = 3 WHERE id = 1`);
      expect(await cols()).toEqual(['extra']);
    } finally {
      await db.close();
    }
  });

  it('works through the CLI: migrate, replicate --once, status', async () => {
    const names = await createDatabases('cli', 2);
    created.push(...names);
    const dir = mkdtempSync(join(tmpdir(), 'ms-rep-'));
    for (const n of names) {
      const db = await openDb(dbUrl(n));
      await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`);
      await db.close();
    }
    const cfg = (site: string) => {
      const f = join(dir, `${site}.yaml`);
      writeFileSync(
        f,
        `site: ${site}\nsites:\n  - name: a\n  - name: b\nreplication:\n  tables: [t]\n  sites:\n    a: { db: "${dbUrl(names[0]!)}" }\n    b: { db: "${dbUrl(names[1]!)}" }\n`,
      );
      return f;
    };
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: process.cwd() });
    const m = await cli('migrate', '--config', cfg('a'));
    expect(m.stdout).toMatch(/replication installed for site a: public\.t \(id\)/);
    expect(m.stdout).toMatch(/^capture: native$/m); // make test installs the library: auto takes it
    const mb = await cli('migrate', '--db', dbUrl(names[1]!), '--site', 'b', '--tables', 't', '--capture', 'plpgsql');
    expect(mb.stdout).toMatch(/^capture: plpgsql$/m);
    const badMode = await cli('migrate', '--config', cfg('a'), '--capture', 'fast').catch((e: { stderr: string }) => e);
    expect((badMode as { stderr: string }).stderr).toMatch(
      /--capture must be one of auto, native, plpgsql, not 'fast'/,
    );
    const bad = await cli('migrate', '--db', dbUrl(names[1]!), '--site', 'b', '--tables', 'nope').catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((bad as { code: number }).code).toBe(1);
    const a = await openDb(dbUrl(names[0]!));
    const b = await openDb(dbUrl(names[1]!));
    try {
      await a.query(`INSERT INTO t VALUES (1, 'via cli')`);
      await cli('replicate', '--config', cfg('b'), '--once');
      expect((await b.query(`SELECT v FROM t`)).rows).toEqual([{ v: 'via cli' }]);
      const st = await cli('status', '--config', cfg('b'));
      expect(st.stdout).toMatch(/replication \(site b, capture plpgsql,/);
      const sa = await cli('status', '--config', cfg('a'));
      expect(sa.stdout).toMatch(/replication \(site a, capture native,/);
      expect(st.stdout).toMatch(/^\s+a\s+0\s+0\.00s\s+1\s+0/m);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('the replicate daemon', () => {
  const created: string[] = [];
  afterAll(async () => {
    await dropDatabases(created);
  });

  it('serves metrics, applies what it polls and stops cleanly on SIGTERM', async () => {
    const names = await createDatabases('daemon', 2);
    created.push(...names);
    for (const [i, n] of names.entries()) {
      const db = await openDb(dbUrl(n));
      await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`);
      await migrate(db, { site: i === 0 ? 'a' : 'b', tables: ['t'] });
      await db.close();
    }
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'ms-daemon-'));
    const cfg = join(dir, 'b.yaml');
    writeFileSync(
      cfg,
      `site: b\nsites:\n  - name: a\n  - name: b\nreplication:\n  tables: [t]\n  metrics: 127.0.0.1:${port}\n  sites:\n    a: { db: "${dbUrl(names[0]!)}" }\n    b: { db: "${dbUrl(names[1]!)}" }\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'replicate', '--config', cfg], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // a loaded machine may take a minute to start tsx; nothing here asserts how long anything takes
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const a = await openDb(dbUrl(names[0]!));
    const b = await openDb(dbUrl(names[1]!));
    try {
      await waitFor('the replicator to start', () => log.includes('replicator starting'), 120_000);
      await a.query(`INSERT INTO t VALUES (1, 'pushed')`);
      await waitFor('the row at b', async () => (await b.query(`SELECT 1 FROM t`)).rowCount === 1, 60_000, 5);
      const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(body).toMatch(/multisite_replication_lag_seconds\{peer="a"\} 0/);
      expect(body).toMatch(/multisite_replication_changes_total\{peer="a"\} 1/);
      expect(body).toMatch(/multisite_replication_conflicts_total/);
      expect(body).not.toMatch(/password/i);
      const code = new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
      child.kill('SIGTERM');
      expect(await code).toBe(0);
      expect(log).toMatch(/replicator stopped/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await a.close();
      await b.close();
    }
  }, 300_000);
});

describe('PGlite behind the same interface', () => {
  /** Sites a and b as two in-memory PGlite databases, each with table t made by ddl and migrated. */
  async function twoLiteSites(ddl: string) {
    const a = await openDb('pglite:memory');
    const b = await openDb('pglite:memory');
    for (const [db, site] of [
      [a, 'a'],
      [b, 'b'],
    ] as const) {
      await db.exec(ddl);
      await migrate(db, { site, tables: ['t'] });
    }
    return [a, b] as const;
  }

  it('a replicator killed between its apply and its ack acknowledges once restarted, the peer idle (it trims)', async () => {
    // embedded databases: each has transaction ids of its own, so nothing else moves a's snapshot
    // (on a shared PostgreSQL any other transaction does, and the next read would ack anyway)
    const [a, b] = await twoLiteSites(`CREATE TABLE t (id int PRIMARY KEY, v text)`);
    try {
      await a.query(`INSERT INTO t SELECT g, 'x' FROM generate_series(1, 20) g`);
      const src = dbSource('a', a);
      const dying = new Replicator({
        site: 'b',
        local: b,
        sources: [
          { name: 'a', read: (wm, limit) => src.read(wm, limit), ack: () => Promise.reject(new Error('killed')) },
        ],
      });
      expect(await dying.syncAll()).toBe(20);
      const queued = async () =>
        (await a.query<{ n: number }>(`SELECT count(*)::int AS n FROM multisite.change`)).rows[0]!.n;
      const ra = new Replicator({ site: 'a', local: a, peers: [{ name: 'b', db: b }] });
      await ra.trim();
      expect(await queued()).toBe(20);
      // restarted with nothing new to read: it still tells a what it applied, and a trims it
      const restarted = new Replicator({ site: 'b', local: b, peers: [{ name: 'a', db: a }] });
      expect(await restarted.syncAll()).toBe(0);
      await ra.trim();
      expect(await queued()).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  }, 600_000);

  it('replicates between two embedded databases', async () => {
    const [a, b] = await twoLiteSites(`CREATE TABLE t (id int PRIMARY KEY, v text, n numeric)`);
    try {
      const ra = new Replicator({ site: 'a', local: a, peers: [{ name: 'b', db: b }] });
      const rb = new Replicator({ site: 'b', local: b, peers: [{ name: 'a', db: a }] });
      await a.query(`INSERT INTO t VALUES (1, 'lite', 1.5)`);
      await b.query(`INSERT INTO t VALUES (2, 'also', 2)`);
      await a.query(`UPDATE t SET v = 'x' WHERE id = 1`);
      await rb.syncAll();
      await ra.syncAll();
      expect(await digest(a, ['t'])).toBe(await digest(b, ['t']));
      expect((await b.query(`SELECT v FROM t WHERE id = 1`)).rows).toEqual([{ v: 'x' }]);
    } finally {
      await a.close();
      await b.close();
    }
    // no deadline of its own worth asserting: two WebAssembly PostgreSQL instances start and migrate
    // in 5 s on an idle machine, 80 s on a loaded 2-core one; the work above has no waits to time out
  }, 600_000);
});
