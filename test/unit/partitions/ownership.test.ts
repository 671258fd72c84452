import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { decide, type LocalRow } from '../../../src/db-triggers/resolve.js';
import type { Consolidated } from '../../../src/db-triggers/types.js';
import { compareVersions, ownerWinsPolicy, parseEpochStamp } from '../../../src/db-triggers/owner-wins.js';
import {
  evaluate,
  failback,
  initialOwnership,
  newer,
  rulesOf,
  type Ownership,
  type SiteView,
} from '../../../src/partitions/ownership.js';
import { TWO_SITES } from './fixtures.js';

const config = parseConfig(TWO_SITES, 'site.yaml').config;
const rules = rulesOf(config.partitions!, ['a', 'b']);
const auto = { holdDownMs: 60_000, maxLagMs: 5_000 };

function view(
  up: Record<string, boolean>,
  since: Record<string, number> = {},
  lag: Record<string, number | undefined> = {},
): SiteView {
  return {
    usable: (s) => up[s] ?? true,
    usableSince: (s) => ((up[s] ?? true) ? (since[s] ?? 0) : undefined),
    lagMs: (s) => lag[s],
  };
}

describe('ownership rules', () => {
  it('starts at the configured active sites, epoch 1', () => {
    const o = initialOwnership(rules, 5);
    expect([...o.values()].map((x) => [x.partition, x.active, x.epoch])).toEqual([
      ['p1', 'a', 1],
      ['p2', 'b', 1],
    ]);
  });

  it('failure transfer: the active site down moves its partitions to the first usable standby, with a new epoch', () => {
    const o = initialOwnership(rules, 0);
    const ch = evaluate(rules, o, view({ a: false }), 1000, auto);
    expect(ch.map((c) => [c.after.partition, c.before.active, c.after.active, c.after.epoch])).toEqual([
      ['p1', 'a', 'b', 2],
    ]);
    expect(ch[0]!.after.reason).toBe('failure transfer: a is down');
  });

  it('nothing moves when no candidate is usable, or when the active site is up', () => {
    expect(evaluate(rules, initialOwnership(rules, 0), view({ a: false, b: false }), 1, auto)).toEqual([]);
    expect(evaluate(rules, initialOwnership(rules, 0), view({}), 1, auto)).toEqual([]);
  });

  it('manual failback (p1): never automatic; the command is refused while home is down', () => {
    const o = new Map(initialOwnership(rules, 0));
    o.set('p1', { ...o.get('p1')!, active: 'b', epoch: 2 });
    expect(evaluate(rules, o, view({}, {}, { a: 0 }), 10_000_000, auto)).toEqual([]);
    expect(failback(rules[0]!, o.get('p1')!, view({ a: false }), 1)).toEqual({
      ok: false,
      error: expect.stringMatching(/a is not usable/),
    });
    const r = failback(rules[0]!, o.get('p1')!, view({}), 7);
    expect(r.ok && r.change?.after).toMatchObject({
      active: 'a',
      epoch: 3,
      since: 7,
      reason: 'failback by an operator',
    });
    expect(failback(rules[0]!, initialOwnership(rules, 0).get('p1')!, view({}), 1)).toEqual({ ok: true });
  });

  it('auto failback (p2): after the hold-down, and only with the replica caught up', () => {
    const o = new Map(initialOwnership(rules, 0));
    o.set('p2', { ...o.get('p2')!, active: 'a', epoch: 2 });
    expect(evaluate(rules, o, view({}, { b: 1000 }, { b: 0 }), 60_999, auto)).toEqual([]); // hold-down not over
    expect(evaluate(rules, o, view({}, { b: 1000 }, { b: 9000 }), 61_000, auto)).toEqual([]); // lagging
    expect(evaluate(rules, o, view({}, { b: 1000 }, {}), 61_000, auto)).toEqual([]); // lag unknown
    const ch = evaluate(rules, o, view({}, { b: 1000 }, { b: 5000 }), 61_000, auto);
    expect(ch.map((c) => [c.after.active, c.after.epoch])).toEqual([['b', 3]]);
    expect(ch[0]!.after.reason).toMatch(/automatic failback: b usable for 60 s, replica lag 5000 ms/);
  });

  it('a standby that dies in turn hands the partition back to a usable home at once', () => {
    const o = new Map(initialOwnership(rules, 0));
    o.set('p1', { ...o.get('p1')!, active: 'b', epoch: 2 });
    const ch = evaluate(rules, o, view({ b: false }), 5, auto);
    expect(ch.map((c) => [c.after.partition, c.after.active, c.after.epoch])).toEqual([
      ['p1', 'a', 3],
      ['p2', 'a', 2],
    ]);
  });

  it('merge: a higher epoch wins; the same epoch goes to the site earlier in takeover order', () => {
    const base: Ownership = { partition: 'p1', home: 'a', active: 'a', epoch: 2, since: 0, reason: '' };
    expect(newer(base, { ...base, epoch: 3, active: 'b' }, rules[0]!)).toBe(true);
    expect(newer(base, { ...base, epoch: 1, active: 'b' }, rules[0]!)).toBe(false);
    expect(newer(base, { ...base, active: 'b' }, rules[0]!)).toBe(false);
    expect(newer({ ...base, active: 'b' }, base, rules[0]!)).toBe(true);
    expect(newer(base, base, rules[0]!)).toBe(false);
    expect(newer(undefined, base, rules[0]!)).toBe(true);
  });
});

