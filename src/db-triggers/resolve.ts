import { cmpStamp, maxStamp, seenStamp, ZERO, type ClockState, type ConflictRecord, type Consolidated, type Policy, type Seen, type Stamp } from './types.js';

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
export function incomingWins(inc: Stamp, loc: Stamp, concurrent: boolean, policy: Policy, tbl: string, pk: string, incRow: string | null = null, locRow: string | null = null): boolean {
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

export function decide(inc: Consolidated, local: LocalRow, ctx: DecideContext): Decision {
  const clock = local.clock;
  let top = Math.max(local.top, inc.h);
  const live = local.exists;
  const tomb = !live ? (clock?.d ?? null) : null;
  const L: Stamp = live ? (clock && !clock.d ? (clock.i ?? ZERO) : ZERO) : ZERO;
  const colsNow: Record<string, Stamp> = live && clock && !clock.d ? clock.c : {};
  const stampOf = (col: string): Stamp => colsNow[col] ?? L;
  const none = (conflicts: ConflictRecord[] = [], c: ClockState | null = null): Decision => ({
    action: { kind: 'none' },
    clock: c,
    top,
    conflicts,
    strip: null,
  });
  const record = (r: Omit<ConflictRecord, 'tbl' | 'pk'>): ConflictRecord => ({ tbl: inc.tbl, pk: inc.pk, ...r });

  if (inc.kind === 'D') {
    const at: Stamp = [inc.h, inc.origin];
    const n = inc.ins ?? ZERO;
    if (!live) {
      const d = tomb && cmpStamp(tomb.n ?? ZERO, n) > 0 ? tomb : tomb && cmpStamp(tomb.n ?? ZERO, n) === 0 && cmpStamp(tomb.at, at) > 0 ? tomb : { at, n, seen: inc.seen };
      return none([], { i: null, c: {}, d });
    }
    if (cmpStamp(L, n) > 0) return none(); // the row was re-created after what the delete saw
    // Local versions the deleter had not seen lose to the delete: logged.
    const unseen = ctx.columns.map((col) => [col, stampOf(col)] as const).filter(([col, s]) => !wasSeen(inc.seen, L, col, s));
    const conflicts = unseen.length
      ? [
          record({
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
    return { action: { kind: 'delete' }, clock: { i: null, c: {}, d: { at, n, seen: inc.seen } }, top, conflicts, strip: { all: inc.h } };
  }

  const incIns: Stamp = inc.kind === 'I' ? inc.ins : (inc.ins ?? ZERO);
  // Column versions carried by the incoming change.
  const incCols: Record<string, { s: Stamp; base: number }> = {};
  if (inc.kind === 'I') {
    for (const col of ctx.columns) incCols[col] = { s: inc.ins, base: inc.base };
  }
  for (const [col, v] of Object.entries(inc.cols)) incCols[col] = { s: [v.h, inc.origin], base: v.base };
  const explicit = (i: Stamp): Record<string, Stamp> => {
    const c: Record<string, Stamp> = {};
    for (const [col, v] of Object.entries(incCols)) if (cmpStamp(v.s, i) !== 0) c[col] = v.s;
    return c;
  };

  if (!live) {
    if (tomb && cmpStamp(incIns, tomb.n ?? ZERO) <= 0) {
      // the delete removed this incarnation (or a newer one): the insert/update is gone
      const unseen = Object.entries(incCols).filter(([col, v]) => !wasSeen(tomb.seen, incIns, col, v.s));
      const maxH = Math.max(...Object.values(incCols).map((v) => v.s[0]), inc.h);
      const conflicts = unseen.length
        ? [
            record({
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
      return none(conflicts);
    }
    // new row, a newer incarnation than the tombstone, or an update of a row never seen here:
    // create it from the entire row the change carries
    return { action: { kind: 'insert' }, clock: { i: incIns, c: explicit(incIns), d: null }, top, conflicts: [], strip: null };
  }

  // Live row: column by column.
  const insertInsert = inc.kind === 'I' && cmpStamp(incIns, L) !== 0;
  const won: string[] = [];
  const wonUnseen: string[] = [];
  const lost: string[] = [];
  const newCols: Record<string, Stamp> = { ...colsNow };
  const newIns = maxStamp(L, incIns);
  let winH = 0;
  let loseLocal: Stamp = ZERO;
  for (const [col, v] of Object.entries(incCols)) {
    const loc = stampOf(col);
    if (cmpStamp(v.s, loc) === 0) continue;
    const concurrent = insertInsert || v.base < loc[0];
    if (incomingWins(v.s, loc, concurrent, ctx.policy, inc.tbl, inc.pk, inc.row, local.row)) {
      won.push(col);
      newCols[col] = v.s;
      if (concurrent) {
        wonUnseen.push(col);
        winH = Math.max(winH, v.s[0]);
        loseLocal = maxStamp(loseLocal, loc);
      }
    } else {
      newCols[col] = loc;
      lost.push(col);
    }
    top = Math.max(top, v.s[0], loc[0]);
  }
  // Keep only column stamps that differ from the incarnation's.
  const c: Record<string, Stamp> = {};
  for (const [col, s] of Object.entries(newCols)) if (cmpStamp(s, newIns) !== 0) c[col] = s;
  for (const col of ctx.columns) if (!(col in newCols) && cmpStamp(L, newIns) !== 0) c[col] = L;

  const conflicts: ConflictRecord[] = [];
  const kind = insertInsert ? 'insert-insert' : 'update-update';
  if (wonUnseen.length) {
    conflicts.push(
      record({
        kind,
        columns: wonUnseen.sort(),
        winnerSite: inc.origin,
        winnerH: winH,
        winner: inc.row,
        loserSite: loseLocal[1] || null,
        loserH: loseLocal[0],
        loser: local.row,
        reason: `the same column${wonUnseen.length > 1 ? 's were' : ' was'} changed concurrently; ${policyWord(ctx.policy)} kept ${inc.origin}'s version`,
      }),
    );
  }
  if (lost.length) {
    const locWin = lost.map(stampOf).reduce(maxStamp);
    conflicts.push(
      record({
        kind,
        columns: lost.sort(),
        winnerSite: locWin[1] || null,
        winnerH: locWin[0],
        winner: local.row,
        loserSite: inc.origin,
        loserH: Math.max(...lost.map((col) => incCols[col]!.s[0])),
        loser: inc.row,
        reason: `the same column${lost.length > 1 ? 's were' : ' was'} changed concurrently; ${policyWord(ctx.policy)} kept this site's version`,
      }),
    );
  }
  const strip = wonUnseen.length ? { cols: Object.fromEntries(wonUnseen.map((col) => [col, newCols[col]![0]])) } : null;
  const newClock: ClockState = { i: newIns, c, d: null };
  return {
    action: won.length ? { kind: 'update', cols: won.sort() } : { kind: 'none' },
    clock: newClock,
    top,
    conflicts,
    strip,
  };
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
