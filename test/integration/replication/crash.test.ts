/**
 * Crash: kill -9 the replicator process at random points while it applies (50+ times), with writers
 * running at both sites → after restart the databases converge, nothing lost, nothing applied twice
 * (every site consumed exactly the number of changes its peer produced).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/migrate.js';
import { createDatabases, dbUrl, dropDatabases, waitFor } from '../support/pg.js';
import { digest } from './harness.js';

const KILLS = Number(process.env.KILLS ?? 50);
const SITES = ['a', 'b'] as const;
const TABLES = ['ledger', 'counter'];

describe('crash safety: kill -9 during apply', () => {
  let names: string[] = [];
  const dbs: Db[] = [];
  let dir = '';
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    names = await createDatabases('crash', 2);
    dir = mkdtempSync(join(tmpdir(), 'ms-crash-'));
    for (const [i, n] of names.entries()) {
      const db = await openDb(dbUrl(n), { max: 4 });
      dbs.push(db);
      await db.exec(`
        CREATE TABLE ledger (site text, n int, v text, PRIMARY KEY (site, n));
        CREATE TABLE counter (k int PRIMARY KEY, v bigint NOT NULL, note text);
        INSERT INTO counter SELECT g, 0, NULL FROM generate_series(1, 100) g;`);
      await migrate(db, { site: SITES[i]!, tables: TABLES });
      writeFileSync(
        join(dir, `${SITES[i]}.yaml`),
        `site: ${SITES[i]}\nsites:\n  - name: a\n  - name: b\nreplication:\n  tables: [ledger, counter]\n  batch-size: 300\n  poll-interval-ms: 50\n  sites:\n    a: { db: "${dbUrl(names[0]!)}" }\n    b: { db: "${dbUrl(names[1]!)}" }\n  log-level: warn\n`,
      );
    }
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(dbs.map((d) => d.close().catch(() => undefined)));
    if (bundle) rmSync(bundle, { force: true });
    if (!process.env.KEEP) await dropDatabases(names);
    else console.log('KEPT', names);
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
    new Promise<number | null>((res) => (c.exitCode !== null || c.signalCode !== null ? res(c.exitCode) : c.once('exit', (code) => res(code))));

  it(`converges exactly after ${KILLS} kill -9 during apply`, async () => {
    // writers: inserts (ledger) and disjoint updates (counter: a owns 1-50, b 51-100), in transactions of 1-12 rows
    const produced = [0, 0];
    const seq = [0, 0];
    let writing = true;
    const writer = async (i: number) => {
      const db = dbs[i]!;
      while (writing) {
        const rows = 1 + Math.floor(Math.random() * 12);
        await db.transaction(async (tx) => {
          for (let r = 0; r < rows; r++) {
            if (Math.random() < 0.6) {
              await tx.query(`INSERT INTO ledger VALUES ($1, $2, md5(random()::text))`, [SITES[i], ++seq[i]!]);
            } else {
              const k = 1 + Math.floor(Math.random() * 50) + i * 50;
              await tx.query(`UPDATE counter SET v = v + 1, note = $2 WHERE k = $1`, [k, `${SITES[i]}${seq[i]}`]);
            }
          }
        });
        produced[i]! += rows;
        await new Promise((r) => setTimeout(r, 10)); // load shaping: leave CPU to the replicators
      }
    };
    const writers = [writer(0), writer(1)];

    let duringApply = 0;
    try {
      for (let k = 0; k < KILLS; k++) {
        const si = Math.floor(Math.random() * 2);
        const site = SITES[si]!;
        const local = dbs[si]!;
        const tIter = performance.now();
        const child = replicator(site);
        // wait until this child has an apply transaction that has written (holds an xid)
        let inApply = false;
        await waitFor(
          'an apply transaction',
          async () => {
            if (child.exitCode !== null) throw new Error(`replicator exited: ${(child as ChildProcess & { errText: () => string }).errText()}`);
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
        child.kill('SIGKILL');
        await exited(child);
        if (process.env.CRASH_DEBUG) console.error('iteration', k, site, inApply, Math.round(performance.now() - tIter), 'ms');
      }
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    expect(duringApply).toBeGreaterThanOrEqual(KILLS * 0.8);

    const tFinal = performance.now();
    // restart: run each site's replicator to completion, twice round so both directions settle
    for (let round = 0; round < 2; round++) {
      for (const site of SITES) {
        const c = replicator(site, '--once');
        const code = await exited(c);
        expect(code, (c as ChildProcess & { errText: () => string }).errText()).toBe(0);
      }
    }
    if (process.env.CRASH_DEBUG) console.error('final catch-up', Math.round(performance.now() - tFinal), 'ms', produced);
    const [da, db] = await Promise.all(dbs.map((d) => digest(d, TABLES)));
    if (da !== db) {
      for (const [i, d] of dbs.entries()) {
        console.error(SITES[i], 'conflicts', (await d.query(`SELECT kind, reason, pk::text FROM multisite.conflict LIMIT 5`)).rows);
        console.error(SITES[i], 'watermark', (await d.query(`SELECT * FROM multisite.watermark`)).rows);
        console.error(SITES[i], 'ack', (await d.query(`SELECT * FROM multisite.ack`)).rows);
        console.error(SITES[i], 'ledger', (await d.query(`SELECT site, count(*), max(n) FROM ledger GROUP BY 1`)).rows);
      }
      const missing = await dbs[0]!.query(`SELECT count(*) FROM ledger WHERE site = 'b'`);
      console.error('a has b rows', missing.rows, 'b wrote', seq[1]);
    }
    expect(db).toBe(da);
    const ledger = await dbs[1]!.query<{ site: string; n: string; max: number }>(`SELECT site, count(*)::text AS n, max(n) AS max FROM ledger GROUP BY site ORDER BY site`);
    // every insert of each site, once: rows 1..seq, none missing, none twice
    expect(ledger.rows).toEqual([
      { site: 'a', n: String(seq[0]), max: seq[0] },
      { site: 'b', n: String(seq[1]), max: seq[1] },
    ]);
    // exactly once: b consumed exactly what a produced and vice versa
    for (const [i, d] of dbs.entries()) {
      const wm = await d.query<{ changes: string }>(`SELECT changes::text FROM multisite.watermark WHERE peer = $1`, [SITES[1 - i]]);
      expect(Number(wm.rows[0]!.changes)).toBe(produced[1 - i]);
      expect((await d.query(`SELECT count(*)::int AS n FROM multisite.conflict`)).rows).toEqual([{ n: 0 }]);
    }
  }, 300_000);
});
