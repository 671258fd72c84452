import { describe, expect, it } from 'vitest';
import type { BalancedConfig } from '../../../src/config/index.js';
import { compileBalanced, decide } from '../../../src/pdns-backend/balanced.js';
import { parseClient } from '../../../src/site-health/client.js';
import {
  byFigure,
  smoothSchedule,
  type Hysteresis,
  type ProbeFigures,
  type SiteFigures,
} from '../../../src/pdns-backend/policies.js';

const sites = ['a', 'b', 'c'];
const cfg = (over: Partial<BalancedConfig> = {}): BalancedConfig => ({
  name: 'www.example.com.',
  ttl: 20,
  fallback: 'all',
  addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'], c: ['203.0.113.1'] },
  ...over,
});
const up =
  (...s: string[]) =>
  (x: string) =>
    s.includes(x);
const all = up('a', 'b', 'c');
const client = (s: string) => parseClient(s)!;
const figs = (m: Record<string, SiteFigures>) => (s: string) => m[s];

describe('every policy: dead sites out first, all down → fallback', () => {
  for (const policy of [
    'local-first',
    'failover',
    'round-robin',
    'ratio',
    'least-load',
    'fastest',
    'topology',
    'closest',
  ] as const) {
    it(`${policy}`, () => {
      const extra: Partial<BalancedConfig> = policy === 'topology' ? { topology: { '10.0.0.0/8': ['c'] } } : {};
      const b = compileBalanced(cfg({ policy, ...extra }), 'a', sites);
      const inputs = {
        client: client('10.1.2.0/24'),
        counter: 1,
        figures: figs({ a: { load: 1, responseMs: 9 }, b: { load: 0.1, responseMs: 1 } }),
        probe: () => undefined,
        now: 0,
      };
      const d = decide(b, up('a', 'b'), inputs);
      expect(d.kind).toBe('sites');
      expect([...d.sites].sort()).toEqual(['a', 'b']);
      expect(decide(b, up(), inputs)).toEqual({ kind: 'fallback', fallback: 'all', sites: ['a', 'b', 'c'] });
      expect(
        decide(compileBalanced(cfg({ policy, fallback: 'servfail', ...extra }), 'a', sites), up(), inputs),
      ).toEqual({ kind: 'fallback', fallback: 'servfail', sites: [] });
    });
  }
});

describe('round-robin and ratio', () => {
  it('round-robin rotates the usable sites by one per query', () => {
    const b = compileBalanced(cfg({ policy: 'round-robin' }), 'a', sites);
    const seq = [0, 1, 2, 3].map((counter) => decide(b, all, { counter }).sites.join(''));
    expect(seq).toEqual(['abc', 'bca', 'cab', 'abc']);
    expect([0, 1, 2].map((counter) => decide(b, up('a', 'c'), { counter }).sites.join(''))).toEqual(['ac', 'ca', 'ac']);
  });

  it('ratio: the smooth weighted schedule, exactly, with weight-0 sites never first', () => {
    expect(
      smoothSchedule(
        ['a', 'b'],
        new Map([
          ['a', 3],
          ['b', 1],
        ]),
      ),
    ).toEqual(['a', 'a', 'b', 'a']);
    expect(
      smoothSchedule(
        ['a', 'b', 'c'],
        new Map([
          ['a', 5],
          ['b', 1],
          ['c', 1],
        ]),
      ),
    ).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a']);
    expect(
      smoothSchedule(
        ['a', 'b'],
        new Map([
          ['a', 0],
          ['b', 2],
        ]),
      ),
    ).toEqual(['b', 'b']);
    expect(
      smoothSchedule(
        ['a', 'b'],
        new Map([
          ['a', 0],
          ['b', 0],
        ]),
      ),
    ).toEqual(['a', 'b']);
    const b = compileBalanced(cfg({ policy: 'ratio', weights: { a: 1, b: 2, c: 0 } }), 'a', sites);
    expect([0, 1, 2, 3].map((counter) => decide(b, all, { counter }).sites.join(''))).toEqual([
      'bac',
      'abc',
      'bac',
      'bac',
    ]);
    // Ratio over 300 queries: b twice as often first as a, c never.
    const firsts = Array.from({ length: 300 }, (_, counter) => decide(b, all, { counter }).sites[0]);
    expect(firsts.filter((s) => s === 'a').length).toBe(100);
    expect(firsts.filter((s) => s === 'b').length).toBe(200);
  });

  it('per-query answers carry a scope (so PowerDNS does not cache them)', () => {
    const b = compileBalanced(cfg({ policy: 'round-robin' }), 'a', sites);
    expect(decide(b, all, { client: client('192.0.2.0/24') }).scope).toBe(24);
  });
});

