import { openDb, type Db } from '../db/index.js';
import { migrate, Replicator } from '../db-triggers/index.js';

/**
 * The replication part of `make demo`: two sites' databases (embedded PGlite, nothing to install),
 * one replicator per site. A write at each site reaches the other; the same row written at both
 * sites at once is a conflict: the later write wins everywhere, the loser is in the conflict log of
 * the site that found it.
 */
export async function runReplicationDemo(say: (s: string) => void): Promise<void> {
  const dbs: Db[] = [];
  try {
    for (const site of ['a', 'b']) {
      const db = await openDb('pglite:memory');
      dbs.push(db);
      await db.query('CREATE TABLE account (id int PRIMARY KEY, owner text, plan text)');
      await migrate(db, { site, tables: ['account'] });
    }
    const [a, b] = dbs as [Db, Db];
    const rep = (site: string, local: Db, peer: Db, peerName: string) =>
      new Replicator({ site, local, peers: [{ name: peerName, db: peer }], pollIntervalMs: 200 });
    const reps = [rep('a', a, b, 'b'), rep('b', b, a, 'a')];
    const sync = async () => {
      for (let round = 0; round < 3; round++) for (const r of reps) await r.syncAll();
    };
    say('\nmultisite demo, replication: two sites, each an embedded PostgreSQL (PGlite) with capture triggers.\n');
    await a.query(`INSERT INTO account VALUES (1, 'alice', 'free')`);
    await b.query(`INSERT INTO account VALUES (2, 'bob', 'free')`);
    say('== a write at each site: a inserts alice, b inserts bob');
    await sync();
    say(`   a: ${await table(a)}\n   b: ${await table(b)}`);
    say('== the same row written at both sites before either replicated: a sets plan=pro, then b sets plan=team');
    await a.query(`UPDATE account SET plan = 'pro' WHERE id = 1`);
    await b.query(`UPDATE account SET plan = 'team' WHERE id = 1`);
    await sync();
    say(`   a: ${await table(a)}\n   b: ${await table(b)}   (the later write wins at both sites)`);
    for (const [name, db] of [['a', a] as const, ['b', b] as const]) {
      const log = await db.query<{ kind: string; winner_site: string; loser_site: string; w: string; l: string }>(
        `SELECT kind, winner_site, loser_site, winner->>'plan' AS w, loser->>'plan' AS l FROM multisite.conflict`,
      );
      for (const c of log.rows)
        say(
          `   conflict log at ${name}: ${c.kind}, winner ${c.winner_site} (plan=${c.w}), loser ${c.loser_site} (plan=${c.l})`,
        );
    }
  } finally {
    await Promise.all(dbs.map((d) => d.close()));
  }
}

async function table(db: Db): Promise<string> {
  const r = await db.query<{ id: number; owner: string; plan: string }>(
    'SELECT id, owner, plan FROM account ORDER BY id',
  );
  return r.rows.map((x) => `(${x.id}, ${x.owner}, ${x.plan})`).join(' ');
}
