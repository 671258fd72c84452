import type { Logger } from '../log.js';
import type { Db } from '../db/index.js';
import { applyBatch, lockWatermark, parseWatermark, sameWatermark, TableCatalog } from './apply.js';
import type { ReplicationMetrics } from './metrics.js';
import type { Op, Policy, RawChange, Stamp } from './types.js';
import { nextWatermark, type Watermark } from './watermark.js';

export interface Peer {
  name: string;
  db: Db;
}

export interface ReplicatorOptions {
  site: string;
  local: Db;
  peers: Peer[];
  policy?: Policy;
  /** Peer changes read per batch (whole transactions: one large transaction may exceed it). */
  batchSize?: number;
  /** Fallback poll when no notification arrives. */
  pollIntervalMs?: number;
  /** How often this site's acknowledged changes are trimmed. */
  trimIntervalMs?: number;
  /** Conflict-log rows older than this are deleted (0 keeps them forever). */
  conflictRetentionDays?: number;
  /** Tombstones (row clocks of deleted rows) older than this are deleted (0 keeps them; default 7). */
  tombstoneRetentionDays?: number;
  logger?: Logger;
  metrics?: ReplicationMetrics;
}

export interface SyncResult {
  /** Raw peer changes consumed. */
  changes: number;
  /** Consolidated rows applied. */
  rows: number;
  conflicts: number;
  errors: number;
  /** More changes are waiting (the batch was full). */
  more: boolean;
}

const RETRYABLE = new Set(['40001', '40P01', '55P03']);

/**
 * The per-site replicator: for each peer, read its new changes (gap-free), consolidate, resolve
 * conflicts, apply and record the watermark in one transaction; acknowledge to the peer; trim this
 * site's own acknowledged changes. LISTEN/NOTIFY wakes it, polling is the fallback.
 */
export class Replicator {
  readonly site: string;
  private readonly local: Db;
  private readonly peers: Peer[];
  private readonly policy: Policy;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly trimIntervalMs: number;
  private readonly retentionDays: number;
  private readonly tombstoneDays: number;
  private readonly log?: Logger;
  private readonly metrics?: ReplicationMetrics;
  private readonly catalog = new TableCatalog();
  private stopping = false;
  private wake: (() => void) | null = null;
  private pendingWake = false;
  private unlisten: (() => Promise<void>)[] = [];
  private loop: Promise<void> | null = null;
  private lastTrim = 0;
  private lastAck = new Map<string, bigint>();

  constructor(opts: ReplicatorOptions) {
    this.site = opts.site;
    this.local = opts.local;
    this.peers = opts.peers;
    this.policy = opts.policy ?? { kind: 'latest' };
    this.batchSize = opts.batchSize ?? 5000;
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.trimIntervalMs = opts.trimIntervalMs ?? 5000;
    this.retentionDays = opts.conflictRetentionDays ?? 30;
    this.tombstoneDays = opts.tombstoneRetentionDays ?? 7;
    this.log = opts.logger;
    this.metrics = opts.metrics;
  }

