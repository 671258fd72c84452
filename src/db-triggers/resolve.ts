import {
  cmpStamp,
  maxStamp,
  seenStamp,
  ZERO,
  type ClockState,
  type ConflictRecord,
  type Consolidated,
  type Policy,
  type Seen,
  type Stamp,
} from './types.js';

/**
 * Conflict rules (pure): what to do with one consolidated incoming change, given this site's row.
 *
 * Every site applies the same deterministic rules to the same stamps, so all sites pick the same
 * winner without talking:
 * - Columns: each column keeps the version with the highest stamp (hybrid logical clock, then site
 *   name). Changes to different columns of one row merge. Two writes of one column conflict when the
 *   incoming writer had not seen the version it replaces (its base is older): the `latest` policy
 *   keeps the higher stamp, `site-priority` the higher-ranked site, `owner-wins` the row's owner.
 * - Rows have incarnations (the stamp of the insert that created them). A delete removes the
 *   incarnation it saw and any older one, and wins over concurrent updates; an insert of a newer
 *   incarnation (a re-insert) survives an older delete.
 * - Two inserts of one key merge column by column (insert-insert conflict).
 * Every overwritten version that its writer's peer had not seen goes to the conflict log.
 */

export interface LocalRow {
  /** The row exists in the local table. */
  exists: boolean;
  /** Its current value (jsonb text), for the conflict log. */
  row: string | null;
  /** Its clock state (null: never stamped, e.g. a row older than the trigger). */
  clock: ClockState | null;
  top: number;
}

export type Action = { kind: 'insert' } | { kind: 'update'; cols: string[] } | { kind: 'delete' } | { kind: 'none' };

export interface Decision {
  action: Action;
  /** The clock state to store (null: leave as is). */
  clock: ClockState | null;
  top: number;
  conflicts: ConflictRecord[];
  /** Drop this site's own pending changes of the row that lost: all with h below `all`, or per column. */
  strip: { all?: number; cols?: Record<string, number> } | null;
}

export interface DecideContext {
  /** All columns of the table (for insert-vs-insert, column by column). */
  columns: readonly string[];
  policy: Policy;
}

/** Does the incoming version beat the local one? Concurrent writes follow the policy. */
export function incomingWins(
  inc: Stamp,
  loc: Stamp,
  concurrent: boolean,
  policy: Policy,
  tbl: string,
  pk: string,
  incRow: string | null = null,
  locRow: string | null = null,
): boolean {
  if (concurrent && policy.kind === 'site-priority') {
    const ri = rank(policy.order, inc[1]);
    const rl = rank(policy.order, loc[1]);
    if (ri !== rl) return ri < rl;
  } else if (concurrent && policy.kind === 'owner-wins') {
    const byEpoch = policy.compare?.(tbl, { site: inc[1], row: incRow }, { site: loc[1], row: locRow });
    if (byEpoch !== undefined) return byEpoch;
    const owner = policy.ownerOf(tbl, pk);
    if (owner !== undefined && (inc[1] === owner) !== (loc[1] === owner)) return inc[1] === owner;
  }
  return cmpStamp(inc, loc) > 0;
}

function rank(order: readonly string[], site: string): number {
  const i = order.indexOf(site);
  return i < 0 ? order.length : i;
}

type Deletion = Extract<Consolidated, { kind: 'D' }>;
type Write = Exclude<Consolidated, { kind: 'D' }>;
type Tombstone = NonNullable<ClockState['d']>;

/** The local row as the rules see it: its incarnation, its column stamps, its tombstone. */
interface RowView {
  /** The live row's incarnation (ZERO when there is none). */
  L: Stamp;
  tomb: Tombstone | null;
  colsNow: Record<string, Stamp>;
  stampOf(col: string): Stamp;
  top: number;
  record(r: Omit<ConflictRecord, 'tbl' | 'pk'>): ConflictRecord;
}

/** Column versions an incoming insert or update carries: its stamp and the base its writer saw. */
type IncomingCols = Record<string, { s: Stamp; base: number }>;

export function decide(inc: Consolidated, local: LocalRow, ctx: DecideContext): Decision {
  const view = viewOf(inc, local);
  if (inc.kind === 'D') return decideDelete(inc, local, ctx, view);
  const incIns: Stamp = inc.kind === 'I' ? inc.ins : (inc.ins ?? ZERO);
  const incCols: IncomingCols = {};
  if (inc.kind === 'I') {
    for (const col of ctx.columns) incCols[col] = { s: inc.ins, base: inc.base };
  }
  for (const [col, v] of Object.entries(inc.cols)) incCols[col] = { s: [v.h, inc.origin], base: v.base };
  if (!local.exists) return decideAbsent(inc, view, incIns, incCols);
  return decideLive(inc, local, ctx, view, incIns, incCols);
}