describe('least-load and fastest', () => {
  const h: Hysteresis = { ratio: 0.2, min: 0.1, holdMs: 10_000 };
  it('orders by figure, unknown last, ties in preference order', () => {
    const b = compileBalanced(cfg({ policy: 'least-load' }), 'a', sites);
    expect(decide(b, all, { figures: figs({ a: { load: 2 }, b: { load: 1 } }) }).sites).toEqual(['b', 'a', 'c']);
    expect(decide(b, all, { figures: figs({ a: { load: 1 }, b: { load: 1 }, c: { load: 1 } }) }).sites).toEqual([
      'a',
      'b',
      'c',
    ]);
    expect(decide(b, all, { figures: figs({}) }).sites).toEqual(['a', 'b', 'c']);
    const f = compileBalanced(cfg({ policy: 'fastest' }), 'b', sites);
    expect(
      decide(f, all, { figures: figs({ a: { responseMs: 5 }, b: { responseMs: 50 }, c: { responseMs: 20 } }) }).sites,
    ).toEqual(['a', 'c', 'b']);
    expect(
      decide(f, up('b', 'c'), { figures: figs({ a: { responseMs: 5 }, b: { responseMs: 50 }, c: { responseMs: 20 } }) })
        .sites,
    ).toEqual(['c', 'b']);
  });

  it('hysteresis: a site passes another only when better by max(ratio × figure, min)', () => {
    const at = (a: number, b: number, previous = ['a', 'b']) =>
      byFigure(['a', 'b'], (s) => (s === 'a' ? a : b), 'load', '', h, { previous, previousSince: 0, now: 60_000 });
    expect(at(1.0, 0.85)).toEqual(['a', 'b']); // 15% better: not enough
    expect(at(1.0, 0.79)).toEqual(['b', 'a']); // 21% better: passes
    expect(at(0.2, 0.05)).toEqual(['b', 'a']); // by 0.15 > min 0.1
    expect(at(0.1, 0.02)).toEqual(['a', 'b']); // 80% better but only by 0.08 < min
  });

  it('hold: within hold-ms of the last change the order stays, whatever the figures', () => {
    const r = byFigure(['a', 'b'], (s) => (s === 'a' ? 10 : 1), 'load', '', h, {
      previous: ['a', 'b'],
      previousSince: 0,
      now: 9_999,
    });
    expect(r).toEqual(['a', 'b']);
    expect(
      byFigure(['a', 'b'], (s) => (s === 'a' ? 10 : 1), 'load', '', h, {
        previous: ['a', 'b'],
        previousSince: 0,
        now: 10_000,
      }),
    ).toEqual(['b', 'a']);
  });

  it('a site coming back joins by its figure; among equal figures (none known included) in preference order', () => {
    const back = (sites: string[], fig: Record<string, number>) =>
      byFigure(sites, (s) => fig[s], 'load', '', h, { previous: sites.slice(1), previousSince: 0, now: 60_000 });
    // a drained then undrained before anyone reported: first again, as before the drain.
    expect(back(['a', 'b', 'c'], {})).toEqual(['a', 'b', 'c']);
    expect(back(['a', 'b'], { a: 1, b: 1 })).toEqual(['a', 'b']);
    expect(back(['a', 'b'], { a: 2, b: 1 })).toEqual(['b', 'a']);
    expect(back(['a', 'b'], { b: 1 })).toEqual(['b', 'a']);
  });
});