  /** Reads one batch from a peer and applies it. Safe to call concurrently with local writers. */
  async syncPeer(peer: Peer): Promise<SyncResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.syncOnce(peer, attempt > 1);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt < 5 && (code === undefined || RETRYABLE.has(code) || code === 'RETRY')) {
          this.log?.debug({ peer: peer.name, attempt, code, err: (err as Error).message }, 'batch retried');
          continue;
        }
        throw err;
      }
    }
  }

  private async syncOnce(peer: Peer, safe: boolean): Promise<SyncResult> {
    const startWm = await this.readWatermark(peer.name);
    const batch = await readChanges(peer.db, startWm, this.batchSize);
    if (batch.changes.length === 0 && sameWatermark(batch.next, startWm)) {
      this.metrics?.observeIdle(peer.name);
      return { changes: 0, rows: 0, conflicts: 0, errors: 0, more: false };
    }
    const t0 = Date.now();
    const result = await this.local.transaction(async (tx) => {
      await tx.query(`SET LOCAL multisite.applying = 'on'`);
      await tx.query(`SET CONSTRAINTS ALL DEFERRED`);
      const wm = await lockWatermark(tx, peer.name);
      if (!sameWatermark(wm, startWm)) {
        // another replicator of this site applied in between: read again
        throw Object.assign(new Error('watermark moved'), { code: 'RETRY' });
      }
      let applied = { rows: 0, conflicts: [] as unknown[], errors: 0 };
      if (batch.changes.length) {
        try {
          await tx.query('SAVEPOINT batch');
          applied = await applyBatch(tx, this.catalog, peer.name, this.site, batch.changes, this.policy, safe);
          await tx.query('RELEASE SAVEPOINT batch');
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code !== undefined && RETRYABLE.has(code)) throw err;
          // a row cannot apply: redo the batch row by row, failures go to the conflict log
          this.log?.warn({ peer: peer.name, err: (err as Error).message }, 'batch failed; applying row by row');
          await tx.query('ROLLBACK TO SAVEPOINT batch');
          applied = await applyBatch(tx, this.catalog, peer.name, this.site, batch.changes, this.policy, true);
        }
      }
      const maxH = batch.changes.reduce((m, c) => Math.max(m, c.h), 0);
      if (maxH > 0) await tx.query(`UPDATE multisite.site SET hlc_floor = greatest(hlc_floor, $1::bigint)`, [maxH]);
      const oldest = batch.changes.reduce((m, c) => Math.min(m, c.ts), Infinity);
      const lagMs = Number.isFinite(oldest) ? Math.max(0, Math.round(Date.now() - oldest)) : null;
      const newest = batch.changes.reduce((m, c) => Math.max(m, c.ts), 0);
      await tx.query(
        `UPDATE multisite.watermark
            SET xid_floor = $2::xid8, applied = $3::xid8[], changes = changes + $4, rows_applied = rows_applied + $5,
                conflicts = conflicts + $6, batches = batches + 1, last_lag_ms = coalesce($7, last_lag_ms),
                last_change_ts = coalesce(to_timestamp($8::float8 / 1000), last_change_ts), updated_at = now()
          WHERE peer = $1`,
        [
          peer.name,
          batch.next.xmin.toString(),
          `{${batch.next.applied.join(',')}}`,
          batch.changes.length,
          applied.rows,
          applied.conflicts.length,
          lagMs,
          newest > 0 ? newest : null,
        ],
      );
      return { ...applied, lagMs, newest };
    });
    const res: SyncResult = {
      changes: batch.changes.length,
      rows: result.rows,
      conflicts: result.conflicts.length,
      errors: result.errors,
      more: batch.limited,
    };
    if (res.changes > 0) {
      // lag after this batch: nothing was left unread, or the age of the newest change applied
      const lagS = batch.limited ? Math.max(0, Date.now() - result.newest) / 1000 : 0;
      this.metrics?.observeBatch(peer.name, res, Date.now() - t0, lagS, (result.lagMs ?? 0) / 1000, batch.remaining);
      this.log?.debug({ peer: peer.name, ...res, ms: Date.now() - t0 }, 'batch applied');
      if (res.conflicts > 0) this.log?.info({ peer: peer.name, conflicts: res.conflicts, errors: res.errors }, 'conflicts logged');
    }
    await this.ack(peer, batch.next.xmin).catch((err: Error) => this.log?.warn({ peer: peer.name, err: err.message }, 'ack failed'));
    return res;
  }

  private async readWatermark(peer: string): Promise<Watermark> {
    const r = await this.local.query<{ xmin: string; applied: string }>(
      `SELECT xid_floor::text AS xmin, applied::text AS applied FROM multisite.watermark WHERE peer = $1`,
      [peer],
    );
    const row = r.rows[0];
    return row ? parseWatermark(row) : { xmin: 0n, applied: [] };
  }

  /** Tells the peer how far this site has applied its changes (so it can trim them). */
  private async ack(peer: Peer, xmin: bigint): Promise<void> {
    if (this.lastAck.get(peer.name) === xmin) return;
    await peer.db.query(
      `INSERT INTO multisite.ack AS a (site, xid_floor) VALUES ($1, $2::xid8)
       ON CONFLICT (site) DO UPDATE SET xid_floor = greatest(a.xid_floor, excluded.xid_floor), updated_at = now()`,
      [this.site, xmin.toString()],
    );
    this.lastAck.set(peer.name, xmin);
  }

  /** Deletes this site's changes that every peer has acknowledged; old conflict-log rows. */
  async trim(): Promise<number> {
    const names = this.peers.map((p) => p.name);
    const r = await this.local.query(
      `WITH a AS (SELECT count(*) AS n, min(xid_floor) AS xmin FROM multisite.ack WHERE site = ANY($1::text[]))
       DELETE FROM multisite.change c USING a WHERE a.n = $2 AND c.xid < a.xmin`,
      [names, names.length],
    );
    if (this.retentionDays > 0) {
      await this.local.query(`DELETE FROM multisite.conflict WHERE at < now() - make_interval(days => $1::int)`, [this.retentionDays]);
    }
    if (this.tombstoneDays > 0) {
      const t = await this.trimTombstones(this.tombstoneDays * 86_400_000);
      if (t > 0) this.log?.debug({ tombstones: t }, 'trimmed old tombstones');
    }
    this.lastTrim = Date.now();
    if (r.rowCount > 0) this.log?.debug({ trimmed: r.rowCount }, 'trimmed acknowledged changes');
    this.metrics?.observeTrim(r.rowCount);
    return r.rowCount;
  }

  /**
   * Deletes the row clocks of rows deleted longer than `olderThanMs` ago (by the delete's stamp:
   * its physical part is ms × 1024). Only tombstones: a row with a live incarnation keeps its clock.
   */
  async trimTombstones(olderThanMs: number): Promise<number> {
    const r = await this.local.query(
      `DELETE FROM multisite.row_clock
        WHERE jsonb_typeof(s -> 'd') = 'object' AND jsonb_typeof(s -> 'i') = 'null'
          AND (s -> 'd' -> 'at' ->> 0)::bigint < ((extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1::bigint) * 1024`,
      [String(Math.round(olderThanMs))],
    );
    this.metrics?.observeTombstones(r.rowCount);
    return r.rowCount;
  }

  /** Syncs every peer until none has anything left (tests, one-shot runs). */
  async syncAll(): Promise<number> {
    let total = 0;
    for (;;) {
      let any = false;
      for (const p of this.peers) {
        const r = await this.syncPeer(p);
        total += r.changes;
        if (r.changes > 0 || r.more) any = true;
      }
      if (!any) return total;
    }
  }

  /** Runs until stop(): LISTEN on every peer, sync on wake-up or poll. */
  async start(): Promise<void> {
    for (const p of this.peers) {
      try {
        this.unlisten.push(await p.db.listen('multisite_change', () => this.poke()));
      } catch (err) {
        this.log?.warn({ peer: p.name, err: (err as Error).message }, 'LISTEN failed; polling only');
      }
    }
    this.loop = this.run();
  }

  private poke(): void {
    this.pendingWake = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    const failures = new Map<string, number>();
    while (!this.stopping) {
      this.pendingWake = false;
      let busy = false;
      for (const p of this.peers) {
        if (this.stopping) break;
        try {
          const r = await this.syncPeer(p);
          if (r.more) busy = true;
          failures.delete(p.name);
          this.metrics?.setUp(p.name, true);
        } catch (err) {
          const n = (failures.get(p.name) ?? 0) + 1;
          failures.set(p.name, n);
          this.metrics?.setUp(p.name, false);
          if (n === 1 || n % 30 === 0) this.log?.error({ peer: p.name, err: (err as Error).message, failures: n }, 'sync failed; will retry');
        }
      }
      if (!this.stopping && Date.now() - this.lastTrim >= this.trimIntervalMs) {
        await this.trim().catch((err: Error) => this.log?.warn({ err: err.message }, 'trim failed'));
      }
      if (busy || this.pendingWake || this.stopping) continue;
      const backoff = failures.size > 0 ? Math.min(this.pollIntervalMs * 5, 5000) : this.pollIntervalMs;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, backoff);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.wake = done;
      });
      this.wake = null;
    }
  }

  /** Finishes the current batch (or lets its transaction roll back), stops listening. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    await Promise.all(this.unlisten.splice(0).map((u) => u().catch(() => undefined)));
  }
}

interface ReadBatch {
  changes: RawChange[];
  next: Watermark;
  limited: boolean;
  /** Changes still waiting after this batch (only counted when the batch was full). */
  remaining: number;
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

/** Reads a peer's committed changes after the watermark, in one REPEATABLE READ snapshot. */
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
