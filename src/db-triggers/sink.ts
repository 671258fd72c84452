import type { Db } from '../db/index.js';
import { applyBatch, lockWatermark, parseWatermark, sameWatermark, TableCatalog } from './apply.js';
import type { ReadBatch } from './reader.js';
import type { Policy } from './types.js';
import type { Watermark } from './watermark.js';

export interface BatchOutcome {
  rows: number;
  conflicts: number;
  errors: number;
  /** Age of the oldest change of the batch when it committed here (ms), null for an empty batch. */
  lagMs: number | null;
  /** Capture time of the newest change of the batch (ms since epoch; 0: none). */
  newest: number;
}

/** This site's database as the replicator writes it. Injected: unit tests use a fake. */
export interface Sink {
  readWatermark(peer: string): Promise<Watermark>;
  /**
   * In one transaction: check that the watermark is still `from` (else throws code RETRY), apply
   * the batch with capture off, raise the clock floor, store `batch.next`. `safe`: row by row.
   */
  apply(peer: string, from: Watermark, batch: ReadBatch, safe: boolean): Promise<BatchOutcome>;
  /**
   * Stamps this site's committed unstamped changes (multisite.stamp), in a short transaction of
   * its own: the peers' reads and this site's applies (which stamp under the rows' locks) then
   * find little left to stamp. Returns how many it stamped.
   */
  stampOwn(): Promise<number>;
  /** Deletes local changes every peer acknowledged (row_clock already has their clocks), old conflict-log rows. */
  trim(peers: readonly string[], conflictRetentionDays: number): Promise<number>;
  /** Deletes row clocks of rows deleted longer than `olderThanMs` ago. */
  trimTombstones(olderThanMs: number): Promise<number>;
}

const RETRYABLE = new Set(['40001', '40P01', '55P03']);

/** No replicator statement runs longer (a full catch-up batch takes seconds). */
export const STATEMENT_TIMEOUT_S = 120;

/** The schema version this code applies against (sql/004: row_clock is every row's current clock). */
export const SCHEMA_VERSION = 5;

/** This site's database has an older replication schema than the running code needs. */
export class SchemaVersionError extends Error {
  override name = 'SchemaVersionError';
  constructor(found: number | null) {
    super(
      `this site's replication schema is version ${found ?? 'none'}, this multisite needs ${SCHEMA_VERSION}: run multisite migrate (it upgrades in place)`,
    );
  }
}

/** Logs a batch that falls back to row-by-row apply. */
export type FallbackLog = (peer: string, err: Error) => void;

/** Checks once (per sink) that the schema is at least version 5: this code relies on its row_clock. */
function versionGuard(local: Db): () => Promise<void> {
  let checked = false;
  return async () => {
    if (checked) return;
    const v = await local.query<{ v: number }>(`SELECT schema_version AS v FROM multisite.site`);
    const found = v.rows[0]?.v ?? null;
    if (found === null || found < SCHEMA_VERSION) throw new SchemaVersionError(found);
    checked = true;
  };
}

