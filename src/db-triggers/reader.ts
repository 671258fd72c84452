import { quoteIdent, type Db, type Queryable } from '../db/index.js';
import type { Op, RawChange, Stamp } from './types.js';
import { nextWatermark, type Watermark } from './watermark.js';

/** One read of a peer's change table. */
export interface ReadBatch {
  changes: RawChange[];
  /** The watermark once this batch is applied. */
  next: Watermark;
  /** The read stopped at the limit: more changes are waiting. */
  limited: boolean;
  /** Changes still waiting after this batch (only counted when the batch was full). */
  remaining: number;
}

/** A peer as the replicator sees it: its changes to read, and where to acknowledge them. */
export interface Source {
  readonly name: string;
  read(wm: Watermark, limit: number): Promise<ReadBatch>;
  /** Tells the peer that `site` has applied every change with xid < xmin (so it may trim them). */
  ack(site: string, xmin: bigint): Promise<void>;
}

interface ChangeRow {
  id: string;
  xid: string;
  tbl: string;
  pk: string;
  op: string;
  row: string | null;
  cols: string[] | null;
  origin: string;
  h: string | null;
  ins: string | null;
  base: string | null;
  ts: number;
}

const CHANGE_COLUMNS = `c.id::text AS id, c.xid::text AS xid, c.tbl, c.pk::text AS pk, c.op::text AS op, c."row"::text AS row, c.cols,
  c.origin, c.h::text AS h, c.ins::text AS ins, c.base::text AS base, (extract(epoch FROM c.ts) * 1000)::float8 AS ts`;

/** No read of a peer runs longer: a hung read fails, is retried, and a stall is said. */
const READ_TIMEOUT_S = 120;

/** A peer's PostgreSQL (or PGlite) database as a Source. */
export function dbSource(name: string, db: Db): Source {
  return {
    name,
    read: (wm, limit) => readChanges(db, wm, limit),
    async ack(site, xmin) {
      await db.query(
        `INSERT INTO multisite.ack AS a (site, xid_floor) VALUES ($1, $2::xid8)
         ON CONFLICT (site) DO UPDATE SET xid_floor = greatest(a.xid_floor, excluded.xid_floor), updated_at = now()`,
        [site, xmin.toString()],
      );
    },
  };
}

/**
 * Reads a peer's committed changes after the watermark, whole transactions, in one REPEATABLE READ
 * snapshot (gap-free: see watermark.ts; a transaction that commits late is read late, never
 * skipped). The peer's unstamped changes are stamped first, in a statement of their own
 * (multisite.stamp_batch); a transaction that committed after that and before the snapshot ends
 * the batch (or, at its head, is stamped in the snapshot: a stamper that got there after this
 * snapshot then makes the read fail with a serialization error, and it is read again). Each
 * insert or update carries the row as it is in this snapshot: a row changed again since ships its
 * latest state, and one deleted since ships nothing (marked gone: its delete follows).
 */
export async function readChanges(db: Db, wm: Watermark, limit: number): Promise<ReadBatch> {
  const applied = `{${wm.applied.join(',')}}`;
  // stamp the peer's unstamped changes first, outside this read's snapshot (no serialization
  // errors there); since sql/004's tail this stamps all of them (the arguments are not used)
  await db.query(`SELECT multisite.stamp_batch($1::xid8, $2::xid8[], $3)`, [wm.xmin.toString(), applied, limit * 2]);
  return db.transaction(
    async (tx) => {
      // the snapshot is taken by the first query: the peer's stamps and rows as of now
      const s = await tx.query<{ xmin: string }>(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`);
      const snapXmin = BigInt(s.rows[0]!.xmin);
      await tx.query(`SET LOCAL statement_timeout = '${READ_TIMEOUT_S}s'`);
      let rows = await selectBatch(tx, wm.xmin, applied, limit);
      const limited = rows.length >= limit;
      // changes committed after stamp_batch and before this snapshot are not stamped: the batch
      // ends before the first transaction that has one (the next read finds them stamped).
      // Stamping them here would update rows a later stamper may have updated since this
      // snapshot: a serialization failure, the read retried (under a hot row, often)
      const cut = firstUnstampedTransaction(rows);
      if (cut > 0) rows = rows.slice(0, cut);
      else if (cut === 0) {
        // the batch's first transaction itself: stamp in this snapshot, or the read could stall
        await tx.query(`SELECT multisite.stamp($1::jsonb)`, [keysJson(rows.filter((x) => x.h === null))]);
        rows = await selectBatch(tx, wm.xmin, applied, limit);
      }
      let remaining = 0;
      if (limited) {
        const last = rows[rows.length - 1]!;
        const c = await tx.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM multisite.change WHERE xid > $1::xid8 AND NOT (xid = ANY ($2::xid8[]))`,
          [last.xid, applied],
        );
        remaining = Number(c.rows[0]!.n);
      }
      const xids: bigint[] = [];
      let prev = '';
      for (const x of rows) {
        if (x.xid !== prev) xids.push(BigInt(x.xid));
        prev = x.xid;
      }
      const changes = await withRowData(tx, rows);
      return { changes, next: nextWatermark(wm, snapXmin, xids, limited || cut > 0), limited, remaining };
    },
    { isolation: 'repeatable read' },
  );
}

