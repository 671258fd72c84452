import { standbyOf, type PartitionsConfig } from '../config/index.js';

/**
 * Who owns each partition, and the rules that move ownership (pure; time is passed in).
 *
 * Every site computes the same transitions from the same inputs, and every transition bumps the
 * partition's *ownership epoch*, so sites that saw a change at different moments converge by
 * adopting the record with the higher epoch (`merge`): the epoch orders ownership cluster-wide,
 * and replication's `owner-wins` policy compares the epochs writes were made in.
 */

export interface Ownership {
  partition: string;
  /** The configured active site ("home"); failback returns here. */
  home: string;
  /** Where the partition is active now. */
  active: string;
  /** +1 on every change of `active`; the initial configured ownership is epoch 1. */
  epoch: number;
  /** Wall-clock ms of the change. */
  since: number;
  reason: string;
}

export interface PartitionRule {
  partition: string;
  home: string;
  /** Sites in takeover order: home first, then the standbys. */
  order: string[];
  failback: 'manual' | 'auto';
}

export interface SiteView {
  /** The site is usable (not verified down, its pool up, not drained). */
  usable(site: string): boolean;
  /** Since when (ms) the site has been usable without interruption; undefined if it is not. */
  usableSince(site: string): number | undefined;
  /** The site's replication lag in ms as last reported (undefined: unknown). */
  lagMs(site: string): number | undefined;
}

export interface AutoFailback {
  holdDownMs: number;
  maxLagMs: number;
}

export type Change = { before: Ownership; after: Ownership };

export interface EvaluateOptions {
  /** When this site took up the partition's current record (default: the record's `since`). */
  heldSince?: (o: Ownership) => number;
  /** false: no failure transfers (the start grace period); failbacks still run. Default true. */
  transfers?: boolean;
}

export function rulesOf(p: PartitionsConfig, siteOrder: readonly string[]): PartitionRule[] {
  return p.list.map((part) => ({
    partition: part.name,
    home: part.active,
    order: [part.active, ...standbyOf(part, siteOrder)],
    failback: part.failback ?? p.failback,
  }));
}

export function initialOwnership(rules: PartitionRule[], now: number): Map<string, Ownership> {
  return new Map(
    rules.map((r) => [
      r.partition,
      { partition: r.partition, home: r.home, active: r.home, epoch: 1, since: now, reason: 'configured active site' },
    ]),
  );
}

/**
 * One evaluation: failure transfer (the active site is not usable and another candidate is), and
 * auto failback (home usable for the hold-down time with its replica caught up). Returns the new
 * records of the partitions that changed.
 */
export function evaluate(
  rules: PartitionRule[],
  current: ReadonlyMap<string, Ownership>,
  view: SiteView,
  now: number,
  auto: AutoFailback,
  opts: EvaluateOptions = {},
): Change[] {
  const heldSince = opts.heldSince ?? ((o: Ownership) => o.since);
  const changes: Change[] = [];
  for (const r of rules) {
    const o = current.get(r.partition);
    if (!o) continue;
    if (!view.usable(o.active)) {
      if (opts.transfers === false) continue;
      const next = r.order.find((s) => s !== o.active && view.usable(s));
      if (next) changes.push(move(o, next, now, `failure transfer: ${o.active} is down`));
      continue;
    }
    if (r.failback === 'auto' && o.active !== r.home && view.usable(r.home)) {
      // The hold-down runs from the later of "home usable" and "this record taken up here": a
      // site that learns of a transfer before it learns home is down must not bounce the
      // partition straight back to a home it still believes has been up for minutes.
      const usable = view.usableSince(r.home);
      const since = usable === undefined ? undefined : Math.max(usable, heldSince(o));
      const lag = view.lagMs(r.home);
      if (since !== undefined && now - since >= auto.holdDownMs && lag !== undefined && lag <= auto.maxLagMs) {
        changes.push(
          move(
            o,
            r.home,
            now,
            `automatic failback: ${r.home} usable for ${Math.round((now - since) / 1000)} s, replica lag ${lag} ms`,
          ),
        );
      }
    }
  }
  return changes;
}

/** Operator failback (`multisite partition failback P`): refused unless home is usable. */
export function failback(
  rule: PartitionRule,
  o: Ownership,
  view: SiteView,
  now: number,
): { ok: true; change?: Change } | { ok: false; error: string } {
  if (o.active === rule.home) return { ok: true };
  if (!view.usable(rule.home))
    return {
      ok: false,
      error: `${rule.home} is not usable; failback would send ${rule.partition} to a site that is down`,
    };
  return { ok: true, change: move(o, rule.home, now, 'failback by an operator') };
}

function move(o: Ownership, to: string, now: number, reason: string): Change {
  return { before: o, after: { ...o, active: to, epoch: o.epoch + 1, since: now, reason } };
}

/**
 * Adopt a peer's record when it is newer: a higher epoch, or the same epoch with an active site
 * earlier in takeover order (two sites that moved a partition independently agree on one winner).
 */
export function newer(mine: Ownership | undefined, theirs: Ownership, rule: PartitionRule): boolean {
  if (!mine) return true;
  if (theirs.epoch !== mine.epoch) return theirs.epoch > mine.epoch;
  if (theirs.active === mine.active) return false;
  const rank = (s: string) => {
    const i = rule.order.indexOf(s);
    return i < 0 ? rule.order.length : i;
  };
  return rank(theirs.active) < rank(mine.active);
}

/** "EPOCH:SITE": the value the epoch column of a partitioned row gets at write time. */
export function epochStamp(o: Pick<Ownership, 'epoch' | 'active'>): string {
  return `${o.epoch}:${o.active}`;
}
