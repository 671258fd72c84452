/**
 * Property: random interleavings of inserts, updates and deletes on the same and different rows at
 * two and three sites, random sync points and random clock skew → every database identical at the
 * end; every write overwritten by a write that had not seen it is in a conflict log; no peer change
 * is consumed more often than it was produced.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { Replicator } from '../../../src/db-triggers/replicator.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';
import { digest } from './harness.js';

const NAMES = ['a', 'b', 'c'];
type Kind = 'ins' | 'updA' | 'updB' | 'updAB' | 'del';
type Cmd = { t: 'w'; site: number; key: number; kind: Kind } | { t: 's'; from: number; to: number };

interface Write {
  id: number;
  site: string;
  key: number;
  kind: 'I' | 'U' | 'D';
  cols: Record<string, string>;
  knownBefore: Set<number>;
}

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('w' as const),
      site: fc.nat(2),
      key: fc.integer({ min: 1, max: 4 }),
      kind: fc.constantFrom<Kind>('ins', 'updA', 'updB', 'updAB', 'del'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('s' as const), from: fc.nat(2), to: fc.nat(2) }) },
);

describe('property: convergence, conflicts logged, nothing consumed twice', () => {
  let dbNames: string[] = [];
  const dbs: Db[] = [];
  beforeAll(async () => {
    dbNames = await createDatabases('prop', 3);
    for (const [i, n] of dbNames.entries()) {
      const db = await openDb(dbUrl(n), { max: 2 });
      dbs.push(db);
      await db.exec(`CREATE TABLE kv (k int PRIMARY KEY, a text, b text)`);
      await migrate(db, { site: NAMES[i]!, tables: ['kv'] });
    }
  });
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.close().catch(() => undefined)));
    await dropDatabases(dbNames);
  });

  it('holds for random histories at 2 and 3 sites', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2, 3),
        fc.array(fc.integer({ min: -3000, max: 3000 }), { minLength: 3, maxLength: 3 }),
        fc.array(cmd, { minLength: 4, maxLength: 40 }),
        async (n, skews, cmds) => {
          const sites = NAMES.slice(0, n);
          for (const [i, db] of dbs.entries()) {
            await db.exec(
              `TRUNCATE kv, multisite.change, multisite.row_clock, multisite.watermark, multisite.ack, multisite.conflict`,
            );
            await db.query(`UPDATE multisite.site SET hlc_floor = 0, clock_offset_ms = $1`, [skews[i]!]);
          }
          const reps = sites.map(
            (s, i) =>
              new Replicator({
                site: s,
                local: dbs[i]!,
                peers: sites.map((p, j) => ({ name: p, db: dbs[j]! })).filter((p) => p.name !== s),
              }),
          );
          const peerOf = (i: number) => ({ name: sites[i]!, db: dbs[i]! });
          const writes: Write[] = [];
          const known = sites.map(() => new Set<number>());
          const produced = sites.map(() => 0);
          let seq = 0;
          for (const c of cmds) {
            if (c.t === 'w') {
              const si = c.site % n;
              const db = dbs[si]!;
              const v = () => `${sites[si]}${++seq}`;
              let cols: Record<string, string> = {};
              let kind: Write['kind'];
              let r;
              if (c.kind === 'ins') {
                cols = { a: v(), b: v() };
                kind = 'I';
                r = await db.query(`INSERT INTO kv VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [
                  c.key,
                  cols.a,
                  cols.b,
                ]);
              } else if (c.kind === 'del') {
                kind = 'D';
                r = await db.query(`DELETE FROM kv WHERE k = $1`, [c.key]);
              } else {
                kind = 'U';
                if (c.kind !== 'updB') cols.a = v();
                if (c.kind !== 'updA') cols.b = v();
                const sets = Object.keys(cols).map((col, i) => `${col} = $${i + 2}`);
                r = await db.query(`UPDATE kv SET ${sets.join(', ')} WHERE k = $1`, [c.key, ...Object.values(cols)]);
              }
              if (r.rowCount > 0) {
                const w: Write = {
                  id: writes.length,
                  site: sites[si]!,
                  key: c.key,
                  kind,
                  cols,
                  knownBefore: new Set(known[si]),
                };
                writes.push(w);
                known[si]!.add(w.id);
                produced[si]!++;
              }
            } else {
              const from = c.from % n;
              const to = c.to % n;
              if (from === to) continue;
              const before = writes.filter((w) => w.site === sites[from]).map((w) => w.id);
              while ((await reps[to]!.syncPeer(peerOf(from))).changes > 0);
              for (const id of before) known[to]!.add(id);
            }
          }
          // final: everything everywhere
          for (let round = 0; ; round++) {
            let moved = 0;
            for (const r of reps) moved += await r.syncAll();
            if (moved === 0) break;
            if (round > 10) throw new Error('did not settle');
          }
          const digests = await Promise.all(dbs.slice(0, n).map((d) => digest(d, ['kv'])));
          for (const d of digests) expect(d).toBe(digests[0]);

          // every overwritten write is either superseded by a write that had seen it, or logged
          const final = new Map<number, Record<string, string>>();
          for (const r of (await dbs[0]!.query<{ k: number; a: string; b: string }>(`SELECT k, a, b FROM kv`)).rows)
            final.set(r.k, { a: r.a, b: r.b });
          const losers: Record<string, string>[] = [];
          for (const db of dbs.slice(0, n)) {
            for (const r of (await db.query<{ l: string | null }>(`SELECT loser::text AS l FROM multisite.conflict`))
              .rows) {
              if (r.l) losers.push(JSON.parse(r.l) as Record<string, string>);
            }
          }
          for (const w of writes) {
            for (const [col, v] of Object.entries(w.cols)) {
              if (final.get(w.key)?.[col] === v) continue;
              const superseded = writes.some(
                (g) => g.key === w.key && g.id !== w.id && (g.kind === 'D' || col in g.cols) && g.knownBefore.has(w.id),
              );
              if (superseded) continue;
              const logged = losers.some((l) => l[col] === v);
              if (!logged)
                throw new Error(
                  `write ${v} (${w.kind} k=${w.key} ${col} at ${w.site}) was overwritten unseen and not logged`,
                );
            }
          }
          // nothing consumed twice: a site never consumed more changes of a peer than it produced
          for (const [i, db] of dbs.slice(0, n).entries()) {
            const wm = await db.query<{ peer: string; changes: string }>(
              `SELECT peer, changes::text FROM multisite.watermark`,
            );
            for (const r of wm.rows) expect(Number(r.changes)).toBeLessThanOrEqual(produced[sites.indexOf(r.peer)]!);
            void i;
          }
        },
      ),
      { numRuns: 100, endOnFailure: true },
    );
  }, 180_000);
});
