/**
 * Crash: kill -9 the replicator process many times (KILLS, default 20; `KILLS=120` for the long run)
 * with writers at both sites (single- and multi-row transactions, 200-row bulk inserts, deletes,
 * primary-key changes, 1% of transactions held open 0.5–3 s, so change ids commit out of order):
 * a quarter of the kills at a random moment, half inside the apply transaction, a quarter followed
 * by an outage that lasts until the peer's backlog passes three batches, so the next batch is big. Then the daemons
 * run on their own until the sites
 * converge: nothing lost, nothing applied twice (every site consumed exactly the number of changes
 * its peer produced), no conflict, and every change acknowledged and trimmed. Site b's database
 * is in a PostgreSQL cluster of its own, as at a real second site.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { createDatabases, dbUrl, dropDatabases, startCluster, waitFor, type Cluster } from '../support/pg.js';
import { digest } from './harness.js';

const KILLS = Number(process.env.KILLS ?? 20);
const SITES = ['a', 'b'] as const;
const TABLES = ['ledger', 'counter'];
/** Changes an outage lets pile up before the replicator restarts (batch-size is 300). */
const OUTAGE_BACKLOG = 1000;

describe('crash safety: kill -9 during apply', () => {
  let names: string[] = [];
  /** Site b's PostgreSQL: a cluster of its own, as at a real second site (a's is the shared one). */
  let clusterB: Cluster | undefined;
  const urls: string[] = [];
  const dbs: Db[] = [];
  let dir = '';
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    clusterB = await startCluster();
    names = [...(await createDatabases('crash', 1)), ...(await clusterB.createDatabases('crash', 1))];
    urls.push(dbUrl(names[0]!), clusterB.url(names[1]!));
    dir = mkdtempSync(join(tmpdir(), 'ms-crash-'));
    for (const [i, url] of urls.entries()) {
      const db = await openDb(url, { max: 4 });
      dbs.push(db);
      await db.exec(`
        CREATE TABLE ledger (site text, n int, v text, PRIMARY KEY (site, n));
        CREATE TABLE counter (k int PRIMARY KEY, v bigint NOT NULL, note text);
        INSERT INTO counter SELECT g, 0, NULL FROM generate_series(1, 100) g;`);
      await migrate(db, { site: SITES[i]!, tables: TABLES });
      writeFileSync(
        join(dir, `${SITES[i]}.yaml`),
        `site: ${SITES[i]}\nsites:\n  - name: a\n  - name: b\nreplication:\n  tables: [ledger, counter]\n  batch-size: 300\n  poll-interval-ms: 50\n  sites:\n    a: { db: "${urls[0]}" }\n    b: { db: "${urls[1]}" }\n  log-level: warn\n`,
      );
    }
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(dbs.map((d) => d.close().catch(() => undefined)));
    if (bundle) rmSync(bundle, { force: true });
    if (!process.env.KEEP) {
      await dropDatabases(names.slice(0, 1));
      await clusterB?.stop();
    } else console.log('KEPT', urls);
  });

  /** The child's entry: bundled once with esbuild (fast start), or run through tsx if that fails. */
  let entry: string[] = ['--import', 'tsx', 'test/integration/replication/replicate-child.ts'];
  let bundle = '';
  beforeAll(async () => {
    try {
      const esbuild = await import('esbuild');
      const out = join(process.cwd(), '.tmp', `replicate-child-${process.pid}.mjs`);
      await esbuild.build({
        entryPoints: ['test/integration/replication/replicate-child.ts'],
        bundle: true,
        platform: 'node',
        format: 'esm',
        packages: 'external',
        outfile: out,
        logLevel: 'silent',
      });
      entry = [out];
      bundle = out;
    } catch {
      // keep tsx
    }
  });

  function replicator(site: string, ...extra: string[]): ChildProcess {
    const child = spawn(process.execPath, [...entry, '--config', join(dir, `${site}.yaml`), ...extra], {
      cwd: process.cwd(),
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MULTISITE_LOG_LEVEL: 'warn' },
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    children.add(child);
    child.on('exit', () => children.delete(child));
    (child as ChildProcess & { errText: () => string }).errText = () => err;
    return child;
  }

  const exited = (c: ChildProcess) =>
    new Promise<number | null>((res) =>
      c.exitCode !== null || c.signalCode !== null ? res(c.exitCode) : c.once('exit', (code) => res(code)),
    );

  it(`converges exactly after ${KILLS} kill -9 during apply`, async () => {
    // writers: each site writes only its own ledger rows and counters (no conflicts by design), so
    // the exact number of changes each site produced is known
    const produced = [0, 0];
    const seq = [0, 0];
    const live: number[][] = [[], []];
    let writing = true;
    const pick = (i: number) => live[i]!.splice(Math.floor(Math.random() * live[i]!.length), 1)[0];
    const writer = async (i: number) => {
      const db = dbs[i]!;
      const site = SITES[i]!;
      while (writing) {
        const rows = 1 + Math.floor(Math.random() * 12);
        const hold = Math.random() < 0.01 ? 500 + Math.random() * 2500 : 0;
        const added: number[] = [];
        const n = await db.transaction(async (tx) => {
          let count = 0;
          for (let r = 0; r < rows; r++) {
            const x = Math.random();
            if (x < 0.02) {
              const first = seq[i]! + 1;
              seq[i]! += 200;
              await tx.query(`INSERT INTO ledger SELECT $1, g, md5(g::text) FROM generate_series($2::int, $3::int) g`, [
                site,
                first,
                first + 199,
              ]);
              for (let k = first; k <= first + 199; k++) added.push(k);
              count += 200;
            } else if (x < 0.5) {
              await tx.query(`INSERT INTO ledger VALUES ($1, $2, md5(random()::text))`, [site, ++seq[i]!]);
              added.push(seq[i]!);
              count++;
            } else if (x < 0.6 && live[i]!.length > 0) {
              const k = pick(i)!;
              count += (await tx.query(`DELETE FROM ledger WHERE site = $1 AND n = $2`, [site, k])).rowCount;
            } else if (x < 0.7 && live[i]!.length > 0) {
              // a primary-key change: a delete of the old key and an insert of the new one
              const k = pick(i)!;
              const to = ++seq[i]!;
              added.push(to);
              count +=
                2 * (await tx.query(`UPDATE ledger SET n = $3 WHERE site = $1 AND n = $2`, [site, k, to])).rowCount;
            } else {
              const k = 1 + Math.floor(Math.random() * 50) + i * 50;
              await tx.query(`UPDATE counter SET v = v + 1, note = $2 WHERE k = $1`, [k, `${site}${seq[i]}`]);
              count++;
            }
          }
          if (hold) await new Promise((r) => setTimeout(r, hold)); // commits after later transactions
          return count;
        });
        live[i]!.push(...added);
        produced[i]! += n;
        await new Promise((r) => setTimeout(r, 10)); // load shaping: leave CPU to the replicators
      }
    };
    const writers = [writer(0), writer(1)];

    /** How many of its peer's changes site i has applied (its watermark). */
    const consumed = async (i: number) => {
      const wm = await dbs[i]!.query<{ changes: string }>(
        `SELECT changes::text FROM multisite.watermark WHERE peer = $1`,
        [SITES[1 - i]],
      );
      return Number(wm.rows[0]?.changes ?? -1);
    };

    let duringApply = 0;
    try {
      for (let k = 0; k < KILLS; k++) {
        const si = Math.floor(Math.random() * 2);
        const site = SITES[si]!;
        const local = dbs[si]!;
        const mode = k % 4 === 0 ? 'random' : k % 4 === 3 ? 'outage' : 'apply';
        const child = replicator(site);
        if (mode === 'random') {
          await new Promise((r) => setTimeout(r, Math.random() * 2000));
        } else {
          // wait until this child has an apply transaction that has written (holds an xid)
          let inApply = false;
          await waitFor(
            'an apply transaction',
            async () => {
              if (child.exitCode !== null)
                throw new Error(`replicator exited: ${(child as ChildProcess & { errText: () => string }).errText()}`);
              const r = await local.query(
                `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'multisite-replicate'
                   AND backend_xid IS NOT NULL`,
              );
              inApply = r.rowCount > 0;
              return inApply;
            },
            20_000,
            2,
          ).catch((e: Error) => {
            if (/exited/.test(e.message)) throw e;
          });
          if (inApply) duringApply++;
          await new Promise((r) => setTimeout(r, Math.random() * 15)); // a random point inside the apply
        }
        child.kill('SIGKILL');
        await exited(child);
        if (mode === 'outage') {
          // an outage long enough that the next batch is big: the peer's backlog here passes three batches
          await waitFor(
            `a backlog of ${OUTAGE_BACKLOG} changes at ${site}`,
            async () => produced[1 - si]! - (await consumed(si)) >= OUTAGE_BACKLOG,
            120_000,
            50,
          );
        }
        if (process.env.CRASH_DEBUG) console.error('iteration', k, site, mode);
      }
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    expect(duringApply).toBeGreaterThanOrEqual(Math.floor(KILLS / 2) * 0.6);

    // the daemons, on their own, must consume everything (a stall would be logged and recovered)
    const daemons = SITES.map((site) => replicator(site));
    try {
      await waitFor(
        'both sites to consume every change of their peer',
        async () => (await consumed(0)) >= produced[1]! && (await consumed(1)) >= produced[0]!,
        600_000,
        200,
      );
      // and, idle, to acknowledge them: each site then trims its change table to nothing (a
      // replicator killed between its apply and its ack once left an idle peer's table full)
      await waitFor(
        'both change tables trimmed once every change is acknowledged',
        async () => {
          const left = await Promise.all(dbs.map((d) => d.query(`SELECT 1 FROM multisite.change LIMIT 1`)));
          return left.every((r) => r.rowCount === 0);
        },
        120_000,
        200,
      );
    } finally {
      for (const c of daemons) c.kill('SIGTERM');
      await Promise.all(daemons.map(exited));
    }
    const [da, db] = await Promise.all(dbs.map((d) => digest(d, TABLES)));
    if (da !== db) {
      for (const [i, d] of dbs.entries()) {
        console.error(
          SITES[i],
          'conflicts',
          (await d.query(`SELECT kind, reason, pk::text FROM multisite.conflict LIMIT 5`)).rows,
        );
        console.error(SITES[i], 'watermark', (await d.query(`SELECT * FROM multisite.watermark`)).rows);
        console.error(SITES[i], 'ack', (await d.query(`SELECT * FROM multisite.ack`)).rows);
        console.error(SITES[i], 'ledger', (await d.query(`SELECT site, count(*), max(n) FROM ledger GROUP BY 1`)).rows);
      }
      const missing = await dbs[0]!.query(`SELECT count(*) FROM ledger WHERE site = 'b'`);
      console.error('a has b rows', missing.rows, 'b wrote', seq[1]);
    }
    expect(db).toBe(da);
    // every row each site has, the other has: exactly the writer's own live set
    for (const [i, site] of SITES.entries()) {
      const r = await dbs[1 - i]!.query<{ n: number }>(`SELECT n FROM ledger WHERE site = $1 ORDER BY n`, [site]);
      expect(r.rows.map((x) => x.n)).toEqual([...live[i]!].sort((x, y) => x - y));
    }
    // exactly once: b consumed exactly what a produced and vice versa
    for (const [i, d] of dbs.entries()) {
      expect(await consumed(i)).toBe(produced[1 - i]);
      expect((await d.query(`SELECT count(*)::int AS n FROM multisite.conflict`)).rows).toEqual([{ n: 0 }]);
    }
  }, 1_800_000);
});
