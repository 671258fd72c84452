/**
 * Gap-free reading (pure part).
 *
 * Change ids come from a sequence, and sequences are not transactional: a transaction that took id
 * 100 may commit after one that took id 101 was already read, so "id > last id read" skips changes.
 * Instead every change records its transaction id (xid8), and a reader remembers
 *   xmin    — the oldest transaction that was still running when it last read: every change with
 *             xid < xmin is committed-or-aborted, and was read;
 *   applied — the transactions with xid >= xmin that it has already read.
 * The next read takes `xid >= xmin AND xid NOT IN applied` in a REPEATABLE READ snapshot. A
 * transaction still running at that snapshot has xid >= the snapshot's xmin, so it is picked up by
 * a later read; nothing is read twice, nothing is skipped.
 */
export interface Watermark {
  xmin: bigint;
  applied: bigint[];
}

/**
 * The watermark after reading `readXids` (ordered) in a snapshot whose xmin is `snapXmin`.
 * `limited`: the read stopped at the batch size; every visible transaction up to and including the
 * last one read was read completely, later ones were not.
 */
export function nextWatermark(
  prev: Watermark,
  snapXmin: bigint,
  readXids: readonly bigint[],
  limited: boolean,
): Watermark {
  let xmin = snapXmin > prev.xmin ? snapXmin : prev.xmin;
  if (limited && readXids.length > 0) {
    const last = readXids[readXids.length - 1]!;
    if (last < xmin) xmin = last;
  }
  if (xmin < prev.xmin) xmin = prev.xmin;
  const set = new Set<bigint>();
  for (const x of prev.applied) if (x >= xmin) set.add(x);
  for (const x of readXids) if (x >= xmin) set.add(x);
  return { xmin, applied: [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
}