export function dbSink(local: Db, me: string, policy: Policy, onFallback?: FallbackLog): Sink {
  const catalog = new TableCatalog();
  const checkVersion = versionGuard(local);
  return {
    async readWatermark(peer) {
      const r = await local.query<{ xmin: string; applied: string }>(
        `SELECT xid_floor::text AS xmin, applied::text AS applied FROM multisite.watermark WHERE peer = $1`,
        [peer],
      );
      const row = r.rows[0];
      return row ? parseWatermark(row) : { xmin: 0n, applied: [] };
    },

    async apply(peer, from, batch, safe) {
      await checkVersion();
      return local.transaction(async (tx) => {
        await tx.query(`SET LOCAL multisite.applying = 'on'`);
        await tx.query(`SET CONSTRAINTS ALL DEFERRED`);
        // a lock held elsewhere for long fails the batch (retried) instead of stalling the replicator
        await tx.query(`SET LOCAL lock_timeout = '20s'`);
        // nor can any statement hang the replicator: it fails, is retried, and a stall is said
        await tx.query(`SET LOCAL statement_timeout = '${STATEMENT_TIMEOUT_S}s'`);
        const wm = await lockWatermark(tx, peer);
        if (!sameWatermark(wm, from)) {
          // another replicator of this site applied in between: read again
          throw Object.assign(new Error('watermark moved'), { code: 'RETRY' });
        }
        let applied = { rows: 0, conflicts: [] as unknown[], errors: 0 };
        if (batch.changes.length) {
          try {
            await tx.query('SAVEPOINT batch');
            applied = await applyBatch(tx, catalog, peer, me, batch.changes, policy, safe);
            await tx.query('RELEASE SAVEPOINT batch');
          } catch (err) {
            const code = (err as { code?: string }).code;
            if (code !== undefined && (RETRYABLE.has(code) || code === 'RETRY')) throw err;
            // a row cannot apply: redo the batch row by row, failures go to the conflict log
            onFallback?.(peer, err as Error);
            await tx.query('ROLLBACK TO SAVEPOINT batch');
            applied = await applyBatch(tx, catalog, peer, me, batch.changes, policy, true);
          }
        }
        let maxH = 0;
        let oldest = Infinity;
        let newest = 0;
        for (const c of batch.changes) {
          if (c.h > maxH) maxH = c.h;
          if (c.ts < oldest) oldest = c.ts;
          if (c.ts > newest) newest = c.ts;
        }
        if (maxH > 0) await tx.query(`UPDATE multisite.site SET hlc_floor = greatest(hlc_floor, $1::bigint)`, [maxH]);
        const lagMs = Number.isFinite(oldest) ? Math.max(0, Math.round(Date.now() - oldest)) : null;
        await tx.query(
          `UPDATE multisite.watermark
              SET xid_floor = $2::xid8, applied = $3::xid8[], changes = changes + $4, rows_applied = rows_applied + $5,
                  conflicts = conflicts + $6, batches = batches + 1, last_lag_ms = coalesce($7, last_lag_ms),
                  last_change_ts = coalesce(to_timestamp($8::float8 / 1000), last_change_ts), updated_at = now()
            WHERE peer = $1`,
          [
            peer,
            batch.next.xmin.toString(),
            `{${batch.next.applied.join(',')}}`,
            batch.changes.length,
            applied.rows,
            applied.conflicts.length,
            lagMs,
            newest > 0 ? newest : null,
          ],
        );
        return { rows: applied.rows, conflicts: applied.conflicts.length, errors: applied.errors, lagMs, newest };
      });
    },

    async stampOwn() {
      await checkVersion();
      const r = await local.query<{ n: number }>(`SELECT multisite.stamp() AS n`);
      return r.rows[0]?.n ?? 0;
    },

    async trim(peers, conflictRetentionDays) {
      // no clock to fold into row_clock first: since version 5 the stamper keeps it current
      // (version 4 upserted every trimmed row's state here, ~18 µs per row)
      await checkVersion();
      const r = await local.query<{ n: string }>(
        `WITH a AS (SELECT count(*) AS n, min(xid_floor) AS xmin FROM multisite.ack WHERE site = ANY($1::text[])),
         del AS (DELETE FROM multisite.change c USING a WHERE a.n = $2 AND c.xid < a.xmin RETURNING 1)
         SELECT count(*)::text AS n FROM del`,
        [peers, peers.length],
      );
      if (conflictRetentionDays > 0) {
        await local.query(`DELETE FROM multisite.conflict WHERE at < now() - make_interval(days => $1::int)`, [
          conflictRetentionDays,
        ]);
      }
      return Number(r.rows[0]?.n ?? 0);
    },

    async trimTombstones(olderThanMs) {
      const r = await local.query(
        `DELETE FROM multisite.row_clock
          WHERE jsonb_typeof(s -> 'd') = 'object' AND jsonb_typeof(s -> 'i') = 'null'
            AND (s -> 'd' -> 'at' ->> 0)::bigint < ((extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1::bigint) * 1024`,
        [String(Math.round(olderThanMs))],
      );
      return r.rowCount;
    },
  };
}

export { RETRYABLE };
