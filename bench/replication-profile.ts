/**
 * Where the write path's time goes under pgbench at both sites (issue 14): the same pgbench run
 * on fresh database pairs (copies of one template) in three modes, interleaved over rounds so the
 * neighbours' load hits each mode alike:
 *
 *   off          multisite installed, capture triggers disabled, no replicator (the plain write)
 *   capture      PL/pgSQL capture triggers on, no replicator (the trigger's own cost)
 *   native       native capture (native/multisite_capture.c) on, no replicator
 *   full         PL/pgSQL capture on and both replicators running
 *   native-full  native capture on and both replicators (what bench/replication.ts measures
 *                where the native library is installed)
 *
 * Every 200 ms it samples pg_stat_activity and /proc: CPU seconds of the pgbench backends, of the
 * replicators' backends and of the replicator processes, and how often a pgbench backend waits on
 * a lock held by a replicator backend (vs by another pgbench backend). It prints one table.
 *
 *   npx tsx bench/replication-profile.ts      (PROFILE_SECONDS per run, default 8; PROFILE_ROUNDS, 2;
 *                                              PROFILE_BUILTIN tpcb-like | simple-update; PROFILE_MODES;
 *                                              PROFILE_NODE_ARGS: node options of the replicators;
 *                                              PROFILE_DIST=1: replicators from dist/)
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/db-triggers/migrate.js';
import { openDb } from '../src/db/index.js';
import { PGBENCH, pgbenchConnection, pgbenchTps } from './lib/pgbench.js';
import { interleaved, SITE_NAMES, startReplicators, type Replicators } from './lib/replicators.js';
import { report } from './lib/table.js';

const run = promisify(execFile);
const BASE = process.env.BENCH_PGURL ?? 'postgres://postgres@127.0.0.1:5432';
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 8);
const ROUNDS = Number(process.env.PROFILE_ROUNDS ?? 2);
const BUILTIN = process.env.PROFILE_BUILTIN ?? 'tpcb-like';
const MODES = (process.env.PROFILE_MODES ?? 'off,capture,native,full,native-full').split(',') as Mode[];
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];
/** Extra node options for the replicators, e.g. PROFILE_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'. */
const NODE_ARGS = (process.env.PROFILE_NODE_ARGS ?? '').split(' ').filter((x) => x !== '');
/** pgbench clients per site (PROFILE_CLIENTS, default 4). */
const CLIENTS = Number(process.env.PROFILE_CLIENTS ?? 4);
/** The replicators from dist/ (PROFILE_DIST=1, what `multisite` runs installed; build first) or the source tree. */
const ENTRY = process.env.PROFILE_DIST === '1' ? ['dist/cli/main.js'] : ['--import', 'tsx', 'src/cli/main.ts'];
const TICK = Number(process.env.PROFILE_TICK_HZ ?? 100);
const url = (db: string) => `${BASE}/${db}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Mode = 'off' | 'capture' | 'native' | 'full' | 'native-full';
const captureOf = (m: Mode) => (m.startsWith('native') ? 'native' : 'plpgsql');
const replicated = (m: Mode) => m.endsWith('full');

async function sql(db: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url(db) });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

/** utime + stime of a process, in seconds (undefined once it is gone). */
function cpu(pid: number): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / TICK;
  } catch {
    return undefined;
  }
}

function machineBusy(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!;
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICK, total: total / TICK };
}

interface Sample {
  pgbenchCpu: number;
  replBackendCpu: number;
  replProcCpu: number;
  machineBusy: number;
  waits: number;
  waitsOnRepl: number;
  samples: number;
}

/** Samples CPU and lock waits of the pair's sessions until stop() is called. */
function sampler(dbs: string[], procs: () => number[]) {
  const last = new Map<number, number>();
  const s: Sample = {
    pgbenchCpu: 0,
    replBackendCpu: 0,
    replProcCpu: 0,
    machineBusy: 0,
    waits: 0,
    waitsOnRepl: 0,
    samples: 0,
  };
  const m0 = machineBusy();
  let stop = false;
  const client = new pg.Client({ connectionString: url('postgres') });
  const loop = (async () => {
    await client.connect();
    while (!stop) {
      const r = await client.query<{ pid: number; app: string; blockers: number[]; waiting: boolean }>(
        `SELECT pid, application_name AS app, pg_blocking_pids(pid) AS blockers, wait_event_type = 'Lock' AS waiting
           FROM pg_stat_activity WHERE datname = ANY ($1)`,
        [dbs],
      );
      const apps = new Map(r.rows.map((x) => [x.pid, x.app]));
      for (const x of r.rows) {
        const c = cpu(x.pid);
        if (c === undefined) continue;
        const d = c - (last.get(x.pid) ?? c);
        last.set(x.pid, c);
        if (x.app === 'pgbench') {
          s.pgbenchCpu += d;
          if (x.waiting) {
            s.waits++;
            if (x.blockers.some((b) => apps.get(b)?.startsWith('multisite'))) s.waitsOnRepl++;
          }
        } else if (x.app.startsWith('multisite')) s.replBackendCpu += d;
      }
      for (const pid of procs()) {
        const c = cpu(pid);
        if (c === undefined) continue;
        s.replProcCpu += c - (last.get(-pid) ?? c);
        last.set(-pid, c);
      }
      s.samples++;
      await sleep(200);
    }
    await client.end();
  })();
  return async (): Promise<Sample> => {
    stop = true;
    await loop;
    s.machineBusy = machineBusy().busy - m0.busy;
    return s;
  };
}

async function pgbench(db: string): Promise<number> {
  return pgbenchTps([
    '-n',
    '-b',
    BUILTIN,
    '-c',
    String(CLIENTS),
    '-j',
    String(Math.min(2, CLIENTS)),
    '-T',
    String(SECONDS),
    ...pgbenchConnection(BASE),
    db,
  ]);
}

async function template(): Promise<string> {
  const t = `ms_prof_tpl_${Math.random().toString(16).slice(2, 8)}`;
  await sql('postgres', `CREATE DATABASE "${t}"`);
  await run(PGBENCH, ['-i', '-q', '-s', '1', ...pgbenchConnection(BASE), t]);
  return t;
}

async function once(tpl: string, mode: Mode, round: number): Promise<Record<string, string>> {
  const names = SITE_NAMES.map((s) => `${tpl}_${mode}_${round}_${s}`);
  let replicators: Replicators | undefined;
  try {
    for (const [i, d] of names.entries()) {
      await sql('postgres', `CREATE DATABASE "${d}" TEMPLATE "${tpl}"`);
      await sql(
        d,
        `ALTER TABLE pgbench_history ADD COLUMN hid bigint GENERATED BY DEFAULT AS IDENTITY (START WITH ${i + 1} INCREMENT BY 2) PRIMARY KEY`,
      );
      const db = await openDb(url(d), { max: 1 });
      await migrate(db, { site: SITE_NAMES[i]!, tables: TABLES, capture: captureOf(mode) });
      await db.close();
      if (mode === 'off') for (const t of TABLES) await sql(d, `ALTER TABLE ${t} DISABLE TRIGGER USER`);
    }
    if (replicated(mode))
      replicators = await startReplicators(names.map(url), TABLES, { node: [...NODE_ARGS, ...ENTRY] });
    const stop = sampler(names, () => replicators?.pids() ?? []);
    const tps = await Promise.all(names.map(pgbench));
    const s = await stop();
    const total = tps[0]! + tps[1]!;
    const tx = total * SECONDS;
    const us = (x: number) => ((x / tx) * 1e6).toFixed(0);
    let batches = '';
    if (replicated(mode)) {
      const w = await Promise.all(
        names.map((d) =>
          sql(
            d,
            `SELECT coalesce(sum(batches), 0)::int AS b, coalesce(sum(changes), 0)::int AS c FROM multisite.watermark`,
          ),
        ),
      );
      const b = w.reduce((a, r) => a + (r.rows[0] as { b: number }).b, 0);
      const c = w.reduce((a, r) => a + (r.rows[0] as { c: number }).c, 0);
      batches = `${b} × ${b ? (c / b).toFixed(0) : 0}`;
    }
    return {
      mode,
      round: String(round),
      tps: total.toFixed(0),
      'pgbench backend µs/tx': us(s.pgbenchCpu),
      'repl backend µs/tx': us(s.replBackendCpu),
      'repl process µs/tx': us(s.replProcCpu),
      'machine busy s': s.machineBusy.toFixed(1),
      'lock-wait samples (by repl)': `${s.waits} (${s.waitsOnRepl})`,
      'batches × changes': batches,
    };
  } finally {
    await replicators?.stop();
    for (const d of names) await sql('postgres', `DROP DATABASE IF EXISTS "${d}" WITH (FORCE)`).catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const tpl = await template();
  let rows: Record<string, string>[] = [];
  try {
    rows = await interleaved(ROUNDS, MODES, (m, r) => once(tpl, m, r));
  } finally {
    await sql('postgres', `DROP DATABASE IF EXISTS "${tpl}" WITH (FORCE)`);
  }
  report('replication-profile', rows, { seconds: SECONDS, rounds: ROUNDS, builtin: BUILTIN });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