function viewOf(inc: Consolidated, local: LocalRow): RowView {
  const clock = local.clock;
  const live = local.exists;
  const colsNow: Record<string, Stamp> = live && clock && !clock.d ? clock.c : {};
  const L: Stamp = live ? (clock && !clock.d ? (clock.i ?? ZERO) : ZERO) : ZERO;
  return {
    L,
    tomb: !live ? (clock?.d ?? null) : null,
    colsNow,
    stampOf: (col) => colsNow[col] ?? L,
    top: Math.max(local.top, inc.h),
    record: (r) => ({ tbl: inc.tbl, pk: inc.pk, ...r }),
  };
}

function none(view: RowView, conflicts: ConflictRecord[] = [], c: ClockState | null = null): Decision {
  return { action: { kind: 'none' }, clock: c, top: view.top, conflicts, strip: null };
}

/** A delete removes the incarnation it saw and any older one, and wins over concurrent updates. */
function decideDelete(inc: Deletion, local: LocalRow, ctx: DecideContext, view: RowView): Decision {
  const { L, tomb, stampOf } = view;
  const at: Stamp = [inc.h, inc.origin];
  const n = inc.ins ?? ZERO;
  if (!local.exists) {
    const keepTomb =
      tomb && (cmpStamp(tomb.n ?? ZERO, n) > 0 || (cmpStamp(tomb.n ?? ZERO, n) === 0 && cmpStamp(tomb.at, at) > 0));
    return none(view, [], { i: null, c: {}, d: keepTomb ? tomb : { at, n, seen: inc.seen } });
  }
  if (cmpStamp(L, n) > 0) return none(view); // the row was re-created after what the delete saw
  // Local versions the deleter had not seen lose to the delete: logged.
  const unseen = ctx.columns
    .map((col) => [col, stampOf(col)] as const)
    .filter(([col, s]) => !wasSeen(inc.seen, L, col, s));
  const conflicts = unseen.length
    ? [
        view.record({
          kind: cmpStamp(L, inc.seen.i ?? ZERO) !== 0 ? 'insert-delete' : 'update-delete',
          columns: unseen.map(([c]) => c).sort(),
          winnerSite: inc.origin,
          winnerH: inc.h,
          winner: null,
          loserSite: unseen.reduce((a, b) => (cmpStamp(a[1], b[1]) >= 0 ? a : b))[1][1] || null,
          loserH: Math.max(...unseen.map(([, s]) => s[0])),
          loser: local.row,
          reason: 'a delete wins over concurrent changes it had not seen',
        }),
      ]
    : [];
  const clock: ClockState = { i: null, c: {}, d: { at, n, seen: inc.seen } };
  return { action: { kind: 'delete' }, clock, top: view.top, conflicts, strip: { all: inc.h } };
}

/** No live row here: a deleted incarnation stays deleted; anything newer is created whole. */
function decideAbsent(inc: Write, view: RowView, incIns: Stamp, incCols: IncomingCols): Decision {
  const tomb = view.tomb;
  if (tomb && cmpStamp(incIns, tomb.n ?? ZERO) <= 0) {
    // the delete removed this incarnation (or a newer one): the insert/update is gone
    const unseen = Object.entries(incCols).filter(([col, v]) => !wasSeen(tomb.seen, incIns, col, v.s));
    const maxH = Math.max(...Object.values(incCols).map((v) => v.s[0]), inc.h);
    const conflicts = unseen.length
      ? [
          view.record({
            kind: inc.kind === 'I' ? 'insert-delete' : 'delete-update',
            columns: unseen.map(([c]) => c).sort(),
            winnerSite: tomb.at[1],
            winnerH: tomb.at[0],
            winner: null,
            loserSite: inc.origin,
            loserH: maxH,
            loser: inc.row,
            reason: 'the row was deleted concurrently; a delete wins over changes it had not seen',
          }),
        ]
      : [];
    return none(view, conflicts);
  }
  // new row, a newer incarnation than the tombstone, or an update of a row never seen here:
  // create it from the entire row the change carries
  const explicit: Record<string, Stamp> = {};
  for (const [col, v] of Object.entries(incCols)) if (cmpStamp(v.s, incIns) !== 0) explicit[col] = v.s;
  return {
    action: { kind: 'insert' },
    clock: { i: incIns, c: explicit, d: null },
    top: view.top,
    conflicts: [],
    strip: null,
  };
}

/** What merging column by column decided: the columns each side keeps, and the stamps involved. */
interface ColumnMerge {
  won: string[];
  /** Incoming columns that won over a version their writer had not seen (logged, stripped here). */
  wonUnseen: string[];
  lost: string[];
  newCols: Record<string, Stamp>;
  winH: number;
  loseLocal: Stamp;
}

