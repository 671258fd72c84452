import type { ColVersion, Consolidated, RawChange, Seen } from './types.js';

/**
 * Merges each row's pending changes into one (pure):
 * later column values replace earlier ones and untouched columns combine; insert+update = insert;
 * anything+delete = delete; insert+delete = no row data (a bare tombstone, see mergeRow).
 * A row's changes are ordered by their clock (per-row strictly increasing at the origin).
 *
 * `order` keeps foreign keys satisfiable when applied in order: an insert or update takes the
 * position of its first change (a parent is created before its children), a delete the position of
 * its last (children are deleted before their parent).
 */
export function consolidate(changes: readonly RawChange[]): Consolidated[] {
  const groups = new Map<string, { first: number; last: number; list: RawChange[] }>();
  changes.forEach((c, idx) => {
    const key = `${c.tbl}\u0000${c.pk}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { first: idx, last: idx, list: [] }));
    g.last = idx;
    g.list.push(c);
  });
  const out: Consolidated[] = [];
  for (const { first, last, list } of groups.values()) {
    list.sort((a, b) => a.h - b.h || cmpId(a.id, b.id));
    // read after the row was deleted at the origin, and the delete is in a later batch: nothing to
    // ship now (the delete carries what its writer had seen, this change included)
    if (list[list.length - 1]!.op !== 'D' && list.some((c) => c.gone === true)) continue;
    const merged = mergeRow(list, first, last);
    if (merged) out.push(merged);
  }
  return out.sort((a, b) => a.order - b.order);
}

function cmpId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** Folds one row's changes (sorted by clock). Returns null when they cancel out. */
export function mergeRow(list: readonly RawChange[], firstPos = 0, lastPos = 0): Consolidated | null {
  let acc: Consolidated | null = null;
  /**
   * True while the accumulated insert created a row that did not exist before the batch (the delete then ships no
   * row).
   */
  let createdHere = false;
  const ids: string[] = [];
  let ts = Infinity;
  for (const c of list) {
    ids.push(c.id);
    ts = Math.min(ts, c.ts);
    const common = { tbl: c.tbl, pk: c.pk, origin: c.origin, h: c.h, ids, ts, order: firstPos };
    if (c.op === 'I') {
      createdHere = acc === null;
      acc = {
        kind: 'I',
        ...common,
        ins: c.ins ?? [c.h, c.origin],
        base: typeof c.base === 'number' ? c.base : 0,
        cols: {},
        row: c.row ?? '{}',
      };
    } else if (c.op === 'U') {
      const cols = colVersions(c);
      if (acc === null || acc.kind === 'D') {
        // (D then U cannot happen at one origin; treat it as a plain update)
        acc = { kind: 'U', ...common, ins: c.ins, cols, row: c.row ?? '{}' };
      } else {
        // later values replace earlier ones; the first writer's base is what the merged change overwrote
        const cur = acc as Extract<Consolidated, { kind: 'I' | 'U' }>;
        const next: Record<string, ColVersion> = { ...cur.cols };
        for (const [col, v] of Object.entries(cols)) {
          const prev = next[col];
          next[col] = { h: v.h, base: prev ? prev.base : v.base };
        }
        acc = { ...cur, cols: next, row: c.row ?? cur.row, h: c.h };
      }
    } else {
      // insert + delete carries no row data, but still ships as a bare tombstone: a concurrent
      // insert of the same key elsewhere must resolve the same whether or not the two were merged
      const base = c.base && typeof c.base === 'object' && 'c' in c.base ? (c.base as Seen) : { i: c.ins, c: {} };
      acc = { kind: 'D', ...common, ins: c.ins, seen: base, row: createdHere ? null : c.row, order: lastPos };
    }
  }
  if (acc) acc.ts = ts;
  return acc;
}

function colVersions(c: RawChange): Record<string, ColVersion> {
  const out: Record<string, ColVersion> = {};
  const base = (c.base && typeof c.base === 'object' ? c.base : {}) as Record<string, number>;
  for (const col of c.cols ?? []) out[col] = { h: c.h, base: base[col] ?? 0 };
  return out;
}
