import type { Db } from '../db/index.js';
import { NATIVE_FUNCTION, TRIGGERS } from './migrate.js';

export interface PeerStatus {
  peer: string;
  /** Peer changes consumed so far, rows applied, conflicts logged. */
  changes: number;
  rowsApplied: number;
  conflicts: number;
  /** When this site last applied a batch from the peer. */
  updatedAt: string | null;
  /** Capture-to-apply time of the last batch. */
  lastBatchLagMs: number | null;
  /** Changes at the peer not yet applied here (null: the peer could not be reached). */
  pending: number | null;
  /** Age of the oldest of them, seconds (0 when none). */
  lagSeconds: number | null;
  stale: boolean;
  error?: string;
}

export interface ConflictSummary {
  at: string;
  peer: string;
  tbl: string;
  pk: string;
  kind: string;
  columns: string[] | null;
  winnerSite: string | null;
  loserSite: string | null;
  /** The winning and losing versions of the row as JSON text, cut to CONFLICT_ROW_CHARS (null: deleted). */
  winner: string | null;
  loser: string | null;
  reason: string;
}

/** How much of each version a status shows (the conflict log keeps them whole). */
export const CONFLICT_ROW_CHARS = 200;

/** The capture triggers of this site's replicated tables: native (C), plpgsql, both, or none. */
export type CaptureInUse = 'native' | 'plpgsql' | 'mixed' | 'none';

export interface ReplicationStatus {
  site: string;
  capture: CaptureInUse;
  localPending: number;
  peers: PeerStatus[];
  recentConflicts: ConflictSummary[];
}

/** Replication state as seen from this site: per peer lag, and the most recent conflicts. */
export async function replicationStatus(
  local: Db,
  peers: { name: string; db: Db | null; error?: string }[],
  opts: { maxLagSeconds?: number; conflicts?: number } = {},
): Promise<ReplicationStatus> {
  const site = (await local.query<{ name: string }>(`SELECT name FROM multisite.site`)).rows[0]?.name ?? '?';
  const wm = await local.query<{
    peer: string;
    xid_floor: string;
    applied: string;
    changes: string;
    rows_applied: string;
    conflicts: string;
    updated_at: string | null;
    last_lag_ms: string | null;
  }>(
    `SELECT peer, xid_floor::text, applied::text, changes::text, rows_applied::text, conflicts::text,
            to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.MSOF') AS updated_at, last_lag_ms::text
       FROM multisite.watermark`,
  );
  const capture = await captureInUse(local);
  const localPending = Number(
    (await local.query<{ n: string }>(`SELECT count(*)::text AS n FROM multisite.change`)).rows[0]?.n ?? 0,
  );
  const out: PeerStatus[] = [];
  for (const p of peers) {
    const w = wm.rows.find((r) => r.peer === p.name);
    const st: PeerStatus = {
      peer: p.name,
      changes: Number(w?.changes ?? 0),
      rowsApplied: Number(w?.rows_applied ?? 0),
      conflicts: Number(w?.conflicts ?? 0),
      updatedAt: w?.updated_at ?? null,
      lastBatchLagMs: w?.last_lag_ms != null ? Number(w.last_lag_ms) : null,
      pending: null,
      lagSeconds: null,
      stale: true,
      ...(p.error !== undefined ? { error: p.error } : {}),
    };
    if (p.db) {
      try {
        const r = await p.db.query<{ n: string; oldest: number | null }>(
          `SELECT count(*)::text AS n, extract(epoch FROM clock_timestamp() - min(ts))::float8 AS oldest
             FROM multisite.change WHERE xid >= $1::xid8 AND NOT (xid = ANY ($2::xid8[]))
              AND pg_visible_in_snapshot(xid, pg_current_snapshot())`,
          [w?.xid_floor ?? '0', w?.applied ?? '{}'],
        );
        st.pending = Number(r.rows[0]!.n);
        st.lagSeconds = st.pending > 0 ? Math.max(0, Number(r.rows[0]!.oldest ?? 0)) : 0;
        st.stale = st.lagSeconds > (opts.maxLagSeconds ?? 30);
      } catch (err) {
        st.error = (err as Error).message;
      }
    }
    out.push(st);
  }
  const c = await local.query<{
    at: string;
    peer: string;
    tbl: string;
    pk: string;
    kind: string;
    columns: string[] | null;
    winner_site: string | null;
    loser_site: string | null;
    winner: string | null;
    loser: string | null;
    reason: string;
  }>(
    `SELECT to_char(at, 'YYYY-MM-DD"T"HH24:MI:SS.MSOF') AS at, peer, tbl, pk::text AS pk, kind, columns, winner_site, loser_site,
            left(winner::text, $2) AS winner, left(loser::text, $2) AS loser, reason
       FROM multisite.conflict ORDER BY id DESC LIMIT $1`,
    [opts.conflicts ?? 10, CONFLICT_ROW_CHARS],
  );
  return {
    site,
    capture,
    localPending,
    peers: out,
    recentConflicts: c.rows.map((r) => ({
      at: r.at,
      peer: r.peer,
      tbl: r.tbl,
      pk: r.pk,
      kind: r.kind,
      columns: r.columns,
      winnerSite: r.winner_site,
      loserSite: r.loser_site,
      winner: r.winner,
      loser: r.loser,
      reason: r.reason,
    })),
  };
}