/** The batch: changes after the watermark up to `limit`, then the rest of the last transaction. */
async function selectBatch(tx: Queryable, xmin: bigint, applied: string, limit: number): Promise<ChangeRow[]> {
  // ORDER BY the table's columns (c.xid), not the text aliases of the select list
  const r = await tx.query<ChangeRow>(
    `SELECT ${CHANGE_COLUMNS} FROM multisite.change c
      WHERE c.xid >= $1::xid8 AND NOT (c.xid = ANY ($2::xid8[]))
      ORDER BY c.xid, c.id LIMIT $3`,
    [xmin.toString(), applied, limit],
  );
  const rows = r.rows;
  if (rows.length >= limit) {
    // finish the last transaction: a transaction is applied whole
    const last = rows[rows.length - 1]!;
    const rest = await tx.query<ChangeRow>(
      `SELECT ${CHANGE_COLUMNS} FROM multisite.change c WHERE c.xid = $1::xid8 AND c.id > $2::bigint ORDER BY c.id`,
      [last.xid, last.id],
    );
    rows.push(...rest.rows);
  }
  return rows;
}

/** Index of the first row of the first transaction (rows in xid order) with an unstamped change; -1: none. */
function firstUnstampedTransaction(rows: readonly ChangeRow[]): number {
  const i = rows.findIndex((x) => x.h === null);
  return i < 0 ? -1 : rows.findIndex((x) => x.xid === rows[i]!.xid);
}

/** [[tbl, pk], ...] of the given changes, as JSON text (pk embedded as the jsonb text it is). */
function keysJson(rows: readonly { tbl: string; pk: string }[]): string {
  return `[${rows.map((x) => `[${JSON.stringify(x.tbl)},${x.pk}]`).join(',')}]`;
}

/**
 * Row data for the batch: each insert or update gets its row's state in this snapshot; one whose
 * row was deleted since is marked `gone` (its delete, committed, follows in this batch or a later
 * one; consolidate drops it). Rows of tables the peer no longer replicates keep what they carry.
 */
async function withRowData(tx: Queryable, rows: readonly ChangeRow[]): Promise<RawChange[]> {
  const byTable = new Map<string, Set<string>>();
  for (const x of rows) {
    if (x.op === 'D') continue;
    let set = byTable.get(x.tbl);
    if (!set) byTable.set(x.tbl, (set = new Set()));
    set.add(x.pk);
  }
  const current = new Map<string, string>();
  const known = new Set<string>();
  if (byTable.size > 0) {
    const t = await tx.query<{ tbl: string; pk: string[] }>(
      `SELECT tbl, pk_columns AS pk FROM multisite.replicated_table WHERE tbl = ANY ($1::text[])`,
      [[...byTable.keys()]],
    );
    for (const { tbl, pk } of t.rows) {
      known.add(tbl);
      const on = pk.map((c) => `t.${quoteIdent(c)} = r.${quoteIdent(c)}`).join(' AND ');
      const r = await tx.query<{ pk: string; row: string }>(
        `SELECT k.value::text AS pk, to_jsonb(t)::text AS row
           FROM jsonb_array_elements($1::jsonb) k
           CROSS JOIN LATERAL jsonb_populate_record(NULL::${tbl}, k.value) r
           JOIN ${tbl} t ON ${on}`,
        [`[${[...byTable.get(tbl)!].join(',')}]`],
      );
      for (const x of r.rows) current.set(`${tbl}\u0000${x.pk}`, x.row);
    }
  }
  return rows.map((x) => {
    if (x.op === 'D' || !known.has(x.tbl)) return toRaw(x);
    const row = current.get(`${x.tbl}\u0000${x.pk}`);
    return row === undefined ? { ...toRaw({ ...x, row: null }), gone: true } : toRaw({ ...x, row });
  });
}

function toRaw(x: ChangeRow): RawChange {
  return {
    id: x.id,
    xid: x.xid,
    tbl: x.tbl,
    pk: x.pk,
    op: x.op as Op,
    row: x.row,
    cols: x.cols,
    origin: x.origin,
    h: Number(x.h),
    ins: x.ins === null || x.ins === 'null' ? null : (JSON.parse(x.ins) as Stamp),
    base: x.base === null ? null : (JSON.parse(x.base) as Record<string, number> | number),
    ts: Number(x.ts),
  };
}
