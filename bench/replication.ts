/**
 * Replication benchmark on two local PostgreSQL databases (sites a and b), replicators running as
 * real `multisite replicate` processes. Prints a table, writes bench/results/replication.json.
 *
 *   W1  50,000 single-row updates at a from 4 connections → time until b has them all
 *       (and "W1 backlog": the same queued while b's replicator is stopped → apply capacity)
 *   W2  20,000 writes at each site at once on disjoint rows → convergence time
 *   W3  2,000 rows updated at both sites within the same second → identical end state, conflicts logged
 *   W4  5,000 updates of one hot row → changes shipped, time to converge
 *   trigger overhead: insert rate with and without the capture trigger
 *
 * Environment: BENCH_PGURL (default postgres://postgres@127.0.0.1:5432), BENCH_SCALE (default 1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../src/db-triggers/migrate.js';
import { openDb, type Db } from '../src/db/index.js';
import { Replicator } from '../src/db-triggers/replicator.js';

const BASE = process.env.BENCH_PGURL ?? 'postgres://postgres@127.0.0.1:5432';
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const n = (x: number) => Math.max(1, Math.round(x * SCALE));
const W1_ROWS = n(50_000);
const W2_ROWS = n(20_000);
const W3_ROWS = n(2_000);
const W4_UPDATES = n(5_000);
const OVERHEAD_ROWS = n(20_000);
const CONNS = 4;

const tag = Math.random().toString(16).slice(2, 8);
const names = ['a', 'b'].map((s) => `ms_bench_${tag}_${s}`);
const url = (db: string) => `${BASE}/${db}`;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url('postgres') });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const now = () => performance.now();

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 600_000): Promise<number> {
  const deadline = now() + timeoutMs;
  while (!(await check())) {
    if (now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
  return now();
}

/** Runs `jobs` statements spread over CONNS connections, each statement its own transaction. */
async function hammer(pool: pg.Pool, count: number, stmt: (i: number) => [string, unknown[]]): Promise<number> {
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: CONNS }, async () => {
      const c = await pool.connect();
      try {
        for (;;) {
          const i = next++;
          if (i >= count) break;
          const [sql, params] = stmt(i);
          await c.query(sql, params);
        }
      } finally {
        c.release();
      }
    }),
  );
  return now() - t0;
}

async function scalar(db: Db, sql: string): Promise<number> {
  const r = await db.query<{ v: string | number | null }>(sql);
  return Number(r.rows[0]?.v ?? 0);
}