/** Which capture function this site's capture triggers call (migrate's `capture` decides). */
async function captureInUse(local: Db): Promise<CaptureInUse> {
  const r = await local.query<{ native: number; other: number }>(
    `SELECT count(*) FILTER (WHERE t.tgfoid = to_regprocedure($1))::int AS native,
            count(*) FILTER (WHERE t.tgfoid IS DISTINCT FROM to_regprocedure($1))::int AS other
       FROM pg_trigger t WHERE t.tgname = ANY ($2::text[])`,
    [`${NATIVE_FUNCTION}()`, Object.values(TRIGGERS)],
  );
  const { native = 0, other = 0 } = r.rows[0] ?? {};
  if (native > 0) return other > 0 ? 'mixed' : 'native';
  return other > 0 ? 'plpgsql' : 'none';
}

/** The status as text: one section, for `multisite status`. */
export function formatReplicationStatus(s: ReplicationStatus): string {
  const lines = [`replication (site ${s.site}, capture ${s.capture}, ${s.localPending} local changes not yet trimmed)`];
  lines.push(
    `  ${'peer'.padEnd(12)} ${'pending'.padStart(8)} ${'lag'.padStart(9)} ${'applied'.padStart(10)} ${'conflicts'.padStart(9)}  last batch`,
  );
  for (const p of s.peers) {
    const lag = p.lagSeconds === null ? '?' : `${p.lagSeconds.toFixed(p.lagSeconds < 10 ? 2 : 0)}s`;
    const state = p.error ? `  unreachable: ${p.error}` : p.stale ? '  STALE' : '';
    lines.push(
      `  ${p.peer.padEnd(12)} ${String(p.pending ?? '?').padStart(8)} ${lag.padStart(9)} ${String(p.changes).padStart(10)} ${String(p.conflicts).padStart(9)}  ${p.updatedAt ?? 'never'}${state}`,
    );
  }
  lines.push(s.recentConflicts.length ? '  recent conflicts:' : '  no conflicts logged');
  for (const c of s.recentConflicts) {
    lines.push(
      `    ${c.at} ${c.kind} ${c.tbl} ${c.pk}${c.columns ? ` [${c.columns.join(',')}]` : ''} winner ${c.winnerSite ?? '-'} loser ${c.loserSite ?? '-'}: ${c.reason}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * How far a site's database is behind its peers: the age in ms of the oldest change at any peer
 * not yet applied there; 0 when caught up; undefined when a peer cannot be read (unknown). Auto
 * failback waits on it, and heartbeats carry it.
 */
export async function replicaLagMs(local: Db, peers: { name: string; db: Db | null }[]): Promise<number | undefined> {
  return lagMsOf(await replicationStatus(local, peers, {}));
}

/** replicaLagMs of a status already read. */
export function lagMsOf(st: ReplicationStatus): number | undefined {
  const lags = st.peers.map((x) => x.lagSeconds);
  return lags.some((l) => l === null) ? undefined : Math.max(0, ...lags.map((l) => (l ?? 0) * 1000));
}
