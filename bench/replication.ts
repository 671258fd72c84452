/**
 * Replication benchmark: every workload runs twice in ONE run, on fresh database pairs (sites a
 * and b on the local PostgreSQL 15): with no trigger at all, then with multisite installed and
 * both replicators running as real `multisite replicate` processes (default settings). It prints
 * ratios (multisite / no trigger), the lag sampled during the run and the batch sizes, and writes
 * bench/results/replication.json.
 *
 *   pgbench tpcb-like and simple-update (PostgreSQL's own client) at both sites at once
 *   autocommit inserts, then updates, on one connection at a
 *   inserts at both sites at once (4 connections each, disjoint keys)
 *   hot row: updates of one row at a → row versions shipped to b
 *   catch-up: a backlog at a while b's replicator is stopped, then applied (changes/s)
 *
 * Every multisite workload ends with: identical end state at both sites (digest), conflicts logged.
 * Environment: BENCH_PGURL (default postgres://postgres@127.0.0.1:5432), BENCH_SECONDS (pgbench
 * duration, default 15), BENCH_SCALE (row counts, default 1), PGBENCH (the pgbench binary),
 * BENCH_DIST=1 (replicators from dist/ instead of the source tree), BENCH_CAPTURE (auto | native |
 * plpgsql: migrate's capture, default auto).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { migrate, type CaptureMode } from '../src/db-triggers/migrate.js';
import { Replicator } from '../src/db-triggers/replicator.js';
import { replicaLagMs } from '../src/db-triggers/status.js';
import { openDb, type Db } from '../src/db/index.js';
import { PGBENCH, pgbenchConnection, pgbenchTps } from './lib/pgbench.js';
import { replicatorYaml } from './lib/replicators.js';
import { report } from './lib/table.js';

const run = promisify(execFile);
const BASE = process.env.BENCH_PGURL ?? 'postgres://postgres@127.0.0.1:5432';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const n = (x: number) => Math.max(1, Math.round(x * SCALE));
const CLIENTS = 4;
/** The capture trigger multisite installs (migrate's `capture`): auto takes the native one where the server has it. */
const CAPTURE = (process.env.BENCH_CAPTURE ?? 'auto') as CaptureMode;
const SITES = ['a', 'b'] as const;
const url = (db: string) => `${BASE}/${db}`;
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Mode = 'none' | 'multisite';
/** The capture migrate chose (printed with the results). */
let captureUsed = '';

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url('postgres') });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Two fresh databases with `schema`, multisite installed (mode multisite) and replicators running. */
class Pair {
  dbs: Db[] = [];
  children: (ChildProcess | null)[] = [];
  dir = mkdtempSync(join(tmpdir(), 'ms-bench-'));
  private constructor(
    readonly names: string[],
    readonly mode: Mode,
    readonly tables: string[],
  ) {}

  static async create(
    label: string,
    mode: Mode,
    schema: string,
    tables: string[],
    init?: (dbName: string, site: number) => Promise<void>,
  ): Promise<Pair> {
    const tag = Math.random().toString(16).slice(2, 8);
    const p = new Pair(
      SITES.map((s) => `ms_bench_${label}_${mode === 'none' ? 'plain' : 'ms'}_${tag}_${s}`),
      mode,
      tables,
    );
    for (const d of p.names) await admin(`CREATE DATABASE "${d}"`);
    for (const [i, d] of p.names.entries()) {
      if (init) await init(d, i);
      const db = await openDb(url(d), { max: 3 });
      p.dbs.push(db);
      await db.exec(schema);
      if (mode === 'multisite') {
        captureUsed = (await migrate(db, { site: SITES[i]!, tables, capture: CAPTURE })).capture;
        writeFileSync(join(p.dir, `${SITES[i]}.yaml`), replicatorYaml(SITES[i]!, p.names.map(url), tables));
      }
    }
    if (mode === 'multisite') {
      for (let i = 0; i < SITES.length; i++) p.startReplicator(i);
      await p.ready();
    }
    return p;
  }

  /**
   * Waits until both replicators have started and reached their databases: the workload then
   * measures replication, not the replicators' start (compiling under tsx takes seconds of CPU).
   */
  async ready(): Promise<void> {
    const t0 = now();
    for (const db of this.dbs) {
      for (;;) {
        const n = await scalar(
          db,
          `SELECT count(*) AS v FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'multisite-replicate%'`,
        );
        if (n >= 2) break; // its own pool and the peer's reader
        if (now() - t0 > 60_000) throw new Error('replicators did not start in 60 s');
        await sleep(100);
      }
    }
  }

