import { describe, expect, it } from 'vitest';
import type { BalancedConfig } from '../../../src/config/index.js';
import { compileBalanced } from '../../../src/pdns-backend/balanced.js';
import { Handler } from '../../../src/pdns-backend/handler.js';
import { Orderings } from '../../../src/pdns-backend/orderings.js';
import { buildZone } from '../../../src/pdns-backend/zone-index.js';
import { MetricsTable } from '../../../src/site-health/metrics-table.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';
import { exampleZone } from '../pdns-backend/fixtures.js';

const sites = ['a', 'b'];
const name = (n: string, over: Partial<BalancedConfig>) =>
  compileBalanced(
    {
      name: `${n}.example.com.`,
      ttl: 20,
      fallback: 'all',
      addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'] },
      ...over,
    },
    'a',
    sites,
  );

function setup() {
  const timers = new VirtualTimers();
  const clock = () => timers.now();
  const table = new SiteStateTable(sites, clock);
  const metrics = new MetricsTable(sites, clock);
  const names = [
    name('lf', {}),
    name('load', { policy: 'least-load', hysteresis: { ratio: 0.2, min: 0.1, 'hold-ms': 10_000 } }),
    name('topo', { policy: 'topology', topology: { '10.0.0.0/8': ['b'] } }),
    name('rr', { policy: 'round-robin' }),
    name('near', { policy: 'closest' }),
  ];
  const unprobed: string[] = [];
  const orderings = new Orderings(names, table, metrics, {
    clock,
    timers,
    onUnprobed: (_c, key) => unprobed.push(key),
  });
  const flushed: string[][] = [];
  orderings.on('changed', (n) => flushed.push(n));
  const handler = new Handler([buildZone(exampleZone(), names)], table, undefined, orderings);
  const lookup = (qname: string, realRemote: string) =>
    JSON.parse(
      handler.handleLine(
        JSON.stringify({
          method: 'lookup',
          parameters: {
            local: '127.0.0.1',
            qname,
            qtype: 'A',
            'real-remote': realRemote,
            remote: '127.0.0.1',
            'zone-id': 1,
          },
        }),
      ),
    ).result as { content: string; scopeMask: number }[];
  const order = (qname: string, realRemote = '127.0.0.1/32') => lookup(qname, realRemote).map((r) => r.content);
  return {
    table,
    metrics,
    orderings,
    flushed,
    lookup,
    order,
    unprobed,
    advance: (ms: number) => timers.advance(ms),
    timers,
  };
}

const A = '192.0.2.1';
const B = '198.51.100.1';

