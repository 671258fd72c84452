import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { encode, type SharedProbe } from '../../../src/site-health/peers/codec.js';
import { PeerMetrics } from '../../../src/site-health/peers/metrics.js';
import type { ProbeResult } from '../../../src/site-health/peers/probe.js';
import { PeerService, type PeerSite } from '../../../src/site-health/peers/service.js';
import type { Address, Transport } from '../../../src/site-health/peers/transport.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

const key = Buffer.from('the cluster key, 32 bytes long!!');
const EPOCH = 1_700_000_000_000;
const SITES = ['a', 'b', 'c'];
const addr = (s: string): Address => ({ host: `127.0.0.${SITES.indexOf(s) + 2}`, port: 7946 });
const silent = pino({ level: 'silent' });

/** Datagrams between the sites' transports, delivered at once unless `drop` says otherwise; all of them recorded. */
class FakeNet {
  handlers = new Map<string, (buf: Buffer, from: Address) => void>();
  drop: (from: string, to: string) => boolean = () => false;
  sent: { from: string; to: string; buf: Buffer; at: number }[] = [];
  constructor(private readonly timers: VirtualTimers) {}
  transport(site: string): Transport {
    const me = addr(site);
    const k = `${me.host}:${me.port}`;
    return {
      start: async (on) => void this.handlers.set(k, on),
      stop: async () => void this.handlers.delete(k),
      send: (buf, to) => {
        const toSite = SITES[Number(to.host.split('.')[3]) - 2]!;
        this.sent.push({ from: site, to: toSite, buf, at: this.timers.now() });
        if (!this.drop(site, toSite)) this.handlers.get(`${to.host}:${to.port}`)?.(buf, me);
      },
    };
  }
}

interface Node {
  service: PeerService;
  table: SiteStateTable;
  metrics: PeerMetrics;
  registry: Registry;
  probes: { site: string; at: number }[];
  /** Probe results peers shared with this site. */
  shared: { site: string; entries: SharedProbe[]; at: number }[];
  pool: 'up' | 'down' | 'unknown';
}

/** Three sites in virtual time; `probe[site]` is what probing that site answers (and after how long). */
function cluster(opts: { probe?: Record<string, { ok: boolean; ms?: number }> } = {}) {
  const timers = new VirtualTimers();
  const net = new FakeNet(timers);
  const probe = opts.probe ?? {};
  const nodes: Record<string, Node> = {};
  for (const site of SITES) {
    const table = new SiteStateTable(SITES, () => EPOCH + timers.now());
    const registry = new Registry();
    const metrics = new PeerMetrics(registry);
    const probes: Node['probes'] = [];
    const shared: Node['shared'] = [];
    const node: Node = {
      table,
      metrics,
      registry,
      probes,
      shared,
      pool: 'unknown',
      service: undefined as unknown as PeerService,
    };
    const peers: PeerSite[] = SITES.filter((s) => s !== site).map((s) => ({
      site: s,
      heartbeat: [addr(s)],
      statusUrls: [`http://${addr(s).host}:9100/status`],
      lbAddresses: [],
    }));
    node.service = new PeerService({
      site,
      node: `${site}1`,
      key,
      peers,
      periodMs: 1000,
      suspectAfterMs: 1500,
      recoverPeriods: 3,
      maxSkewMs: 5000,
      probeBudgetMs: 1050,
      transport: net.transport(site),
      probe: (t) => {
        probes.push({ site: t.site, at: timers.now() });
        const p = probe[t.site] ?? { ok: true };
        return new Promise<ProbeResult>((resolve) =>
          timers.setTimeout(
            () => resolve({ ok: p.ok, detail: p.ok ? 'status ok' : 'ECONNREFUSED', ms: p.ms ?? 0 }),
            p.ms ?? 0,
          ),
        );
      },
      summary: () => ({ pool: node.pool }),
      table,
      timers,
      wallNow: () => EPOCH + timers.now(),
      logger: silent,
      metrics,
      onProbes: (from, entries) => shared.push({ site: from, entries, at: timers.now() }),
    });
    nodes[site] = node;
  }
  return { timers, net, nodes, start: () => Promise.all(Object.values(nodes).map((n) => n.service.start())) };
}