describe('owner-wins', () => {
  const s = (v: string) => parseEpochStamp(v);
  it('parses "EPOCH:SITE" stamps and nothing else', () => {
    expect(s('12:b')).toEqual({ epoch: 12, active: 'b' });
    expect(s('x:b')).toBeUndefined();
    expect(parseEpochStamp(null)).toBeUndefined();
    expect(parseEpochStamp(3)).toBeUndefined();
  });

  it('the higher epoch wins, whoever wrote it (a stale owner loses after a failover)', () => {
    expect(compareVersions({ site: 'b', stamp: s('2:b') }, { site: 'a', stamp: s('1:a') })).toBe(true);
    expect(compareVersions({ site: 'a', stamp: s('1:a') }, { site: 'b', stamp: s('2:b') })).toBe(false);
  });

  it('in one epoch, the site active in it wins (a standby write loses to the owner)', () => {
    expect(compareVersions({ site: 'b', stamp: s('1:a') }, { site: 'a', stamp: s('1:a') })).toBe(false);
    expect(compareVersions({ site: 'a', stamp: s('1:a') }, { site: 'b', stamp: s('1:a') })).toBe(true);
  });

  it('equal keys are undecided (the latest clock breaks the tie); a missing stamp ranks lowest', () => {
    expect(compareVersions({ site: 'b', stamp: s('1:a') }, { site: 'c', stamp: s('1:a') })).toBeUndefined();
    expect(compareVersions({ site: 'b', stamp: undefined }, { site: 'a', stamp: s('1:a') })).toBe(false);
    expect(compareVersions({ site: 'b', stamp: undefined }, { site: 'a', stamp: undefined })).toBeUndefined();
  });

  const p = parseConfig(
    TWO_SITES.replace(
      'site: a\n',
      'site: a\nreplication:\n  tables: [orders, notes]\n  sites: { a: { db: "postgres://x@127.0.0.1/a" }, b: { db: "postgres://x@127.0.0.1/b" } }\n',
    ) + '  tables: { orders: tenant_id }\n',
    'x.yaml',
  ).config.partitions!;

  function U(h: number, origin: string, row: Record<string, unknown>, tbl = 'public.orders'): Consolidated {
    return {
      kind: 'U',
      tbl,
      pk: '{"id": 1}',
      origin,
      ins: [1, 'a'],
      cols: { qty: { h, base: 1 } },
      row: JSON.stringify(row),
      h,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
  }
  const local = (site: string, h: number, row: Record<string, unknown>): LocalRow => ({
    exists: true,
    row: JSON.stringify(row),
    clock: { i: [1, 'a'], c: { qty: [h, site] }, d: null },
    top: 0,
  });
  const columns = ['id', 'tenant_id', 'qty', 'owner_epoch'];

  it('through the replication rules: both sites keep the higher epoch, even when it is the older write', () => {
    const policy = ownerWinsPolicy({ partitions: p, fallback: { kind: 'latest' } });
    // a (stale owner, epoch 1) wrote at 30; b (new owner, epoch 2) wrote at 20: b must win at both sites
    const rowA = { id: 1, tenant_id: 't1', qty: 1, owner_epoch: '1:a' };
    const rowB = { id: 1, tenant_id: 't1', qty: 2, owner_epoch: '2:b' };
    const atA = decide(U(20, 'b', rowB), local('a', 30, rowA), { columns, policy });
    const atB = decide(U(30, 'a', rowA), local('b', 20, rowB), { columns, policy });
    expect(atA.action).toEqual({ kind: 'update', cols: ['qty'] });
    expect(atB.action).toEqual({ kind: 'none' });
    for (const d of [atA, atB])
      expect(d.conflicts[0]).toMatchObject({
        kind: 'update-update',
        winnerSite: 'b',
        loserSite: 'a',
        reason: expect.stringMatching(/the owner rule/),
      });
    // with `latest`, a's later write would have won
    expect(decide(U(20, 'b', rowB), local('a', 30, rowA), { columns, policy: { kind: 'latest' } }).action).toEqual({
      kind: 'none',
    });
  });

  it('rows outside partitions, and tables not partitioned, follow the fallback policy', () => {
    const policy = ownerWinsPolicy({ partitions: p, fallback: { kind: 'site-priority', order: ['b', 'a'] } });
    const rowA = { id: 1, tenant_id: 'other', qty: 1, owner_epoch: '9:a' };
    const rowB = { id: 1, tenant_id: 'other', qty: 2, owner_epoch: '1:b' };
    expect(decide(U(20, 'b', rowB), local('a', 30, rowA), { columns, policy }).action).toEqual({
      kind: 'update',
      cols: ['qty'],
    }); // b by priority
    expect(
      decide(U(20, 'b', rowB, 'public.notes'), local('a', 30, { ...rowA, tenant_id: 't1' }), { columns, policy })
        .action,
    ).toEqual({ kind: 'update', cols: ['qty'] });
    const latest = ownerWinsPolicy({ partitions: p, fallback: { kind: 'latest' } });
    expect(decide(U(20, 'b', rowB), local('a', 30, rowA), { columns, policy: latest }).action).toEqual({
      kind: 'none',
    }); // a's later write
  });
});