describe('orderings: caching, flushing, hysteresis in virtual time', () => {
  it('load reports move a least-load name between sites and back; noise neither reorders nor flushes', async () => {
    const t = setup();
    const load = 'load.example.com.';
    expect(t.order(load)).toEqual([A, B]);
    // Schedule of reports every 2 s: (time, load a, load b) → expected first site, flushes so far.
    const schedule: [number, number, number, string, number][] = [
      [2_000, 0.5, 0.48, A, 0], // noise
      [4_000, 0.52, 0.5, A, 0],
      [6_000, 0.9, 0.3, B, 1], // clearly lower at b: moves, one flush
      [8_000, 0.2, 0.9, B, 1], // a is better now but within hold (10 s from 6 s)
      [14_000, 0.6, 0.55, B, 1], // noise: b stays
      [16_000, 0.3, 0.9, A, 2], // held 10 s; a clearly better: back, second flush
      [18_000, 0.31, 0.29, A, 2],
      [20_000, 0.32, 0.3, A, 2],
    ];
    let now = 0;
    for (const [at, la, lb, first, flushes] of schedule) {
      await t.advance(at - now);
      now = at;
      t.metrics.setFigures('a', { load: la });
      t.metrics.setFigures('b', { load: lb });
      expect(t.order(load)[0], `at ${at}`).toBe(first);
      expect(t.flushed.filter((f) => f.includes(load)).length, `flushes at ${at}`).toBe(flushes);
    }
  });

  it('figures that moved during a hold decide the order when it ends, with no further report (one flush)', async () => {
    const t = setup();
    const load = 'load.example.com.';
    await t.advance(6_000);
    t.metrics.setFigures('a', { load: 0.9 });
    t.metrics.setFigures('b', { load: 0.3 });
    expect(t.order(load)[0]).toBe(B); // moved: held until 16 s
    await t.advance(2_000);
    t.metrics.setFigures('a', { load: 0.2 });
    t.metrics.setFigures('b', { load: 0.9 });
    expect(t.order(load)[0]).toBe(B); // a clearly better, but within the hold
    await t.advance(7_999);
    expect([t.order(load)[0], t.flushed.filter((f) => f.includes(load)).length]).toEqual([B, 1]);
    // The same figures, never sent again: the hold's end alone re-decides, and PowerDNS is flushed.
    await t.advance(1);
    expect([t.order(load)[0], t.flushed.filter((f) => f.includes(load)).length]).toEqual([A, 2]);
    expect(t.timers.pending()).toBe(1); // the next hold's end (26 s), nothing more
    t.orderings.close();
    expect(t.timers.pending()).toBe(0);
  });

  it("a site whose replica is stale goes last in every policy's answer (rotations too), flushed once per flip", () => {
    const t = setup();
    expect(t.order('lf.example.com.')).toEqual([A, B]);
    t.metrics.setStale('a', true);
    expect(t.flushed).toEqual([['lf.example.com.', 'load.example.com.']]);
    expect(t.order('lf.example.com.')).toEqual([B, A]); // demoted, still answered
    expect(t.order('topo.example.com.', '172.16.0.0/24')).toEqual([B, A]); // outside the topology: preference order, a demoted
    const rr = Array.from({ length: 4 }, () => t.order('rr.example.com.')[0]);
    expect(rr).toEqual([B, B, B, B]); // the rotation runs over fresh sites only
    t.metrics.setStale('a', true); // no flip: no recompute, no flush
    expect(t.flushed).toHaveLength(1);
    t.metrics.setStale('b', true); // every site stale: nobody is demoted
    expect(t.order('lf.example.com.')).toEqual([A, B]);
    t.metrics.setStale('a', false);
    t.metrics.setStale('b', false);
    expect(t.order('lf.example.com.')).toEqual([A, B]);
    expect(new Set(Array.from({ length: 4 }, () => t.order('rr.example.com.')[0]))).toEqual(new Set([A, B]));
  });

  it('a site going down flushes client-independent names only; client-dependent names carry a scope instead', () => {
    const t = setup();
    expect(t.lookup('lf.example.com.', '10.1.2.0/24')[0]!.scopeMask).toBe(0);
    t.table.setHealth('a', 'test', false, 'dead');
    expect(t.flushed).toEqual([['lf.example.com.', 'load.example.com.']]);
    expect(t.order('topo.example.com.', '10.1.2.0/24')).toEqual([B]);
  });

  it('client-dependent names are emitted as clientChanged when what they read moves, and only then', () => {
    const t = setup();
    const client: string[][] = [];
    t.orderings.on('clientChanged', (n) => client.push(n));
    // Load figures: no client-dependent name reads them.
    t.metrics.setFigures('b', { load: 0.5 });
    expect(client).toEqual([]);
    // A site down: topology and closest answers may change for any client.
    t.table.setHealth('b', 'test', false, 'dead');
    expect(client).toEqual([['topo.example.com.', 'near.example.com.']]);
    // A probe: closest only.
    t.metrics.setProbe('a', '10.1.2.0/24', { rttMs: 5, completion: 1, at: 0, method: 'icmp' });
    expect(client.at(-1)).toEqual(['near.example.com.']);
    // Stale replica data demotes a site: both again.
    t.table.setHealth('b', 'test', true, 'ok');
    client.length = 0;
    t.metrics.setStale('b', true);
    expect(client).toEqual([['topo.example.com.', 'near.example.com.']]);
  });

  it('names deciding alike are decided once per change; a name differing in any input keeps its own decision', () => {
    let now = 0;
    const table = new SiteStateTable(['a', 'b', 'c'], () => now);
    const three = { addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'], c: ['203.0.113.1'] } };
    const mk = (n: string, over: Partial<BalancedConfig>) =>
      compileBalanced({ name: `${n}.example.com.`, ttl: 20, fallback: 'all', ...three, ...over }, 'a', ['a', 'b', 'c']);
    const names = [
      ...Array.from({ length: 50 }, (_, i) => mk(`f${i}`, { policy: 'failover', order: ['a', 'b', 'c'] })),
      mk('rev', { policy: 'failover', order: ['c', 'b', 'a'] }),
      mk('two', { policy: 'failover', order: ['a', 'b'], addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'] } }),
      mk('none', { policy: 'failover', order: ['a', 'b', 'c'], fallback: 'empty' }),
      mk('lf', {}),
    ];
    const orderings = new Orderings(names, table, new MetricsTable(['a', 'b', 'c'], () => now), { clock: () => now });
    const sites = (n: string) => orderings.sharedDecision(names.find((b) => b.name === `${n}.example.com.`)!).sites;
    table.setHealth('a', 'pool', false, 'down');
    expect([sites('f0'), sites('f49'), sites('rev'), sites('two'), sites('lf')]).toEqual([
      ['b', 'c'],
      ['b', 'c'],
      ['c', 'b'],
      ['b'],
      ['b', 'c'],
    ]);
    expect(orderings.lastChanged).toHaveLength(54);
    for (const s of ['b', 'c']) table.setHealth(s, 'pool', false, 'down');
    now += 1;
    expect([sites('f7'), sites('none'), sites('two')]).toEqual([['a', 'b', 'c'], [], ['a', 'b']]);
  });

  it('topology answers per client with the scope they depend on, cached per client and version', () => {
    const t = setup();
    const r1 = t.lookup('topo.example.com.', '10.1.2.0/24');
    expect(r1.map((r) => [r.content, r.scopeMask])).toEqual([
      [B, 8],
      [A, 8],
    ]);
    const r2 = t.lookup('topo.example.com.', '192.0.2.0/24');
    expect(r2.map((r) => [r.content, r.scopeMask])).toEqual([
      [A, 1],
      [B, 1],
    ]);
    t.table.setDrained('b', true);
    expect(t.order('topo.example.com.', '10.1.2.0/24')).toEqual([A]);
    t.table.setDrained('b', false);
    expect(t.order('topo.example.com.', '10.1.2.0/24')).toEqual([B, A]);
  });

  it('round-robin rotates per lookup and is never served with scope 0', () => {
    const t = setup();
    const seen = [0, 1, 2, 3].map(() => t.lookup('rr.example.com.', '192.0.2.0/24'));
    expect(seen.map((r) => r[0]!.content)).toEqual([A, B, A, B]);
    expect(seen.every((r) => r.every((x) => x.scopeMask === 24))).toBe(true);
  });

  it('closest: the first answer for an unknown network uses the default order and asks for a probe once; the result reorders', () => {
    const t = setup();
    expect(t.order('near.example.com.', '203.0.113.0/24')).toEqual([A, B]);
    expect(t.order('near.example.com.', '203.0.113.0/24')).toEqual([A, B]);
    expect(t.unprobed).toEqual(['203.0.113.0/24']);
    t.metrics.setProbe('a', '203.0.113.0/24', { rttMs: 40, completion: 1, at: 0, method: 'icmp' });
    t.metrics.setProbe('b', '203.0.113.0/24', { rttMs: 5, completion: 1, at: 0, method: 'tcp' });
    expect(t.lookup('near.example.com.', '203.0.113.0/24').map((r) => [r.content, r.scopeMask])).toEqual([
      [B, 24],
      [A, 24],
    ]);
    expect(t.flushed).toEqual([]);
  });

  it('explain traces the decision without moving counters', () => {
    const t = setup();
    const b = t.orderings.names.find((n) => n.name === 'topo.example.com.')!;
    const e = t.orderings.explain(b, '10.9.9.0/24');
    expect(e.decision.sites).toEqual(['b', 'a']);
    expect(e.scope).toBe(8);
    expect(e.trace.join('\n')).toMatch(/longest match 10.0.0.0\/8/);
  });
});