async function main(): Promise<void> {
  for (const d of names) await admin(`CREATE DATABASE "${d}"`);
  const children: ChildProcess[] = [];
  const dbs: Db[] = [];
  const pools: pg.Pool[] = [];
  const results: Record<string, unknown> = {};
  try {
    const dir = mkdtempSync(join(tmpdir(), 'ms-bench-'));
    for (const [i, d] of names.entries()) {
      const db = await openDb(url(d), { max: 2 });
      dbs.push(db);
      const pool = new pg.Pool({ connectionString: url(d), max: CONNS });
      pool.on('error', () => undefined); // idle clients are terminated when the databases are dropped
      pools.push(pool);
      await db.exec(`
        CREATE TABLE bench (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0, s text);
        INSERT INTO bench SELECT g, 0, 'init' FROM generate_series(1, ${Math.max(W1_ROWS, W3_ROWS)}) g;
        CREATE TABLE w2 (id int PRIMARY KEY, site text, v text);
        CREATE TABLE plain (id int PRIMARY KEY, v text, n int);
        CREATE TABLE captured (id int PRIMARY KEY, v text, n int);`);
      await migrate(db, { site: i === 0 ? 'a' : 'b', tables: ['bench', 'w2', 'captured'] });
      writeFileSync(
        join(dir, `${i === 0 ? 'a' : 'b'}.yaml`),
        `site: ${i === 0 ? 'a' : 'b'}\nsites:\n  - name: a\n  - name: b\nreplication:\n  tables: [bench, w2, captured]\n  sites:\n    a: { db: "${url(names[0]!)}" }\n    b: { db: "${url(names[1]!)}" }\n  log-level: warn\n`,
      );
    }
    const [A, B] = dbs as [Db, Db];
    const [PA, PB] = pools as [pg.Pool, pg.Pool];

    // --- trigger overhead (before any replicator runs, so only the capture cost is measured) ---
    const plainMs = await hammer(PA, OVERHEAD_ROWS, (i) => [`INSERT INTO plain VALUES ($1::int, md5($1::text), $1::int)`, [i]]);
    const capturedMs = await hammer(PA, OVERHEAD_ROWS, (i) => [`INSERT INTO captured VALUES ($1::int, md5($1::text), $1::int)`, [i]]);
    let t = now();
    await A.query(`INSERT INTO plain SELECT g, md5(g::text), g FROM generate_series(${OVERHEAD_ROWS}, ${OVERHEAD_ROWS * 3}) g`);
    const plainBulkMs = now() - t;
    t = now();
    await A.query(`INSERT INTO captured SELECT g, md5(g::text), g FROM generate_series(${OVERHEAD_ROWS}, ${OVERHEAD_ROWS * 3}) g`);
    const capturedBulkMs = now() - t;
    const bulkRows = OVERHEAD_ROWS * 2 + 1;
    results.overhead = {
      singleRowInserts: OVERHEAD_ROWS,
      connections: CONNS,
      withoutTriggerPerSec: Math.round(OVERHEAD_ROWS / (plainMs / 1000)),
      withTriggerPerSec: Math.round(OVERHEAD_ROWS / (capturedMs / 1000)),
      bulkRows,
      bulkWithoutTriggerPerSec: Math.round(bulkRows / (plainBulkMs / 1000)),
      bulkWithTriggerPerSec: Math.round(bulkRows / (capturedBulkMs / 1000)),
    };

    // start both replicators (real processes), let them ship the overhead rows
    for (const s of ['a', 'b']) {
      const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'replicate', '--config', join(dir, `${s}.yaml`)], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(c);
    }
    const capturedRows = OVERHEAD_ROWS + bulkRows;
    await waitUntil(async () => (await scalar(B, `SELECT count(*) AS v FROM captured`)) === capturedRows);

    // --- W1: 50,000 single-row updates at a from 4 connections ---
    const w1Start = now();
    const w1WriteMs = await hammer(PA, W1_ROWS, (i) => [`UPDATE bench SET v = v + 1, s = 'w1' WHERE id = $1`, [i + 1]]);
    const w1WritesDone = now();
    const w1Done = await waitUntil(async () => (await scalar(B, `SELECT sum(v) AS v FROM bench`)) === W1_ROWS);
    results.W1 = {
      updates: W1_ROWS,
      writeSeconds: +(w1WriteMs / 1000).toFixed(2),
      writeRate: Math.round(W1_ROWS / (w1WriteMs / 1000)),
      secondsUntilAllAtB: +((w1Done - w1Start) / 1000).toFixed(2),
      rowsPerSec: Math.round(W1_ROWS / ((w1Done - w1Start) / 1000)),
      finalLagSeconds: +((w1Done - w1WritesDone) / 1000).toFixed(3),
    };

    // --- W1 backlog: the same 50,000 updates queued while b's replicator is stopped, then caught up
    // (measures what the replicator can apply, independent of the trigger-bound write rate) ---
    const childB = children[1]!;
    childB.kill('SIGTERM');
    await new Promise((r) => (childB.exitCode !== null ? r(null) : childB.once('exit', r)));
    await hammer(PA, W1_ROWS, (i) => [`UPDATE bench SET v = v + 1, s = 'w1b' WHERE id = $1`, [i + 1]]);
    const queued = await scalar(A, `SELECT count(*) AS v FROM multisite.change`);
    const catchUp = new Replicator({ site: 'b', local: B, peers: [{ name: 'a', db: A }] });
    const cu0 = now();
    const consumed = await catchUp.syncAll();
    const cuMs = now() - cu0;
    if ((await scalar(B, `SELECT sum(v) AS v FROM bench`)) !== 2 * W1_ROWS) throw new Error('W1 backlog did not converge');
    results.W1backlog = {
      updatesQueued: W1_ROWS,
      changesInQueue: queued,
      changesConsumed: consumed,
      catchUpSeconds: +(cuMs / 1000).toFixed(2),
      rowsPerSec: Math.round(consumed / (cuMs / 1000)),
    };
    const restarted = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'replicate', '--config', join(dir, 'b.yaml')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children[1] = restarted;
    await waitUntil(async () => (await scalar(A, `SELECT count(*) AS v FROM pg_stat_activity WHERE application_name = 'multisite-replicate-b'`)) > 0);

    // --- W2: 20,000 inserts at each site at once, disjoint rows ---
    const w2Start = now();
    await Promise.all([
      hammer(PA, W2_ROWS, (i) => [`INSERT INTO w2 VALUES ($1::int, 'a', md5($1::text))`, [i + 1]]),
      hammer(PB, W2_ROWS, (i) => [`INSERT INTO w2 VALUES ($1::int, 'b', md5($1::text))`, [W2_ROWS + i + 1]]),
    ]);
    const w2WritesDone = now();
    const w2Done = await waitUntil(
      async () => (await scalar(A, `SELECT count(*) AS v FROM w2`)) === 2 * W2_ROWS && (await scalar(B, `SELECT count(*) AS v FROM w2`)) === 2 * W2_ROWS,
    );
    results.W2 = {
      writesPerSite: W2_ROWS,
      writeSeconds: +((w2WritesDone - w2Start) / 1000).toFixed(2),
      convergenceSeconds: +((w2Done - w2Start) / 1000).toFixed(2),
      rowsPerSec: Math.round((2 * W2_ROWS) / ((w2Done - w2Start) / 1000)),
      finalLagSeconds: +((w2Done - w2WritesDone) / 1000).toFixed(3),
    };

    // --- W3: the same 2,000 rows updated at both sites within the same second ---
    const conflictsBefore = (await scalar(A, `SELECT count(*) AS v FROM multisite.conflict`)) + (await scalar(B, `SELECT count(*) AS v FROM multisite.conflict`));
    const w3Start = now();
    const chunk = 100;
    await Promise.all(
      [PA, PB].map((p, si) =>
        hammer(p, Math.ceil(W3_ROWS / chunk), (i) => [
          `UPDATE bench SET s = $3 || id WHERE id > $1 AND id <= $2`,
          [i * chunk, Math.min(W3_ROWS, (i + 1) * chunk), si === 0 ? 'a-' : 'b-'],
        ]),
      ),
    );
    const w3WritesDone = now();
    const digest = async (db: Db) => (await db.query<{ d: string }>(`SELECT md5(string_agg(b::text, ',' ORDER BY id)) AS d FROM bench b`)).rows[0]!.d;
    const pendingAt = async (db: Db) => scalar(db, `SELECT count(*) AS v FROM multisite.change`);
    const w3Done = await waitUntil(async () => (await digest(A)) === (await digest(B)) && (await scalar(A, `SELECT count(*) AS v FROM bench WHERE id <= ${W3_ROWS} AND s LIKE 'init%'`)) === 0);
    const conflictsAfter = (await scalar(A, `SELECT count(*) AS v FROM multisite.conflict`)) + (await scalar(B, `SELECT count(*) AS v FROM multisite.conflict`));
    const winners = await A.query<{ w: string; n: string }>(`SELECT left(s, 1) AS w, count(*)::text AS n FROM bench WHERE id <= ${W3_ROWS} GROUP BY 1 ORDER BY 1`);
    results.W3 = {
      rowsAtBothSites: W3_ROWS,
      writeSeconds: +((w3WritesDone - w3Start) / 1000).toFixed(2),
      convergenceSeconds: +((w3Done - w3Start) / 1000).toFixed(2),
      identical: (await digest(A)) === (await digest(B)),
      conflictRecords: conflictsAfter - conflictsBefore,
      winners: Object.fromEntries(winners.rows.map((r) => [r.w, Number(r.n)])),
      pendingAfter: { a: await pendingAt(A), b: await pendingAt(B) },
    };

    // --- W4: 5,000 updates of one hot row at a ---
    const wmBefore = await B.query<{ changes: string; rows: string }>(`SELECT changes::text, rows_applied::text AS rows FROM multisite.watermark WHERE peer = 'a'`);
    const w4Start = now();
    const hot = await PA.connect();
    try {
      for (let i = 0; i < W4_UPDATES; i++) await hot.query(`UPDATE bench SET v = v + 1 WHERE id = 1`);
    } finally {
      hot.release();
    }
    const w4WritesDone = now();
    const target = await scalar(A, `SELECT v FROM bench WHERE id = 1`);
    const w4Done = await waitUntil(async () => (await scalar(B, `SELECT v FROM bench WHERE id = 1`)) === target);
    const wmAfter = await B.query<{ changes: string; rows: string; batches: string }>(`SELECT changes::text, rows_applied::text AS rows, batches::text FROM multisite.watermark WHERE peer = 'a'`);
    results.W4 = {
      updates: W4_UPDATES,
      writeSeconds: +((w4WritesDone - w4Start) / 1000).toFixed(2),
      changesShipped: Number(wmAfter.rows[0]!.changes) - Number(wmBefore.rows[0]!.changes),
      rowApplies: Number(wmAfter.rows[0]!.rows) - Number(wmBefore.rows[0]!.rows),
      convergenceSeconds: +((w4Done - w4Start) / 1000).toFixed(2),
      finalLagSeconds: +((w4Done - w4WritesDone) / 1000).toFixed(3),
    };

    printTable(results);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync(
      'bench/results/replication.json',
      `${JSON.stringify({ at: new Date().toISOString(), scale: SCALE, connections: CONNS, results, bucardo: { rowsPerSec: 1100, lagAfterBurstSeconds: 30 } }, null, 2)}\n`,
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await Promise.all(pools.map((p) => p.end()));
    await Promise.all(dbs.map((d) => d.close()));
    for (const d of names) await admin(`DROP DATABASE IF EXISTS "${d}" WITH (FORCE)`).catch(() => undefined);
  }
}

