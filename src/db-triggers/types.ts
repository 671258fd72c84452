/**
 * Shared shapes of the replication core. Row data travels as PostgreSQL's own JSON text (never
 * parsed in JavaScript), so numeric, bigint and bytea values keep every digit.
 */

/**
 * A hybrid-logical-clock stamp and the site that made it: [h, site]. h is in 1/1024 ms: wall ms *
 * 1024 plus the capture's sub-millisecond part or a logical counter.
 */
export type Stamp = readonly [number, string];

export const ZERO: Stamp = [0, ''];

/** Total order on stamps: the clock, then the site name (the deterministic tie-break). */
export function cmpStamp(a: Stamp, b: Stamp): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

export function maxStamp(a: Stamp, b: Stamp): Stamp {
  return cmpStamp(a, b) >= 0 ? a : b;
}

/** Makes a clock value from wall-clock milliseconds (the logical counter is 0). */
export function hlcFromMs(ms: number): number {
  return ms * 1024;
}

/** Wall-clock milliseconds of a clock value. */
export function hlcToMs(h: number): number {
  return Math.floor(h / 1024);
}

export type Op = 'I' | 'U' | 'D';

/** One captured change as stored in multisite.change at its origin. */
export interface RawChange {
  id: string;
  xid: string;
  tbl: string;
  /** Canonical jsonb text of the primary key (the row's identity). */
  pk: string;
  op: Op;
  /** The entire new row (I, U) or the deleted row (D), as jsonb text. */
  row: string | null;
  /** Changed columns (U). */
  cols: string[] | null;
  origin: string;
  h: number;
  /** The row incarnation this change applies to (null: a row older than the trigger). */
  ins: Stamp | null;
  /** U: column -> stamp value it overwrote; I: the row's highest stamp before; D: the row's clock. */
  base: Record<string, number> | number | Seen | null;
  /** Capture time at the origin (ms since epoch). */
  ts: number;
  /**
   * An insert or update whose row was deleted at the origin by the time it was read (row null):
   * the delete, committed, is read in this batch or a later one and supersedes it.
   */
  gone?: boolean;
}

/** A column version in a consolidated change: its stamp value and what its writer had seen. */
export interface ColVersion {
  h: number;
  base: number;
}

/** Per-row clock state at a site (multisite.row_clock.s). */
export interface ClockState {
  /** Incarnation: the insert that created the live row; null when unknown or deleted. */
  i: Stamp | null;
  /** Columns written after the insert; a column not listed carries the incarnation's stamp. */
  c: Record<string, Stamp>;
  /** Tombstone: when deleted, which incarnation died, and the row's clock as the deleter saw it. */
  d: { at: Stamp; n: Stamp | null; seen: Seen } | null;
}

/** A row's clock as a deleter saw it (incarnation and per-column stamps). */
export interface Seen {
  i: Stamp | null;
  c: Record<string, Stamp>;
}

/** The stamp of a column in a seen state. */
export function seenStamp(seen: Seen, col: string): Stamp {
  return seen.c[col] ?? seen.i ?? ZERO;
}

/** All pending changes of one row from one peer, merged into one. */
export type Consolidated =
  | {
      kind: 'I';
      tbl: string;
      pk: string;
      origin: string;
      /** Incarnation = the insert's stamp. */
      ins: Stamp;
      /** Highest stamp the inserter had seen for this key (a tombstone, or 0). */
      base: number;
      /** Columns changed after the insert within the batch: their own versions. */
      cols: Record<string, ColVersion>;
      row: string;
      h: number;
      ids: string[];
      ts: number;
      order: number;
    }
  | {
      kind: 'U';
      tbl: string;
      pk: string;
      origin: string;
      ins: Stamp | null;
      cols: Record<string, ColVersion>;
      row: string;
      h: number;
      ids: string[];
      ts: number;
      order: number;
    }
  | {
      kind: 'D';
      tbl: string;
      pk: string;
      origin: string;
      /** The incarnation it deletes. */
      ins: Stamp | null;
      /** The row's clock as the deleter saw it. */
      seen: Seen;
      /** The deleted row as the deleter last saw it. */
      row: string | null;
      h: number;
      ids: string[];
      ts: number;
      order: number;
    };

export type ConflictKind =
  | 'update-update'
  | 'insert-insert'
  | 'update-delete'
  | 'delete-update'
  | 'insert-delete'
  | 'unique-clash'
  | 'apply-error';

/** One record for multisite.conflict. */
export interface ConflictRecord {
  tbl: string;
  pk: string;
  kind: ConflictKind;
  columns: string[] | null;
  winnerSite: string | null;
  winnerH: number | null;
  winner: string | null;
  loserSite: string | null;
  loserH: number | null;
  loser: string | null;
  reason: string;
}

/** The resolution policy for concurrent writes to the same column. */
export type Policy =
  | { kind: 'latest' }
  | { kind: 'site-priority'; order: readonly string[] }
  | {
      kind: 'owner-wins';
      /** The site owning a row (its partition's active site); undefined falls back to `latest`. */
      ownerOf: (tbl: string, pk: string) => string | undefined;
      /**
       * Partitions (src/db-triggers/owner-wins.ts): compares two versions of a row by the ownership
       * epoch each was written in; true: the incoming one wins, false: the local one, undefined:
       * not decided here (ownerOf, then the latest clock).
       */
      compare?: (
        tbl: string,
        incoming: { site: string; row: string | null },
        local: { site: string; row: string | null },
      ) => boolean | undefined;
    };