describe('topology', () => {
  const b = compileBalanced(
    cfg({ policy: 'topology', topology: { '10.0.0.0/8': ['b'], '10.1.0.0/16': ['c', 'b'], '2001:db8::/32': ['c'] } }),
    'a',
    sites,
  );
  it('longest prefix wins; its usable sites first, the others after in preference order', () => {
    expect(decide(b, all, { client: client('10.1.2.0/24') })).toEqual({
      kind: 'sites',
      sites: ['c', 'b', 'a'],
      scope: 16,
    });
    expect(decide(b, all, { client: client('10.2.0.0/24') }).sites).toEqual(['b', 'a', 'c']);
    expect(decide(b, up('a', 'b'), { client: client('10.1.2.0/24') }).sites).toEqual(['b', 'a']);
    expect(decide(b, all, { client: client('2001:db8:1::/48') })).toMatchObject({ sites: ['c', 'a', 'b'], scope: 32 });
    expect(decide(b, all, { client: client('192.0.2.0/24') }).sites).toEqual(['a', 'b', 'c']);
  });

  it('the scope is the bits that fix the answer: a more specific entry inside the match raises it', () => {
    // 10.2.0.0/24 is in 10/8 but shares 14 bits with 10.1/16: 15 bits decide it is not in there.
    expect(decide(b, all, { client: client('10.2.0.0/24') }).scope).toBe(15);
    // Outside every entry: one bit more than shared with the nearest.
    expect(decide(b, all, { client: client('192.0.2.0/24') }).scope).toBe(1);
    expect(decide(b, all, { client: client('11.0.0.0/24') }).scope).toBe(8);
  });
});

describe('closest', () => {
  const b = compileBalanced(cfg({ policy: 'closest' }), 'a', sites);
  const p = (rttMs: number, completion = 1, hops?: number, at = 0): ProbeFigures => ({
    rttMs,
    completion,
    at,
    method: 'icmp',
    ...(hops !== undefined ? { hops } : {}),
  });
  const probes = (m: Record<string, ProbeFigures>) => (s: string) => m[s];
  it('orders by rtt / completion + hops × hop-ms, unprobed sites last', () => {
    const c = client('192.0.2.0/24');
    expect(decide(b, all, { client: c, now: 1, probe: probes({ a: p(30), b: p(10), c: p(20) }) })).toEqual({
      kind: 'sites',
      sites: ['b', 'c', 'a'],
      scope: 24,
    });
    expect(decide(b, all, { client: c, now: 1, probe: probes({ a: p(10), b: p(6, 0.5) }) }).sites).toEqual([
      'a',
      'b',
      'c',
    ]);
    expect(decide(b, all, { client: c, now: 1, probe: probes({ a: p(10, 1, 8), b: p(10, 1, 2) }) }).sites).toEqual([
      'b',
      'a',
      'c',
    ]);
    expect(decide(b, all, { client: c, now: 1, probe: probes({ c: p(50) }) }).sites).toEqual(['c', 'a', 'b']);
  });
  it('nobody probed (or results too old): preference order, flagged unprobed, never waiting', () => {
    const c = client('198.51.100.7/32');
    expect(decide(b, all, { client: c, now: 0, probe: () => undefined })).toEqual({
      kind: 'sites',
      sites: ['a', 'b', 'c'],
      scope: 24,
      unprobed: true,
    });
    expect(decide(b, all, { client: c, now: 400_000, probe: probes({ b: p(1) }) })).toMatchObject({ unprobed: true });
  });
  it('IPv6 clients are measured per /48', () => {
    expect(decide(b, all, { client: client('2001:db8:1:2::/64'), probe: () => undefined }).scope).toBe(48);
  });
});
