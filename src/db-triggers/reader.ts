import type { Db } from '../db/index.js';
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
  h: string;
  ins: string | null;
  base: string | null;
  ts: number;
}

const CHANGE_COLUMNS = `c.id::text AS id, c.xid::text AS xid, c.tbl, c.pk::text AS pk, c.op::text AS op, c."row"::text AS row, c.cols,
  c.origin, c.h::text AS h, c.ins::text AS ins, c.base::text AS base, (extract(epoch FROM c.ts) * 1000)::float8 AS ts`;

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
 * snapshot (gap-free: see watermark.ts; a transaction that commits late is read late, never skipped).
 */
export async function readChanges(db: Db, wm: Watermark, limit: number): Promise<ReadBatch> {
  return db.transaction(
    async (tx) => {
      const s = await tx.query<{ xmin: string }>(`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`);
      const snapXmin = BigInt(s.rows[0]!.xmin);
      const applied = `{${wm.applied.join(',')}}`;
      const r = await tx.query<ChangeRow>(
        // ORDER BY the table's columns (c.xid), not the text aliases of the select list
        `SELECT ${CHANGE_COLUMNS} FROM multisite.change c
          WHERE c.xid >= $1::xid8 AND NOT (c.xid = ANY ($2::xid8[]))
          ORDER BY c.xid, c.id LIMIT $3`,
        [wm.xmin.toString(), applied, limit],
      );
      const rows = r.rows;
      const limited = rows.length >= limit;
      let remaining = 0;
      if (limited) {
        // finish the last transaction: a transaction is applied whole
        const last = rows[rows.length - 1]!;
        const rest = await tx.query<ChangeRow>(
          `SELECT ${CHANGE_COLUMNS} FROM multisite.change c WHERE c.xid = $1::xid8 AND c.id > $2::bigint ORDER BY c.id`,
          [last.xid, last.id],
        );
        rows.push(...rest.rows);
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
      return { changes: rows.map(toRaw), next: nextWatermark(wm, snapXmin, xids, limited), limited, remaining };
    },
    { isolation: 'repeatable read', readOnly: true },
  );
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
