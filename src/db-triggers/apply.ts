import { quoteIdent, quoteLiteral, type Queryable } from '../db/index.js';
import { consolidate } from './consolidate.js';
import { tableColumns } from './migrate.js';
import { applyPhases, bookkeeping, plan, rowKey, safeStatement, type Planned, type TableMeta } from './plan.js';
import type { LocalRow } from './resolve.js';
import {
  cmpStamp,
  maxStamp,
  ZERO,
  type ClockState,
  type ConflictRecord,
  type Consolidated,
  type Policy,
  type RawChange,
  type Stamp,
} from './types.js';
import type { Watermark } from './watermark.js';

/** Replicated tables of the local database: primary key, columns, part in foreign keys. */
export class TableCatalog {
  private tables = new Map<string, TableMeta>();
  async get(q: Queryable, tbl: string): Promise<TableMeta | undefined> {
    let t = this.tables.get(tbl);
    if (!t) {
      const r = await q.query<{ pk: string[] }>(
        `SELECT pk_columns AS pk FROM multisite.replicated_table WHERE tbl = $1`,
        [tbl],
      );
      const pk = r.rows[0]?.pk;
      if (!pk) return undefined;
      const fk = await q.query<{ fk: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND (conrelid = $1::regclass OR confrelid = $1::regclass)) AS fk`,
        [tbl],
      );
      t = { pk, columns: await tableColumns(q, tbl), fk: fk.rows[0]?.fk === true };
      this.tables.set(tbl, t);
    }
    return t;
  }
}

export interface ApplyResult {
  rows: number;
  conflicts: ConflictRecord[];
  /** Failures that went to the conflict log as apply-error. */
  errors: number;
}

/** The local rows and clocks of the rows a batch touches, locked: the planner's input. */
async function loadLocal(
  tx: Queryable,
  merged: readonly Consolidated[],
  metas: ReadonlyMap<string, TableMeta | undefined>,
): Promise<Map<string, LocalRow>> {
  const byTable = new Map<string, Consolidated[]>();
  for (const inc of merged) {
    if (!metas.get(inc.tbl)) continue;
    let list = byTable.get(inc.tbl);
    if (!list) byTable.set(inc.tbl, (list = []));
    list.push(inc);
  }
  // Lock and read the local rows first, then their clocks: the same order as a local writer
  // (row, then trigger), so the two cannot deadlock on one row.
  const rows = new Map<string, string>();
  for (const [tbl, list] of byTable) {
    const meta = metas.get(tbl)!;
    const on = meta.pk.map((c) => `t.${quoteIdent(c)} = r.${quoteIdent(c)}`).join(' AND ');
    const r = await tx.query<{ pk: string; row: string }>(
      `SELECT k.value::text AS pk, to_jsonb(t)::text AS row
         FROM jsonb_array_elements($1::jsonb) k
         CROSS JOIN LATERAL jsonb_populate_record(NULL::${tbl}, k.value) r
         JOIN ${tbl} t ON ${on}
        FOR UPDATE OF t`,
      [`[${list.map((c) => c.pk).join(',')}]`],
    );
    for (const x of r.rows) rows.set(rowKey(tbl, x.pk), x.row);
  }
  // this site's own changes of these rows not stamped yet are stamped now, under the rows' locks:
  // against the clock their writers saw, before this batch changes it (sql/003)
  const keys = `[${merged
    .filter((c) => metas.get(c.tbl))
    .map((c) => `[${JSON.stringify(c.tbl)},${c.pk}]`)
    .join(',')}]`;
  await tx.query(`SELECT multisite.stamp($1::jsonb)`, [keys]);
  // the current clock of each row: since schema version 5 the stamper keeps row_clock current
  // (sql/004), so one join, not a clock_of call per key
  const rc = await tx.query<{ tbl: string; pk: string; s: string; top: string }>(
    `SELECT r.tbl, r.pk::text AS pk, r.s::text AS s, r.top::text AS top
       FROM (SELECT DISTINCT x ->> 0 AS t, x -> 1 AS p FROM jsonb_array_elements($1::jsonb) x) x
       JOIN multisite.row_clock r ON r.tbl = x.t AND r.pk = x.p`,
    [keys],
  );
  const clocks = new Map<string, { s: ClockState; top: number }>();
  for (const x of rc.rows) clocks.set(rowKey(x.tbl, x.pk), { s: JSON.parse(x.s) as ClockState, top: Number(x.top) });
  const out = new Map<string, LocalRow>();
  for (const inc of merged) {
    const key = rowKey(inc.tbl, inc.pk);
    const row = rows.get(key) ?? null;
    const clock = clocks.get(key);
    out.set(key, { exists: row !== null, row, clock: clock?.s ?? null, top: clock?.top ?? 0 });
  }
  return out;
}

/** A primary-key clash at apply: a local insert of the same key committed after the rows were read. */
export class RaceError extends Error {
  override name = 'RaceError';
  readonly code = 'RETRY';
}

/**
 * Applies one batch of a peer's changes inside the caller's transaction (which already did
 * SET LOCAL multisite.applying = 'on' and locked the watermark row): read → plan (pure) → run.
 * `safe`: run each row in its own subtransaction and send failures to the conflict log instead of
 * failing the batch.
 */
export async function applyBatch(
  tx: Queryable,
  catalog: TableCatalog,
  peer: string,
  me: string,
  changes: readonly RawChange[],
  policy: Policy,
  safe: boolean,
): Promise<ApplyResult> {
  const merged = consolidate(changes);
  const out: ApplyResult = { rows: 0, conflicts: [], errors: 0 };
  const metas = new Map<string, TableMeta | undefined>();
  for (const inc of merged) if (!metas.has(inc.tbl)) metas.set(inc.tbl, await catalog.get(tx, inc.tbl));
  // hot tables last, each phase locking its own rows: see applyPhases
  for (const part of applyPhases(changes, merged, metas)) {
    const r = await applyPart(tx, part, metas, peer, me, policy, safe);
    out.rows += r.rows;
    out.conflicts.push(...r.conflicts);
    out.errors += r.errors;
  }
  return out;
}

/** One phase of a batch: lock and read its rows, plan, run the statements, then the bookkeeping. */
async function applyPart(
  tx: Queryable,
  merged: readonly Consolidated[],
  metas: ReadonlyMap<string, TableMeta | undefined>,
  peer: string,
  me: string,
  policy: Policy,
  safe: boolean,
): Promise<ApplyResult> {
  const p = plan(merged, metas, await loadLocal(tx, merged, metas), policy);
  const failed = new Map<Planned, string>();
  if (p.actions.length && safe) {
    const r = await tx.query<{ f: string }>(safeStatement(p.actions).sql, safeStatement(p.actions).params);
    const list = JSON.parse(r.rows[0]!.f) as { i: number; state: string; error: string; constraint?: string }[];
    for (const f of list) {
      const a = p.actions[f.i]!;
      if (f.state === '23505' && f.constraint && (await isPrimaryKey(tx, a.inc.tbl, f.constraint))) {
        throw new RaceError(`a local insert of ${a.inc.tbl} ${a.inc.pk} committed during apply`);
      }
      const resolved = f.state === '23505' && f.constraint ? await uniqueClash(tx, a, f.constraint, me) : null;
      if (resolved === null) failed.set(a, `${f.state}: ${f.error}`);
      else if (resolved.applied) a.decision.conflicts.push(resolved.record);
      else {
        a.decision = {
          ...a.decision,
          action: { kind: 'none' },
          clock: null,
          strip: null,
          conflicts: [...a.decision.conflicts, resolved.record],
        };
      }
    }
  } else {
    // fast path: any error sends the caller to the safe path
    for (const st of p.statements) {
      const r = await tx.query(st.sql, st.params);
      if (st.expect !== undefined && r.rowCount !== st.expect)
        throw new Error(`${st.expect - r.rowCount} rows to update are missing`);
    }
  }
  const book = bookkeeping(p, failed, peer, me);
  for (const st of book.statements) await tx.query(st.sql, st.params);
  return { rows: book.rows, conflicts: book.conflicts, errors: failed.size + p.unknown.length };
}

async function isPrimaryKey(tx: Queryable, tbl: string, constraint: string): Promise<boolean> {
  const r = await tx.query(
    `SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2 AND contype = 'p'`,
    [tbl, constraint],
  );
  return r.rowCount > 0;
}

/**
 * An incoming row clashes with a different local row on a secondary unique key. Every site keeps
 * the version written last (stamp, then site): if the incoming row wins, the local row is removed
 * here (capture is off; every other site decides the same) and the incoming row applied; if the
 * local row wins, the incoming change is dropped. Both go to the conflict log as unique-clash.
 * Returns null when the clash cannot be resolved (then it is logged as apply-error).
 */
async function uniqueClash(
  tx: Queryable,
  p: Planned,
  constraint: string,
  me: string,
): Promise<{ applied: boolean; record: ConflictRecord } | null> {
  const { inc, pk } = p;
  if (inc.kind === 'D' || (p.decision.action.kind !== 'insert' && p.decision.action.kind !== 'update')) return null;
  const tbl = inc.tbl;
  const cols = await tx.query<{ col: string }>(
    `SELECT a.attname AS col FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1::regclass AND ic.relname = $2 AND NOT i.indisprimary`,
    [tbl, constraint],
  );
  if (cols.rows.length === 0) return null;
  const uq = cols.rows.map((r) => quoteIdent(r.col));
  const pkObj = `jsonb_build_object(${pk.map((c) => `${quoteLiteral(c)}, t.${quoteIdent(c)}`).join(', ')})`;
  const other = await tx.query<{ pk: string; row: string }>(
    `SELECT ${pkObj}::text AS pk, to_jsonb(t)::text AS row FROM ${tbl} t
      WHERE (${uq.map((c) => `t.${c}`).join(', ')}) = (SELECT ${uq.map((c) => `r.${c}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $1::jsonb) r)
      FOR UPDATE OF t`,
    [inc.row],
  );
  const row = other.rows[0];
  if (!row) return null;
  // the other row's own changes not stamped yet are stamped (locked: none is in flight), then its clock read
  await tx.query(`SELECT multisite.stamp(jsonb_build_array(jsonb_build_array($1::text, $2::jsonb)))`, [tbl, row.pk]);
  const rc = await tx.query<{ s: string | null; top: string | null }>(
    `SELECT s::text AS s, top::text AS top FROM multisite.clock_of($1, $2::jsonb)`,
    [tbl, row.pk],
  );
  const o = { ...row, s: rc.rows[0]?.s ?? null, top: rc.rows[0]?.top ?? null };
  const clock = o.s ? (JSON.parse(o.s) as ClockState) : null;
  const localStamps: Stamp[] = [clock?.i ?? ZERO, ...Object.values(clock?.c ?? {})];
  const local = localStamps.reduce(maxStamp);
  const incoming: Stamp = [inc.h, inc.origin];
  const incomingWins = cmpStamp(incoming, local) > 0;
  const record: ConflictRecord = {
    tbl,
    pk: incomingWins ? o.pk : inc.pk,
    kind: 'unique-clash',
    columns: cols.rows.map((r) => r.col).sort(),
    winnerSite: incomingWins ? inc.origin : local[1] || null,
    winnerH: incomingWins ? inc.h : local[0],
    winner: incomingWins ? inc.row : o.row,
    loserSite: incomingWins ? local[1] || null : inc.origin,
    loserH: incomingWins ? local[0] : inc.h,
    loser: incomingWins ? o.row : inc.row,
    reason: `two rows took the same ${constraint} key; the row written last keeps it, the other is removed`,
  };
  if (!incomingWins) return { applied: false, record };
  // remove the local row (a tombstone keeps older copies of it from coming back), drop its queue
  const where = `(${pk.map((c) => quoteIdent(c)).join(', ')}) = (SELECT ${pk.map((c) => `k.${quoteIdent(c)}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $1::jsonb) k)`;
  await tx.query(`DELETE FROM ${tbl} WHERE ${where}`, [o.pk]);
  const tomb: ClockState = {
    i: null,
    c: {},
    d: { at: incoming, n: clock?.i ?? ZERO, seen: { i: clock?.i ?? null, c: clock?.c ?? {} } },
  };
  await tx.query(
    `INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top) VALUES ($1, $2::jsonb, $3::jsonb, $4)
     ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = greatest(rc.top, excluded.top)`,
    [tbl, o.pk, JSON.stringify(tomb), Math.max(Number(o.top ?? 0), inc.h)],
  );
  await tx.query(`DELETE FROM multisite.change WHERE tbl = $1 AND pk = $2::jsonb AND origin = $3`, [tbl, o.pk, me]);
  const st = safeStatement([p]);
  const retry = await tx.query<{ f: string }>(st.sql, st.params);
  if ((JSON.parse(retry.rows[0]!.f) as unknown[]).length > 0) return null;
  return { applied: true, record };
}

/** Reads the watermark row of a peer (creating it), locked for this transaction. */
export async function lockWatermark(tx: Queryable, peer: string): Promise<Watermark> {
  await tx.query(`INSERT INTO multisite.watermark (peer) VALUES ($1) ON CONFLICT (peer) DO NOTHING`, [peer]);
  const r = await tx.query<{ xmin: string; applied: string }>(
    `SELECT xid_floor::text AS xmin, applied::text AS applied FROM multisite.watermark WHERE peer = $1 FOR UPDATE`,
    [peer],
  );
  return parseWatermark(r.rows[0]!);
}

export function parseWatermark(r: { xmin: string; applied: string }): Watermark {
  const inner = r.applied.replace(/^\{|\}$/g, '');
  return { xmin: BigInt(r.xmin), applied: inner === '' ? [] : inner.split(',').map((x) => BigInt(x)) };
}

export function sameWatermark(a: Watermark, b: Watermark): boolean {
  return a.xmin === b.xmin && a.applied.length === b.applied.length && a.applied.every((x, i) => x === b.applied[i]);
}