const counter = async (n: Node, name: string, labels: Record<string, string>) => {
  const m = (await n.registry.getSingleMetric(name)!.get()).values.find((v) =>
    Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return m?.value ?? 0;
};

describe('peer service (virtual time, fake network)', () => {
  it('sends one heartbeat per period to each peer backend, each with a new sequence number', async () => {
    const { timers, net, nodes, start } = cluster();
    await start();
    await timers.advance(3000);
    const fromA = net.sent.filter((s) => s.from === 'a');
    expect(fromA.map((s) => `${s.at}:${s.to}`)).toEqual([
      '0:b',
      '0:c',
      '1000:b',
      '1000:c',
      '2000:b',
      '2000:c',
      '3000:b',
      '3000:c',
    ]);
    expect(fromA.every((s) => s.buf.length < 512)).toBe(true);
    // a's first heartbeat (t=0) went out before b had started listening.
    expect(await counter(nodes.b!, 'multisite_peers_heartbeats_received_total', { site: 'a' })).toBe(3);
    expect(await counter(nodes.a!, 'multisite_peers_heartbeats_received_total', { site: 'c' })).toBe(4);
    expect(nodes.a!.service.status().map((s) => s.state)).toEqual(['up', 'up']);
  });

  it('shares probe results with the next heartbeat: latest per network, 16 to a datagram, as ages', async () => {
    const { timers, net, nodes, start } = cluster();
    await start();
    await timers.advance(100);
    const a = nodes.a!.service;
    for (let i = 0; i < 20; i++)
      a.shareProbe({ key: `10.0.${i}.0/24`, rttMs: 10 + i, completion: 1, hops: 5, method: 'icmp' }, EPOCH + 50);
    a.shareProbe({ key: '10.0.3.0/24', rttMs: 99, completion: 0.5, method: 'tcp' }, EPOCH + 80); // a newer result replaces the queued one
    const before = net.sent.length;
    await timers.advance(900); // the heartbeat at t=1000
    expect(
      net.sent
        .slice(before)
        .filter((s) => s.from === 'a')
        .map((s) => s.to),
    ).toEqual(['b', 'b', 'b', 'c', 'c', 'c']); // heartbeat + 2 probe datagrams each
    const atB = nodes.b!.shared.filter((x) => x.site === 'a');
    expect(atB.map((x) => x.entries.length)).toEqual([16, 4]);
    const all = atB.flatMap((x) => x.entries);
    expect(all).toHaveLength(20);
    expect(all.find((e) => e.key === '10.0.3.0/24')).toEqual({
      key: '10.0.3.0/24',
      rttMs: 99,
      completion: 0.5,
      method: 'tcp',
      ageMs: 920,
    });
    expect(all.find((e) => e.key === '10.0.7.0/24')).toEqual({
      key: '10.0.7.0/24',
      rttMs: 17,
      completion: 1,
      hops: 5,
      method: 'icmp',
      ageMs: 950,
    });
    // sent once: the next heartbeat carries none
    await timers.advance(1000);
    expect(nodes.b!.shared).toHaveLength(2);
  });

  it('a killed site: suspect 1.5 s after its last heartbeat, probe fails, down in the table at once, announced', async () => {
    const { timers, net, nodes, start } = cluster({ probe: { c: { ok: false, ms: 3 } } });
    await start();
    await timers.advance(2100);
    await nodes.c!.service.stop(); // last heartbeat from c at t=2000
    await timers.advance(1399);
    expect(nodes.a!.table.isUsable('c')).toBe(true);
    await timers.advance(1); // t=3500: suspect, probe takes 3 ms
    expect(nodes.a!.service.state('c')).toBe('suspect');
    expect(nodes.a!.probes).toEqual([{ site: 'c', at: 3500 }]);
    await timers.advance(3);
    expect(nodes.a!.service.state('c')).toBe('down');
    expect(nodes.a!.table.isUsable('c')).toBe(false);
    expect(nodes.a!.table.get('c')!.reason).toBe('peer: verified down: ECONNREFUSED (after: no heartbeat for 1500 ms)');
    // a and b both detect c at 3500; each announces to the other (not to c).
    const announces = net.sent.filter((s) => s.at === 3503 && s.to !== 'c' && s.buf[3] === 2);
    expect(announces.map((s) => `${s.from}->${s.to}`).sort()).toEqual(['a->b', 'b->a']);
    expect(
      await counter(nodes.a!, 'multisite_peers_transitions_total', { site: 'c', from: 'suspect', to: 'down' }),
    ).toBe(1);
    expect(await counter(nodes.a!, 'multisite_peers_state', { site: 'c', state: 'down' })).toBe(1);
  });

  it('an announce makes a peer verify at once instead of waiting for its own timeout', async () => {
    const { timers, net, nodes, start } = cluster({ probe: { c: { ok: false } } });
    await start();
    await timers.advance(500);
    // c's heartbeats stop reaching a after t=1000; b hears c until c dies at 2200 (last at 2000).
    net.drop = (from, to) => from === 'c' && to === 'a' && timers.now() > 1000;
    await timers.advance(1700);
    await nodes.c!.service.stop();
    await timers.advance(300); // t=2500: a suspects c (last heard 1000), the probe fails, a announces to b
    expect(nodes.a!.service.state('c')).toBe('down');
    expect(nodes.b!.probes).toEqual([{ site: 'c', at: 2500 }]);
    // b's own timeout would have come at 3500.
    expect(nodes.b!.service.state('c')).toBe('down');
    expect(nodes.b!.table.get('c')!.reason).toContain('site a announced it down');
  });

  it('heartbeats lost while the site serves: suspect and verified by probe, never out of the answers', async () => {
    const { timers, net, nodes, start } = cluster();
    await start();
    net.drop = (from, to) => from === 'b' && to === 'a';
    const changes: unknown[] = [];
    nodes.a!.table.on('change', (c) => changes.push(c));
    await timers.advance(60_000);
    expect(changes).toEqual([]);
    expect(nodes.a!.table.isUsable('b')).toBe(true);
    expect(nodes.a!.probes.length).toBeGreaterThan(30);
    expect(await counter(nodes.a!, 'multisite_peers_probes_total', { site: 'b', result: 'ok' })).toBe(
      nodes.a!.probes.length,
    );
  });

  it('30% heartbeat loss at random: no false failover in 10 virtual minutes', async () => {
    const { timers, net, nodes, start } = cluster();
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    net.drop = () => random() < 0.3;
    await start();
    const changes: unknown[] = [];
    for (const n of Object.values(nodes)) n.table.on('change', (c) => changes.push(c));
    await timers.advance(600_000);
    expect(changes).toEqual([]);
  });

  it('a restarted site is back after heartbeats in each of the last 3 periods', async () => {
    const { timers, net, nodes, start } = cluster({ probe: { b: { ok: false } } });
    await start();
    const saved = nodes.b!.service;
    await timers.advance(100);
    await saved.stop();
    await timers.advance(5000);
    expect(nodes.a!.table.isUsable('b')).toBe(false);
    // b comes back: a new service (new boot time, sequence from 1).
    net.drop = () => false;
    await saved.start(); // restart re-sends at once (t=5100), then 6100, 7100
    await timers.advance(1000);
    expect(nodes.a!.service.state('b')).toBe('down');
    await timers.advance(1000);
    expect(nodes.a!.service.state('b')).toBe('up');
    expect(nodes.a!.table.isUsable('b')).toBe(true);
    expect(nodes.a!.table.get('b')!.reason).toBe('up');
  });

  it('forged and replayed heartbeats are rejected, counted, and keep no dead site alive', async () => {
    const { timers, net, nodes, start } = cluster({ probe: { c: { ok: false } } });
    await start();
    await timers.advance(1000);
    const captured = net.sent.filter((s) => s.from === 'c' && s.to === 'a').map((s) => s.buf);
    await nodes.c!.service.stop();
    const forged = encode(
      {
        type: 'heartbeat',
        site: 'c',
        sender: 'c1',
        boot: EPOCH + 10_000,
        seq: 1,
        time: EPOCH + 1000,
        summary: { pool: 'up' },
      },
      Buffer.from('not the cluster key, but long'),
    );
    const from = addr('c');
    for (let t = 0; t < 10; t++) {
      await timers.advance(500);
      nodes.a!.service.receive(forged, from);
      for (const buf of captured) nodes.a!.service.receive(buf, from);
    }
    expect(nodes.a!.service.state('c')).toBe('down');
    expect(await counter(nodes.a!, 'multisite_peers_messages_rejected_total', { reason: 'bad-mac' })).toBe(10);
    // Replays are refused as such, and once older than the skew bound (t > 5000 for the one sent at 0) as stale.
    const replay = await counter(nodes.a!, 'multisite_peers_messages_rejected_total', { reason: 'replay' });
    const skew = await counter(nodes.a!, 'multisite_peers_messages_rejected_total', { reason: 'skew' });
    expect([replay, skew]).toEqual([18, 2]);
    expect(await counter(nodes.a!, 'multisite_peers_transitions_total', { site: 'c', from: 'down', to: 'up' })).toBe(0);
  });

  it('a site that reports its own pool down is out of the answers while its heartbeats say so', async () => {
    const { timers, nodes, start } = cluster();
    await start();
    nodes.b!.pool = 'down';
    await timers.advance(1000);
    expect(nodes.a!.table.isUsable('b')).toBe(false);
    expect(nodes.a!.table.get('b')!.reason).toBe('peer-pool: the site reports its pool down');
    nodes.b!.pool = 'up';
    await timers.advance(1000);
    expect(nodes.a!.table.isUsable('b')).toBe(true);
  });

  it('heartbeatNow: a pool change reaches the peers at once, not at the next period; rate-limited to one per 50 ms', async () => {
    const { timers, net, nodes, start } = cluster();
    await start();
    await timers.advance(300);
    nodes.b!.pool = 'down';
    nodes.b!.service.heartbeatNow();
    expect(nodes.a!.table.isUsable('b')).toBe(false); // no virtual time passed
    const fromB = () => net.sent.filter((s) => s.from === 'b' && s.to === 'a').map((s) => s.at);
    expect(fromB()).toEqual([0, 300]);
    // A flapping pool: three changes within the gap give one more heartbeat, at its end.
    await timers.advance(10);
    nodes.b!.pool = 'up';
    for (let i = 0; i < 3; i++) nodes.b!.service.heartbeatNow();
    await timers.advance(39);
    expect(fromB()).toEqual([0, 300]);
    await timers.advance(1);
    expect(fromB()).toEqual([0, 300, 350]);
    expect(nodes.a!.table.isUsable('b')).toBe(true);
    // The period restarts from the last heartbeat.
    await timers.advance(1000);
    expect(fromB()).toEqual([0, 300, 350, 1350]);
  });

  it('heartbeatNow right after a periodic heartbeat sends at once: only immediate heartbeats count for the gap', async () => {
    const { timers, net, nodes, start } = cluster();
    await start();
    const fromB = () => net.sent.filter((s) => s.from === 'b' && s.to === 'a').map((s) => s.at);
    await timers.advance(1010); // the periodic heartbeat went out at 1000
    expect(fromB()).toEqual([0, 1000]);
    nodes.b!.pool = 'down';
    nodes.b!.service.heartbeatNow();
    expect(fromB()).toEqual([0, 1000, 1010]);
    expect(nodes.a!.table.isUsable('b')).toBe(false); // no virtual time passed
    // The next change within 50 ms of that immediate one still waits for the gap's end.
    await timers.advance(20);
    nodes.b!.pool = 'up';
    nodes.b!.service.heartbeatNow();
    expect(fromB()).toEqual([0, 1000, 1010]);
    await timers.advance(30);
    expect(fromB()).toEqual([0, 1000, 1010, 1060]);
    expect(nodes.a!.table.isUsable('b')).toBe(true);
  });
});