  startReplicator(i: number): void {
    // the source tree by default: a dist/ built earlier would measure other code than the migrate above
    const entry =
      process.env.BENCH_DIST === '1' && existsSync('dist/cli/main.js')
        ? ['dist/cli/main.js']
        : ['--import', 'tsx', 'src/cli/main.ts'];
    this.children[i] = spawn(
      process.execPath,
      [...entry, 'replicate', '--config', join(this.dir, `${SITES[i]}.yaml`)],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }

  async stopReplicator(i: number): Promise<void> {
    const c = this.children[i];
    if (!c) return;
    this.children[i] = null;
    if (c.exitCode === null && c.signalCode === null) {
      const done = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await done;
    }
  }

  /** Samples the replica lag of both sites every 250 ms while `work` runs; returns the maximum (s). */
  async withLag<T>(work: () => Promise<T>): Promise<{ result: T; maxLagS: number; samples: number }> {
    if (this.mode === 'none') return { result: await work(), maxLagS: 0, samples: 0 };
    let stop = false;
    let max = 0;
    let samples = 0;
    const sampler = (async () => {
      while (!stop) {
        for (const [i, db] of this.dbs.entries()) {
          const lag = await replicaLagMs(db, [{ name: SITES[1 - i]!, db: this.dbs[1 - i]! }]).catch(() => undefined);
          if (lag !== undefined) max = Math.max(max, lag);
        }
        samples++;
        await sleep(250);
      }
    })();
    try {
      return { result: await work(), maxLagS: max / 1000, samples };
    } finally {
      stop = true;
      await sampler;
    }
  }

  /** Waits until both sites have the same rows (multisite), returns the seconds it took. */
  async converge(): Promise<number> {
    if (this.mode === 'none') return 0;
    const t0 = now();
    for (;;) {
      const [a, b] = await Promise.all(this.dbs.map((d) => digest(d, this.tables)));
      if (a === b && (await this.pending()) === 0) return (now() - t0) / 1000;
      if (now() - t0 > 600_000) throw new Error('did not converge in 600 s');
      await sleep(100);
    }
  }

  async pending(): Promise<number> {
    let total = 0;
    for (const [i, db] of this.dbs.entries()) {
      const lag = await replicaLagMs(db, [{ name: SITES[1 - i]!, db: this.dbs[1 - i]! }]);
      if (lag === undefined || lag > 0) total++;
    }
    return total;
  }

  /** Conflict-log rows (both sites), and the average and largest batch (changes per apply). */
  async stats(): Promise<{ conflicts: number; batches: number; changes: number; rowsApplied: number }> {
    if (this.mode === 'none') return { conflicts: 0, batches: 0, changes: 0, rowsApplied: 0 };
    let conflicts = 0;
    let batches = 0;
    let changes = 0;
    let rowsApplied = 0;
    for (const db of this.dbs) {
      conflicts += await scalar(db, `SELECT count(*) AS v FROM multisite.conflict`);
      const w = await db.query<{ b: string; c: string; r: string }>(
        `SELECT coalesce(sum(batches), 0)::text AS b, coalesce(sum(changes), 0)::text AS c, coalesce(sum(rows_applied), 0)::text AS r FROM multisite.watermark`,
      );
      batches += Number(w.rows[0]!.b);
      changes += Number(w.rows[0]!.c);
      rowsApplied += Number(w.rows[0]!.r);
    }
    return { conflicts, batches, changes, rowsApplied };
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.children.length; i++) await this.stopReplicator(i);
    await Promise.all(this.dbs.map((d) => d.close().catch(() => undefined)));
    for (const d of this.names) await admin(`DROP DATABASE IF EXISTS "${d}" WITH (FORCE)`).catch(() => undefined);
  }
}

async function scalar(db: Db, sql: string): Promise<number> {
  const r = await db.query<{ v: string | number | null }>(sql);
  return Number(r.rows[0]?.v ?? 0);
}

async function digest(db: Db, tables: string[]): Promise<string> {
  const parts: string[] = [];
  for (const t of tables)
    parts.push(
      String(
        (await db.query<{ d: string | null }>(`SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) AS d FROM ${t} x`))
          .rows[0]?.d,
      ),
    );
  return parts.join(',');
}