/** A live row: column by column, each keeps its winning version. */
function decideLive(
  inc: Write,
  local: LocalRow,
  ctx: DecideContext,
  view: RowView,
  incIns: Stamp,
  incCols: IncomingCols,
): Decision {
  const { L } = view;
  const insertInsert = inc.kind === 'I' && cmpStamp(incIns, L) !== 0;
  const m = mergeColumns(inc, local, ctx, view, incCols, insertInsert);
  const newIns = maxStamp(L, incIns);
  // Keep only column stamps that differ from the incarnation's.
  const c: Record<string, Stamp> = {};
  for (const [col, s] of Object.entries(m.newCols)) if (cmpStamp(s, newIns) !== 0) c[col] = s;
  for (const col of ctx.columns) if (!(col in m.newCols) && cmpStamp(L, newIns) !== 0) c[col] = L;
  const conflicts = columnConflicts(
    inc,
    local,
    ctx,
    view,
    incCols,
    m,
    insertInsert ? 'insert-insert' : 'update-update',
  );
  const strip = m.wonUnseen.length
    ? { cols: Object.fromEntries(m.wonUnseen.map((col) => [col, m.newCols[col]![0]])) }
    : null;
  return {
    action: m.won.length ? { kind: 'update', cols: m.won.sort() } : { kind: 'none' },
    clock: { i: newIns, c, d: null },
    top: view.top,
    conflicts,
    strip,
  };
}

function mergeColumns(
  inc: Write,
  local: LocalRow,
  ctx: DecideContext,
  view: RowView,
  incCols: IncomingCols,
  insertInsert: boolean,
): ColumnMerge {
  const m: ColumnMerge = { won: [], wonUnseen: [], lost: [], newCols: { ...view.colsNow }, winH: 0, loseLocal: ZERO };
  for (const [col, v] of Object.entries(incCols)) {
    const loc = view.stampOf(col);
    if (cmpStamp(v.s, loc) === 0) continue;
    // A site's own writes of a row are ordered by its history (the row's lock): one of them is
    // never concurrent with another. Yet batches follow transaction ids, not that history, so a
    // later write of the origin's can arrive first, and a merged change carries the base of its
    // first write: neither is a conflict. The older version just does not apply.
    const sameOrigin = loc[1] === inc.origin;
    const concurrent = insertInsert || (v.base < loc[0] && !sameOrigin);
    if (sameOrigin && !insertInsert && cmpStamp(v.s, loc) < 0) continue;
    if (incomingWins(v.s, loc, concurrent, ctx.policy, inc.tbl, inc.pk, inc.row, local.row)) {
      m.won.push(col);
      m.newCols[col] = v.s;
      if (concurrent) {
        m.wonUnseen.push(col);
        m.winH = Math.max(m.winH, v.s[0]);
        m.loseLocal = maxStamp(m.loseLocal, loc);
      }
    } else {
      m.newCols[col] = loc;
      m.lost.push(col);
    }
    view.top = Math.max(view.top, v.s[0], loc[0]);
  }
  return m;
}

/** The conflict log's rows for a column merge: one for the columns each side lost. */
function columnConflicts(
  inc: Write,
  local: LocalRow,
  ctx: DecideContext,
  view: RowView,
  incCols: IncomingCols,
  m: ColumnMerge,
  kind: 'insert-insert' | 'update-update',
): ConflictRecord[] {
  const conflicts: ConflictRecord[] = [];
  const were = (cols: string[]) => `the same column${cols.length > 1 ? 's were' : ' was'} changed concurrently`;
  if (m.wonUnseen.length) {
    conflicts.push(
      view.record({
        kind,
        columns: m.wonUnseen.sort(),
        winnerSite: inc.origin,
        winnerH: m.winH,
        winner: inc.row,
        loserSite: m.loseLocal[1] || null,
        loserH: m.loseLocal[0],
        loser: local.row,
        reason: `${were(m.wonUnseen)}; ${policyWord(ctx.policy)} kept ${inc.origin}'s version`,
      }),
    );
  }
  if (m.lost.length) {
    const locWin = m.lost.map(view.stampOf).reduce(maxStamp);
    conflicts.push(
      view.record({
        kind,
        columns: m.lost.sort(),
        winnerSite: locWin[1] || null,
        winnerH: locWin[0],
        winner: local.row,
        loserSite: inc.origin,
        loserH: Math.max(...m.lost.map((col) => incCols[col]!.s[0])),
        loser: inc.row,
        reason: `${were(m.lost)}; ${policyWord(ctx.policy)} kept this site's version`,
      }),
    );
  }
  return conflicts;
}

/**
 * Had the deleter seen this version of a column? Of the same incarnation: when its stamp is not
 * newer than what the deleter saw. Of another incarnation: only that exact version.
 */
function wasSeen(seen: Seen, incarnation: Stamp, col: string, s: Stamp): boolean {
  const k = seenStamp(seen, col);
  return cmpStamp(incarnation, seen.i ?? ZERO) === 0 ? cmpStamp(s, k) <= 0 : cmpStamp(s, k) === 0;
}

function policyWord(p: Policy): string {
  return p.kind === 'latest' ? 'the latest clock' : p.kind === 'site-priority' ? 'site priority' : 'the owner rule';
}
