/** Several sites, each its own database on the local PostgreSQL, with in-process replicators. */
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { Replicator } from '../../../src/db-triggers/replicator.js';
import type { Policy } from '../../../src/db-triggers/types.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';

export interface Site {
  name: string;
  dbName: string;
  url: string;
  db: Db;
  rep: Replicator;
}

export interface Cluster {
  sites: Site[];
  site(name: string): Site;
  /** Syncs every pair until nothing moves. */
  syncAll(): Promise<void>;
  /** A digest of every listed table, per site. */
  digests(tables: string[]): Promise<string[]>;
  close(): Promise<void>;
}

export async function createCluster(
  prefix: string,
  names: string[],
  schemaSql: string,
  tables: string[],
  opts: { policy?: Policy; batchSize?: number } = {},
): Promise<Cluster> {
  const dbNames = await createDatabases(prefix, names.length);
  const dbs: Db[] = [];
  try {
    for (const [i, name] of names.entries()) {
      const db = await openDb(dbUrl(dbNames[i]!), { applicationName: `test-${name}` });
      dbs.push(db);
      await db.exec(schemaSql);
      await migrate(db, { site: name, tables });
    }
  } catch (err) {
    await Promise.all(dbs.map((d) => d.close()));
    await dropDatabases(dbNames);
    throw err;
  }
  const sites: Site[] = names.map((name, i) => ({
    name,
    dbName: dbNames[i]!,
    url: dbUrl(dbNames[i]!),
    db: dbs[i]!,
    rep: new Replicator({
      site: name,
      local: dbs[i]!,
      peers: names.map((n, j) => ({ name: n, db: dbs[j]! })).filter((p) => p.name !== name),
      ...(opts.policy ? { policy: opts.policy } : {}),
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      pollIntervalMs: 200,
    }),
  }));
  return {
    sites,
    site: (n) => sites.find((s) => s.name === n)!,
    async syncAll() {
      for (let round = 0; round < 20; round++) {
        let moved = 0;
        for (const s of sites) moved += await s.rep.syncAll();
        if (moved === 0) return;
      }
      throw new Error('replication did not settle in 20 rounds');
    },
    async digests(tbls) {
      return Promise.all(sites.map((s) => digest(s.db, tbls)));
    },
    async close() {
      await Promise.all(sites.map((s) => s.rep.stop().catch(() => undefined)));
      await Promise.all(sites.map((s) => s.db.close().catch(() => undefined)));
      await dropDatabases(dbNames);
    },
  };
}

/** Every row of the tables, ordered by primary key, as text. */
export async function digest(db: Db, tables: string[]): Promise<string> {
  const parts: string[] = [];
  for (const t of tables) {
    const r = await db.query<{ d: string | null }>(
      `SELECT string_agg(x::text, E'\\n' ORDER BY x::text) AS d FROM ${t} x`,
    );
    parts.push(`${t}:\n${r.rows[0]?.d ?? ''}`);
  }
  return parts.join('\n');
}
