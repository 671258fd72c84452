import { quoteIdent, type Queryable } from '../db/index.js';
import { consolidate } from './consolidate.js';
import { tableColumns } from './migrate.js';
import { decide, type Decision, type LocalRow } from './resolve.js';
import { cmpStamp, maxStamp, ZERO, type ClockState, type ConflictRecord, type Consolidated, type Policy, type RawChange, type Stamp } from './types.js';
import type { Watermark } from './watermark.js';

/** Replicated tables of the local database: primary key and columns. */
export class TableCatalog {
  private tables = new Map<string, { pk: string[]; columns: string[] }>();
  async get(q: Queryable, tbl: string): Promise<{ pk: string[]; columns: string[] } | undefined> {
    let t = this.tables.get(tbl);
    if (!t) {
      const r = await q.query<{ pk: string[] }>(`SELECT pk_columns AS pk FROM multisite.replicated_table WHERE tbl = $1`, [tbl]);
      const pk = r.rows[0]?.pk;
      if (!pk) return undefined;
      t = { pk, columns: await tableColumns(q, tbl) };
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

interface Planned {
  inc: Consolidated;
  decision: Decision;
}

/**
 * Applies one batch of a peer's changes inside the caller's transaction (which already did
 * SET LOCAL multisite.applying = 'on' and locked the watermark row). `safe`: run each row in its own
 * subtransaction and send failures to the conflict log instead of failing the batch.
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
  if (merged.length === 0) return { rows: 0, conflicts: [], errors: 0 };
  const unknown: Consolidated[] = [];
  const byTable = new Map<string, Consolidated[]>();
  const metas = new Map<string, { pk: string[]; columns: string[] } | undefined>();
  for (const inc of merged) if (!metas.has(inc.tbl)) metas.set(inc.tbl, await catalog.get(tx, inc.tbl));
  for (const inc of merged) {
    const meta = metas.get(inc.tbl);
    if (!meta) {
      unknown.push(inc);
      continue;
    }
    let list = byTable.get(inc.tbl);
    if (!list) byTable.set(inc.tbl, (list = []));
    list.push(inc);
  }

  // Lock and read the local rows first, then their clocks: the same order as a local writer
  // (row, then trigger), so the two cannot deadlock on one row.
  const localRows = new Map<string, string>();
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
    for (const x of r.rows) localRows.set(`${tbl}\u0000${x.pk}`, x.row);
  }
  const keys = JSON.stringify(merged.map((c) => [c.tbl, JSON.parse(c.pk) as unknown]));
  const clocks = new Map<string, { s: ClockState; top: number }>();
  const rc = await tx.query<{ tbl: string; pk: string; s: string; top: string }>(
    `SELECT c.tbl, c.pk::text AS pk, c.s::text AS s, c.top::text AS top
       FROM multisite.row_clock c
      WHERE (c.tbl, c.pk) IN (SELECT x ->> 0, x -> 1 FROM jsonb_array_elements($1::jsonb) x)
      FOR UPDATE`,
    [keys],
  );
  for (const x of rc.rows) clocks.set(`${x.tbl}\u0000${x.pk}`, { s: JSON.parse(x.s) as ClockState, top: Number(x.top) });

  const plan: Planned[] = [];
  for (const inc of merged) {
    const meta = metas.get(inc.tbl);
    if (!meta) continue;
    const key = `${inc.tbl}\u0000${inc.pk}`;
    const row = localRows.get(key) ?? null;
    const clock = clocks.get(key);
    const local: LocalRow = { exists: row !== null, row, clock: clock?.s ?? null, top: clock?.top ?? 0 };
    plan.push({ inc, decision: decide(inc, local, { columns: meta.columns, policy }) });
  }

  const actions: { p: Planned; pk: string[] }[] = [];
  for (const p of plan) if (p.decision.action.kind !== 'none') actions.push({ p, pk: metas.get(p.inc.tbl)!.pk });
  const failed = new Map<Planned, string>();
  if (actions.length && safe) {
    // one round trip, each row in its own subtransaction: failures are reported, the rest applies
    const payload = `[${actions.map((a) => actionJson(a.p, a.pk)).join(',')}]`;
    const r = await tx.query<{ f: string }>(`SELECT multisite.apply_actions($1::jsonb, true)::text AS f`, [payload]);
    const list = JSON.parse(r.rows[0]!.f) as { i: number; state: string; error: string; constraint?: string }[];
    for (const f of list) {
      const a = actions[f.i]!;
      const resolved = f.state === '23505' && f.constraint ? await uniqueClash(tx, a.p, a.pk, f.constraint, me) : null;
      if (resolved === null) failed.set(a.p, `${f.state}: ${f.error}`);
      else if (resolved.applied) a.p.decision.conflicts.push(resolved.record);
      else {
        a.p.decision = { ...a.p.decision, action: { kind: 'none' }, clock: null, strip: null, conflicts: [...a.p.decision.conflicts, resolved.record] };
      }
    }
  } else if (actions.length) {
    // fast path: one set-based statement per run of one table, operation and column set (in order,
    // so parents still come before children); any error sends the caller to the safe path
    for (let i = 0; i < actions.length; ) {
      const key = groupKey(actions[i]!.p);
      let j = i + 1;
      while (j < actions.length && groupKey(actions[j]!.p) === key) j++;
      await runGroup(tx, actions.slice(i, j));
      i = j;
    }
  }

  const conflicts: ConflictRecord[] = [];
  for (const inc of unknown) {
    conflicts.push(errorRecord(inc, `table ${inc.tbl} is not replicated at this site (run multisite migrate with it)`));
  }
  const clockRows: string[] = [];
  const stripAll: string[] = [];
  const stripCols: string[] = [];
  for (const p of plan) {
    const why = failed.get(p);
    if (why !== undefined) {
      conflicts.push(errorRecord(p.inc, why));
      continue;
    }
    conflicts.push(...p.decision.conflicts);
    const k = `{"t":${JSON.stringify(p.inc.tbl)},"k":${p.inc.pk}`;
    if (p.decision.clock) clockRows.push(`${k},"s":${JSON.stringify(p.decision.clock)},"top":${p.decision.top}}`);
    if (p.decision.strip?.all !== undefined) stripAll.push(`${k},"h":${p.decision.strip.all}}`);
    if (p.decision.strip?.cols) stripCols.push(`${k},"w":${JSON.stringify(p.decision.strip.cols)}}`);
  }
  if (clockRows.length) {
    await tx.query(
      `INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top)
       SELECT x.t, x.k, x.s, x.top FROM jsonb_to_recordset($1::jsonb) AS x(t text, k jsonb, s jsonb, top bigint)
       ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = greatest(rc.top, excluded.top)`,
      [`[${clockRows.join(',')}]`],
    );
  }
  // The losing local changes leave the queue (they are in the conflict log).
  if (stripAll.length) {
    await tx.query(
      `DELETE FROM multisite.change c USING jsonb_to_recordset($1::jsonb) AS x(t text, k jsonb, h bigint)
        WHERE c.tbl = x.t AND c.pk = x.k AND c.origin = $2 AND c.h < x.h`,
      [`[${stripAll.join(',')}]`, me],
    );
  }
  if (stripCols.length) {
    await tx.query(
      `WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(t text, k jsonb, w jsonb)),
       u AS (
         UPDATE multisite.change c
            SET cols = ARRAY(SELECT col FROM unnest(c.cols) col WHERE NOT (x.w ? col AND (x.w ->> col)::bigint > c.h))
           FROM x
          WHERE c.tbl = x.t AND c.pk = x.k AND c.origin = $2 AND c.op = 'U'
          RETURNING c.id, c.cols)
       DELETE FROM multisite.change d USING u WHERE d.id = u.id AND cardinality(u.cols) = 0`,
      [`[${stripCols.join(',')}]`, me],
    );
  }
  if (conflicts.length) await insertConflicts(tx, peer, conflicts);
  const applied = plan.filter((p) => p.decision.action.kind !== 'none' && !failed.has(p)).length;
  return { rows: applied, conflicts, errors: failed.size + unknown.length };
}

function errorRecord(inc: Consolidated, reason: string): ConflictRecord {
  return {
    tbl: inc.tbl,
    pk: inc.pk,
    kind: 'apply-error',
    columns: inc.kind === 'U' ? Object.keys(inc.cols).sort() : null,
    winnerSite: null,
    winnerH: null,
    winner: null,
    loserSite: inc.origin,
    loserH: inc.h,
    loser: inc.row,
    reason: `could not apply ${inc.kind === 'I' ? 'insert' : inc.kind === 'U' ? 'update' : 'delete'}: ${reason}`,
  };
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
  pk: string[],
  constraint: string,
  me: string,
): Promise<{ applied: boolean; record: ConflictRecord } | null> {
  const { inc } = p;
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
  const pkObj = `jsonb_build_object(${pk.map((c) => `'${c.replace(/'/g, "''")}', t.${quoteIdent(c)}`).join(', ')})`;
  const other = await tx.query<{ pk: string; row: string; s: string | null; top: string | null }>(
    `SELECT ${pkObj}::text AS pk, to_jsonb(t)::text AS row, rc.s::text AS s, rc.top::text AS top
       FROM ${tbl} t LEFT JOIN multisite.row_clock rc ON rc.tbl = $2 AND rc.pk = ${pkObj}
      WHERE (${uq.map((c) => `t.${c}`).join(', ')}) = (SELECT ${uq.map((c) => `r.${c}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $1::jsonb) r)
      FOR UPDATE OF t`,
    [inc.row, tbl],
  );
  const o = other.rows[0];
  if (!o) return null;
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
  const tomb: ClockState = { i: null, c: {}, d: { at: incoming, n: clock?.i ?? ZERO, seen: { i: clock?.i ?? null, c: clock?.c ?? {} } } };
  await tx.query(
    `INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top) VALUES ($1, $2::jsonb, $3::jsonb, $4)
     ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = greatest(rc.top, excluded.top)`,
    [tbl, o.pk, JSON.stringify(tomb), Math.max(Number(o.top ?? 0), inc.h)],
  );
  await tx.query(`DELETE FROM multisite.change WHERE tbl = $1 AND pk = $2::jsonb AND origin = $3`, [tbl, o.pk, me]);
  const retry = await tx.query<{ f: string }>(`SELECT multisite.apply_actions($1::jsonb, true)::text AS f`, [`[${actionJson(p, pk)}]`]);
  if ((JSON.parse(retry.rows[0]!.f) as unknown[]).length > 0) return null;
  return { applied: true, record };
}

function groupKey(p: Planned): string {
  const a = p.decision.action;
  return `${p.inc.tbl}\u0000${a.kind}\u0000${a.kind === 'update' ? a.cols.join(',') : ''}`;
}

/** Applies a run of same-shaped actions with one statement over jsonb_populate_recordset. */
async function runGroup(tx: Queryable, group: { p: Planned; pk: string[] }[]): Promise<void> {
  const first = group[0]!;
  const tbl = first.p.inc.tbl;
  const a = first.p.decision.action;
  const match = first.pk.map((c) => `t.${quoteIdent(c)} = r.${quoteIdent(c)}`).join(' AND ');
  const src = `jsonb_populate_recordset(NULL::${tbl}, $1::jsonb) r`;
  if (a.kind === 'insert') {
    await tx.query(`INSERT INTO ${tbl} SELECT r.* FROM ${src}`, [`[${group.map((g) => g.p.inc.row).join(',')}]`]);
  } else if (a.kind === 'update') {
    const sets = a.cols.map((c) => `${quoteIdent(c)} = r.${quoteIdent(c)}`).join(', ');
    const r = await tx.query(`UPDATE ${tbl} t SET ${sets} FROM ${src} WHERE ${match}`, [`[${group.map((g) => g.p.inc.row).join(',')}]`]);
    if (r.rowCount !== group.length) throw new Error(`${group.length - r.rowCount} rows to update are missing`);
  } else if (a.kind === 'delete') {
    await tx.query(`DELETE FROM ${tbl} t USING ${src} WHERE ${match}`, [`[${group.map((g) => g.p.inc.pk).join(',')}]`]);
  }
}

/** The statement for one decision, as JSON for multisite.apply_actions (row text embedded raw). */
function actionJson(p: Planned, pk: string[]): string | null {
  const { inc, decision } = p;
  const tbl = inc.tbl;
  const where = `(${pk.map((c) => `${quoteIdent(c)}`).join(', ')}) = (SELECT ${pk.map((c) => `k.${quoteIdent(c)}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $2) k)`;
  let sql: string;
  let must = false;
  switch (decision.action.kind) {
    case 'none':
      return null;
    case 'insert':
      sql = `INSERT INTO ${tbl} SELECT * FROM jsonb_populate_record(NULL::${tbl}, $1)`;
      break;
    case 'update': {
      const cols = decision.action.cols.map(quoteIdent);
      sql = `UPDATE ${tbl} SET (${cols.join(', ')}) = (SELECT ${cols.map((c) => `r.${c}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $1) r) WHERE ${where}`;
      must = true;
      break;
    }
    case 'delete':
      sql = `DELETE FROM ${tbl} WHERE ${where}`;
      break;
  }
  return `{"sql":${JSON.stringify(sql)},"row":${inc.row ?? 'null'},"pk":${inc.pk},"must":${must}}`;
}

async function insertConflicts(tx: Queryable, peer: string, list: ConflictRecord[]): Promise<void> {
  const rows = list.map(
    (c) =>
      `{"tbl":${JSON.stringify(c.tbl)},"pk":${c.pk},"kind":${JSON.stringify(c.kind)},"columns":${JSON.stringify(c.columns)},` +
      `"winner_site":${JSON.stringify(c.winnerSite)},"winner_h":${c.winnerH ?? 'null'},"winner":${c.winner ?? 'null'},` +
      `"loser_site":${JSON.stringify(c.loserSite)},"loser_h":${c.loserH ?? 'null'},"loser":${c.loser ?? 'null'},"reason":${JSON.stringify(c.reason)}}`,
  );
  await tx.query(
    `INSERT INTO multisite.conflict (peer, tbl, pk, kind, columns, winner_site, winner_h, winner, loser_site, loser_h, loser, reason)
     SELECT $2, x.tbl, x.pk, x.kind, x.columns, x.winner_site, x.winner_h, x.winner, x.loser_site, x.loser_h, x.loser, x.reason
       FROM jsonb_to_recordset($1::jsonb) AS x(tbl text, pk jsonb, kind text, columns text[], winner_site text, winner_h bigint,
            winner jsonb, loser_site text, loser_h bigint, loser jsonb, reason text)`,
    [`[${rows.join(',')}]`, peer],
  );
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