/** Runs `count` statements over `conns` connections, each statement its own transaction; returns seconds. */
async function hammer(
  dbName: string,
  conns: number,
  count: number,
  stmt: (i: number) => [string, unknown[]],
): Promise<number> {
  const pool = new pg.Pool({ connectionString: url(dbName), max: conns });
  pool.on('error', () => undefined);
  let next = 0;
  const t0 = now();
  try {
    await Promise.all(
      Array.from({ length: conns }, async () => {
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
  } finally {
    await pool.end();
  }
  return (now() - t0) / 1000;
}

const PGBENCH_TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];

async function pgbenchInit(dbName: string, site: number): Promise<void> {
  await run(PGBENCH, ['-i', '-q', '-s', '1', ...pgbenchConnection(BASE), dbName]);
  // pgbench_history has no key; replication needs one: odd ids at a, even at b (both modes alike)
  await run('psql', [
    ...pgbenchConnection(BASE),
    '-qc',
    `ALTER TABLE pgbench_history ADD COLUMN hid bigint GENERATED BY DEFAULT AS IDENTITY (START WITH ${site + 1} INCREMENT BY 2) PRIMARY KEY`,
    dbName,
  ]);
}

async function pgbench(dbName: string, builtin: 'tpcb-like' | 'simple-update'): Promise<number> {
  return pgbenchTps([
    '-n',
    '-b',
    builtin,
    '-c',
    String(CLIENTS),
    '-j',
    '2',
    '-T',
    String(SECONDS),
    ...pgbenchConnection(BASE),
    dbName,
  ]);
}

interface Row {
  workload: string;
  'no trigger': string;
  multisite: string;
  ratio: string;
  'max lag s': string;
  'end state': string;
  conflicts: string;
  'changes/batch': string;
}

const results: Record<string, unknown> = {};
const rows: Row[] = [];

function push(
  workload: string,
  plain: number,
  ours: number,
  unit: string,
  extra: { lag?: number; same?: boolean; conflicts?: number; perBatch?: number },
  json: Record<string, unknown>,
): void {
  const ratio = plain > 0 ? ours / plain : NaN;
  rows.push({
    workload,
    'no trigger': `${Math.round(plain)} ${unit}`,
    multisite: `${Math.round(ours)} ${unit}`,
    ratio: `${ratio.toFixed(2)}x`,
    'max lag s': extra.lag === undefined ? '' : extra.lag.toFixed(2),
    'end state': extra.same === undefined ? '' : extra.same ? 'identical' : 'DIFFERENT',
    conflicts: extra.conflicts === undefined ? '' : String(extra.conflicts),
    'changes/batch': extra.perBatch === undefined ? '' : extra.perBatch.toFixed(0),
  });
  results[workload] = { noTrigger: plain, multisite: ours, unit, ratio, ...extra, ...json };
  process.stdout.write(
    `${workload}: no trigger ${plain.toFixed(0)} ${unit}, multisite ${ours.toFixed(0)} ${unit} (${ratio.toFixed(2)}x)\n`,
  );
}

/** pgbench at both sites at once; tps summed over the two sites. */
async function pgbenchBoth(builtin: 'tpcb-like' | 'simple-update'): Promise<void> {
  const tps: Record<Mode, number> = { none: 0, multisite: 0 };
  let extra: Parameters<typeof push>[4] = {};
  let json: Record<string, unknown> = {};
  for (const mode of ['none', 'multisite'] as Mode[]) {
    const p = await Pair.create(`pgb`, mode, 'SELECT 1', PGBENCH_TABLES, pgbenchInit);
    try {
      const before = await p.stats();
      const { result, maxLagS } = await p.withLag(() => Promise.all(p.names.map((d) => pgbench(d, builtin))));
      tps[mode] = result[0]! + result[1]!;
      if (mode === 'multisite') {
        const convergeS = await p.converge();
        const [a, b] = await Promise.all(p.dbs.map((d) => digest(d, PGBENCH_TABLES)));
        const s = await p.stats();
        const batches = s.batches - before.batches;
        extra = {
          lag: maxLagS,
          same: a === b,
          conflicts: s.conflicts,
          perBatch: batches ? (s.changes - before.changes) / batches : 0,
        };
        json = {
          perSite: result,
          convergeSecondsAfterRun: convergeS,
          batches,
          changes: s.changes - before.changes,
          rowsApplied: s.rowsApplied,
        };
      } else json.perSiteNoTrigger = result;
    } finally {
      await p.close();
    }
  }
  push(
    `pgbench ${builtin}, ${CLIENTS} clients × ${SECONDS} s at both sites`,
    tps.none,
    tps.multisite,
    'tps',
    extra,
    json,
  );
}

/** Autocommit inserts, then updates of the same rows, on one connection at a. */
async function autocommit(): Promise<void> {
  const N = n(5000);
  const rate: Record<Mode, { ins: number; upd: number }> = { none: { ins: 0, upd: 0 }, multisite: { ins: 0, upd: 0 } };
  const extra: Record<string, Parameters<typeof push>[4]> = {};
  for (const mode of ['none', 'multisite'] as Mode[]) {
    const p = await Pair.create('auto', mode, `CREATE TABLE t (id int PRIMARY KEY, v text, n int)`, ['t']);
    try {
      const ins = await p.withLag(() =>
        hammer(p.names[0]!, 1, N, (i) => [`INSERT INTO t VALUES ($1::int, md5($1::text), $1::int)`, [i]]),
      );
      const upd = await p.withLag(() =>
        hammer(p.names[0]!, 1, N, (i) => [`UPDATE t SET n = n + 1 WHERE id = $1`, [i]]),
      );
      rate[mode] = { ins: N / ins.result, upd: N / upd.result };
      await p.converge();
      const same = (await digest(p.dbs[0]!, ['t'])) === (await digest(p.dbs[1]!, ['t']));
      extra[`ins-${mode}`] = { lag: ins.maxLagS, same };
      extra[`upd-${mode}`] = { lag: upd.maxLagS, same };
    } finally {
      await p.close();
    }
  }
  push(
    `autocommit inserts, 1 connection (${N})`,
    rate.none.ins,
    rate.multisite.ins,
    'rows/s',
    extra['ins-multisite']!,
    {},
  );
  push(
    `autocommit updates, 1 connection (${N})`,
    rate.none.upd,
    rate.multisite.upd,
    'rows/s',
    extra['upd-multisite']!,
    {},
  );
}

/** Inserts at both sites at once, 4 connections each, disjoint keys. */
async function bothSites(): Promise<void> {
  const N = n(10_000);
  const rate: Record<Mode, number> = { none: 0, multisite: 0 };
  let extra: Parameters<typeof push>[4] = {};
  let json: Record<string, unknown> = {};
  for (const mode of ['none', 'multisite'] as Mode[]) {
    const p = await Pair.create('both', mode, `CREATE TABLE w (id int PRIMARY KEY, site text, v text)`, ['w']);
    try {
      const before = await p.stats();
      const { result, maxLagS } = await p.withLag(async () => {
        const t0 = now();
        await Promise.all(
          p.names.map((d, si) =>
            hammer(d, CLIENTS, N, (i) => [
              `INSERT INTO w VALUES ($1::int, $2, md5($1::text))`,
              [si * N + i + 1, SITES[si]],
            ]),
          ),
        );
        return (now() - t0) / 1000;
      });
      rate[mode] = (2 * N) / result;
      if (mode === 'multisite') {
        const convergeS = await p.converge();
        const s = await p.stats();
        const batches = s.batches - before.batches;
        extra = {
          lag: maxLagS,
          same: (await digest(p.dbs[0]!, ['w'])) === (await digest(p.dbs[1]!, ['w'])),
          conflicts: s.conflicts,
          perBatch: batches ? (s.changes - before.changes) / batches : 0,
        };
        json = { writeSeconds: result, convergeSecondsAfterWrites: convergeS, batches };
      }
    } finally {
      await p.close();
    }
  }
  push(
    `inserts at both sites at once (${N} each, ${CLIENTS} conns each)`,
    rate.none,
    rate.multisite,
    'rows/s',
    extra,
    json,
  );
}

/** The same writes on a pair with no trigger: rows/s (the peer figure of hot row and catch-up). */
async function plainRate(
  label: string,
  schema: string,
  conns: number,
  count: number,
  stmt: (i: number) => [string, unknown[]],
): Promise<number> {
  const p = await Pair.create(label, 'none', schema, []);
  try {
    return count / (await hammer(p.names[0]!, conns, count, stmt));
  } finally {
    await p.close();
  }
}

/** Updates of one hot row at a: how many row versions b receives (write rate beside no trigger). */
async function hotRow(): Promise<void> {
  const N = n(5000);
  const schema = `CREATE TABLE h (id int PRIMARY KEY, v bigint NOT NULL); INSERT INTO h VALUES (1, 0);`;
  const update = (): [string, unknown[]] => [`UPDATE h SET v = v + 1 WHERE id = 1`, []];
  const plain = await plainRate('hot', schema, 1, N, update);
  const p = await Pair.create('hot', 'multisite', schema, ['h']);
  try {
    await p.converge();
    const before = await p.dbs[1]!.query<{ c: string; r: string; b: string }>(
      `SELECT changes::text AS c, rows_applied::text AS r, batches::text AS b FROM multisite.watermark WHERE peer = 'a'`,
    );
    const { result, maxLagS } = await p.withLag(() => hammer(p.names[0]!, 1, N, update));
    const convergeS = await p.converge();
    const after = await p.dbs[1]!.query<{ c: string; r: string; b: string }>(
      `SELECT changes::text AS c, rows_applied::text AS r, batches::text AS b FROM multisite.watermark WHERE peer = 'a'`,
    );
    const d = (k: 'c' | 'r' | 'b') => Number(after.rows[0]?.[k] ?? 0) - Number(before.rows[0]?.[k] ?? 0);
    const same = (await digest(p.dbs[0]!, ['h'])) === (await digest(p.dbs[1]!, ['h']));
    results.hotRow = {
      updates: N,
      noTriggerPerSecond: plain,
      perSecond: N / result,
      writeSeconds: result,
      changesRead: d('c'),
      rowVersionsShipped: d('r'),
      batches: d('b'),
      maxLagS,
      convergeSecondsAfterWrites: convergeS,
    };
    rows.push({
      workload: `hot row: ${N} updates of one row at a (row versions applied at b)`,
      'no trigger': `${Math.round(plain)} upd/s`,
      multisite: `${Math.round(N / result)} upd/s, ${d('r')} versions`,
      ratio: `${(N / result / plain).toFixed(2)}x`,
      'max lag s': maxLagS.toFixed(2),
      'end state': same ? 'identical' : 'DIFFERENT',
      conflicts: '0',
      'changes/batch': (d('c') / Math.max(1, d('b'))).toFixed(0),
    });
    process.stdout.write(
      `hot row: ${N} updates in ${result.toFixed(1)} s (no trigger ${plain.toFixed(0)}/s), ${d('r')} row versions applied at b in ${d('b')} batches\n`,
    );
  } finally {
    await p.close();
  }
}

/**
 * A backlog at a while b's replicator is stopped, then applied by one in-process replicator
 * (beside the rate the same updates are written with no trigger).
 */
async function catchUp(): Promise<void> {
  const N = n(50_000);
  const schema = `CREATE TABLE c (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0, s text); INSERT INTO c SELECT g, 0, 'init' FROM generate_series(1, ${N}) g;`;
  const update = (i: number): [string, unknown[]] => [`UPDATE c SET v = v + 1, s = 'x' WHERE id = $1`, [i + 1]];
  const plain = await plainRate('catch', schema, CLIENTS, N, update);
  const p = await Pair.create('catch', 'multisite', schema, ['c']);
  try {
    await p.stopReplicator(1);
    await hammer(p.names[0]!, CLIENTS, N, update);
    const rep = new Replicator({ site: 'b', local: p.dbs[1]!, peers: [{ name: 'a', db: p.dbs[0]! }] });
    const t0 = now();
    const consumed = await rep.syncAll();
    const s = (now() - t0) / 1000;
    const batches = await scalar(p.dbs[1]!, `SELECT batches AS v FROM multisite.watermark WHERE peer = 'a'`);
    if ((await scalar(p.dbs[1]!, `SELECT sum(v) AS v FROM c`)) !== N) throw new Error('catch-up did not converge');
    results.catchUp = {
      changes: consumed,
      seconds: s,
      changesPerSecond: consumed / s,
      noTriggerWritesPerSecond: plain,
      batches,
    };
    rows.push({
      workload: `catch-up: ${N} queued updates applied (beside: written, ${CLIENTS} conns)`,
      'no trigger': `${Math.round(plain)} rows/s`,
      multisite: `${Math.round(consumed / s)} changes/s`,
      ratio: `${(consumed / s / plain).toFixed(2)}x`,
      'max lag s': '',
      'end state': 'identical',
      conflicts: '0',
      'changes/batch': (consumed / Math.max(1, batches)).toFixed(0),
    });
    process.stdout.write(
      `catch-up: ${consumed} changes in ${s.toFixed(2)} s (${batches} batches); the same updates with no trigger: ${plain.toFixed(0)}/s\n`,
    );
  } finally {
    await p.close();
  }
}

async function main(): Promise<void> {
  const only = process.env.BENCH_ONLY?.split(',');
  const steps: [string, () => Promise<void>][] = [
    ['tpcb', () => pgbenchBoth('tpcb-like')],
    ['simple', () => pgbenchBoth('simple-update')],
    ['autocommit', autocommit],
    ['both', bothSites],
    ['hot', hotRow],
    ['catchup', catchUp],
  ];
  for (const [name, step] of steps) if (!only || only.includes(name)) await step();
  process.stdout.write(`capture: ${captureUsed}\n`);
  report('replication', rows as unknown as Record<string, string>[], {
    capture: captureUsed,
    seconds: SECONDS,
    clients: CLIENTS,
    scale: SCALE,
    results,
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