function printTable(r: Record<string, unknown>): void {
  const o = r.overhead as Record<string, number>;
  const w1 = r.W1 as Record<string, number>;
  const w1b = r.W1backlog as Record<string, number>;
  const w2 = r.W2 as Record<string, number>;
  const w3 = r.W3 as Record<string, unknown>;
  const w4 = r.W4 as Record<string, number>;
  const rows: [string, string, string][] = [
    ['W1', `${w1.updates} updates at a, ${CONNS} conns`, `${w1.rowsPerSec} rows/s end to end; all at b after ${w1.secondsUntilAllAtB} s; final lag ${w1.finalLagSeconds} s (writes ${w1.writeRate}/s)`],
    ['W1 backlog', `${w1b.updatesQueued} updates queued, then applied`, `${w1b.rowsPerSec} rows/s apply capacity (caught up in ${w1b.catchUpSeconds} s)`],
    ['W2', `${w2.writesPerSite} inserts at each site`, `converged in ${w2.convergenceSeconds} s (${w2.rowsPerSec} rows/s); final lag ${w2.finalLagSeconds} s`],
    ['W3', `${w3.rowsAtBothSites} rows at both sites`, `identical=${w3.identical}; ${w3.conflictRecords} conflict records; converged in ${w3.convergenceSeconds} s; winners ${JSON.stringify(w3.winners)}`],
    ['W4', `${w4.updates} updates, one hot row`, `${w4.changesShipped} changes shipped, ${w4.rowApplies} row applies; converged in ${w4.convergenceSeconds} s; final lag ${w4.finalLagSeconds} s`],
    ['trigger', `${o.singleRowInserts} single-row inserts`, `${o.withoutTriggerPerSec}/s without, ${o.withTriggerPerSec}/s with capture (${pct(o.withTriggerPerSec!, o.withoutTriggerPerSec!)})`],
    ['trigger', `${o.bulkRows} rows, one INSERT`, `${o.bulkWithoutTriggerPerSec}/s without, ${o.bulkWithTriggerPerSec}/s with capture (${pct(o.bulkWithTriggerPerSec!, o.bulkWithoutTriggerPerSec!)})`],
    ['Bucardo', 'reference', '~1,100 rows/s, ~30 s lag after a burst, no conflict record'],
  ];
  const w = [11, 38];
  process.stdout.write(`${'load'.padEnd(w[0]!)} ${'what'.padEnd(w[1]!)} result\n`);
  for (const [a, b, c] of rows) process.stdout.write(`${a.padEnd(w[0]!)} ${b.padEnd(w[1]!)} ${c}\n`);
}

function pct(withT: number, without: number): string {
  return `${Math.round((1 - withT / without) * 100)}% slower`;
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
