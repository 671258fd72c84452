import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { BalancedConfig } from '../../../src/config/index.js';
import type { Route } from '../../../src/shared/metrics.js';
import { post, sign } from '../../../src/shared/peer-http.js';
import { compileBalanced } from '../../../src/pdns-backend/balanced.js';
import { decideRoute, parseReply, RemoteDecider, type DecideRequest } from '../../../src/pdns-backend/decided-by.js';
import { Orderings } from '../../../src/pdns-backend/orderings.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

const sites = ['a', 'b'];
const KEY = Buffer.from('decided-by-test-key');
const logger = pino({ level: 'silent' });

/** One site's view: its names (compiled for `site`) and orderings on a shared fake clock. */
function siteView(
  site: string,
  clock: () => number,
  over: Partial<BalancedConfig> = {},
  topo: Record<string, string[]> = { '10.0.0.0/8': ['b'] },
  topoOnly = false,
) {
  const names = [
    compileBalanced(
      {
        name: 'lf.example.com.',
        ttl: 20,
        fallback: 'all',
        addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'] },
        ...(topoOnly ? {} : over),
      },
      site,
      sites,
    ),
    compileBalanced(
      {
        name: 'topo.example.com.',
        ttl: 20,
        fallback: 'all',
        policy: 'topology',
        topology: topo,
        addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'] },
        ...over,
      },
      site,
      sites,
    ),
  ];
  const table = new SiteStateTable(sites, clock);
  let decider: RemoteDecider | undefined;
  const orderings = new Orderings(names, table, undefined, {
    clock,
    onRemoteMiss: (b, c, k) => decider?.miss(b, c, k),
  });
  return { names, table, orderings, setDecider: (d: RemoteDecider) => (decider = d) };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
});

async function serve(route: Route): Promise<string> {
  const server = createServer((req, res) => {
    if (!route(req, res)) {
      res.writeHead(404);
      res.end();
    }
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Site a decides; site b (names decided-by a) asks it. */
async function twoSites(
  opts: {
    key?: Buffer;
    origin?: string;
    timeoutMs?: number;
    topoAtA?: Record<string, string[]>;
    topoOnly?: boolean;
  } = {},
) {
  let now = 1_000_000;
  const clock = () => now;
  const a = siteView('a', clock, {}, opts.topoAtA);
  const origin = opts.origin ?? (await serve(decideRoute(a.orderings, opts.key ?? KEY, logger)));
  const b = siteView(
    'b',
    clock,
    // A real HTTP request on loopback: the default 300 ms can pass on a loaded machine, and a
    // failed request is not retried in virtual time. Tests of the timeout pass their own.
    { 'decided-by': 'a', 'decided-by-timeout-ms': opts.timeoutMs ?? 10_000 },
    undefined,
    opts.topoOnly,
  );
  const registry = new Registry();
  const timers = new VirtualTimers();
  const decider = new RemoteDecider({
    site: 'b',
    peers: new Map([['a', [origin]]]),
    key: KEY,
    orderings: b.orderings,
    timers,
    clock,
    logger,
    registry,
  });
  b.setDecider(decider);
  const count = async (result: string) =>
    (await registry.getSingleMetric('multisite_backend_decided_by_requests_total')!.get()).values.find(
      (v) => v.labels.result === result,
    )?.value ?? 0;
  return { a, b, decider, timers, count, advance: (ms: number) => (now += ms) };
}

const changed = (o: Orderings) => once(o, 'changed') as Promise<[string[]]>;

describe('decided-by', () => {
  it("a shared name: b serves a's order once it arrives (ours until then), and flushes it", async () => {
    const { b, decider } = await twoSites();
    const lf = b.names[0]!;
    expect(b.orderings.sharedDecision(lf).sites).toEqual(['b', 'a']); // local-first at b, before a answers
    const flushed = changed(b.orderings);
    decider.start();
    expect((await flushed)[0]).toContain('lf.example.com.');
    expect(b.orderings.sharedDecision(lf).sites).toEqual(['a', 'b']);
    decider.stop();
  });

  it("a client-dependent name: the deciding site's topology and scope, per client network", async () => {
    // a's topology sends 10/8 to a (b's own would send it to b)
    const { b, decider } = await twoSites({ topoAtA: { '10.0.0.0/8': ['a'] } });
    const topo = b.names[1]!;
    expect(b.orderings.forClient(topo, '10.1.2.0/24').decision.sites).toEqual(['b', 'a']); // ours first; a asked
    await changed(b.orderings);
    expect(b.orderings.forClient(topo, '10.1.2.0/24')).toEqual({
      decision: { kind: 'sites', sites: ['a', 'b'] },
      scope: 8,
    });
    expect(b.orderings.forClient(topo, '10.1.2.77/32').decision.sites).toEqual(['a', 'b']); // same /24
    decider.stop();
  });

  it("the peer's order is still filtered by our own view of the sites", async () => {
    const { b, decider } = await twoSites();
    decider.start();
    await changed(b.orderings);
    b.table.setHealth('a', 'peers', false, 'verified down');
    expect(b.orderings.sharedDecision(b.names[0]!).sites).toEqual(['b']);
    decider.stop();
  });

  it('expires after the TTL: our own order until a refreshed one comes; shared names are refreshed ahead', async () => {
    const { b, decider, timers, advance, count } = await twoSites();
    decider.start();
    await changed(b.orderings);
    expect(await count('ok')).toBe(1);
    advance(19_300); // 0.7 s before expiry: within the next sweep's lead (sweep 500 ms + request timeout 300 ms)
    await timers.advance(500);
    await expect.poll(() => count('ok'), { timeout: 5000 }).toBe(2);
    advance(19_900); // the refreshed decision is good until 20 s after it came: refreshed again
    await timers.advance(500);
    await expect.poll(() => count('ok'), { timeout: 5000 }).toBe(3);
    expect(b.orderings.sharedDecision(b.names[0]!).sites).toEqual(['a', 'b']);
    decider.stop();
    advance(20_001); // past expiry, no refresh (stopped): ours again
    b.orderings.sweepRemote(0);
    expect(b.orderings.sharedDecision(b.names[0]!).sites).toEqual(['b', 'a']);
  });

  it('a peer that does not answer in time: our own order stands, the failure is counted and not repeated at once', async () => {
    const silent = createServer(() => undefined); // accepts, never answers
    servers.push(silent);
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const { b, decider, count, advance } = await twoSites({
      origin: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      timeoutMs: 50,
      topoOnly: true,
    });
    const topo = b.names[1]!;
    expect(b.orderings.forClient(topo, '10.1.2.0/24').decision.sites).toEqual(['b', 'a']);
    await expect.poll(() => count('timeout'), { timeout: 5000 }).toBe(1);
    b.orderings.recompute('test'); // a new version: the miss is seen again...
    b.orderings.forClient(topo, '10.1.2.0/24');
    advance(500);
    b.orderings.recompute('test');
    b.orderings.forClient(topo, '10.1.2.0/24');
    expect(await count('timeout')).toBe(1); // ...but not asked again within retryMs
    advance(600);
    b.orderings.recompute('test');
    b.orderings.forClient(topo, '10.1.2.0/24');
    await expect.poll(() => count('timeout'), { timeout: 5000 }).toBe(2);
    expect(b.orderings.forClient(topo, '10.1.2.0/24').decision.sites).toEqual(['b', 'a']);
    decider.stop();
  });

  it('a reply signed with another key is refused; so is an unsigned request', async () => {
    const { b, decider, count } = await twoSites({ key: Buffer.from('not-the-peers-key') });
    decider.start();
    // a refuses b's request (b signs with the peers key, a checks another): 403, counted as an error
    await expect.poll(() => count('error'), { timeout: 5000 }).toBe(1);
    expect(b.orderings.sharedDecision(b.names[0]!).sites).toEqual(['b', 'a']);
    decider.stop();
    const origin = await serve(decideRoute(b.orderings, KEY, logger));
    const unsigned = await post(
      `${origin}/decide`,
      JSON.stringify({ site: 'x', name: 'lf.example.com.', nonce: 'n' }),
      undefined,
    );
    expect(unsigned.status).toBe(403);
    const unknown = await post(
      `${origin}/decide`,
      JSON.stringify({ site: 'x', name: 'nope.example.com.', nonce: 'n' }),
      KEY,
    );
    expect(unknown.status).toBe(404);
    const bad = await post(`${origin}/decide`, '{"name": 3}', KEY);
    expect(bad.status).toBe(400);
    const ok = await post(`${origin}/decide`, JSON.stringify({ site: 'x', name: 'lf.example.com.', nonce: 'n1' }), KEY);
    expect(ok.status).toBe(200);
    expect(ok.mac).toBe(sign(KEY, ok.body));
    expect(JSON.parse(ok.body)).toEqual({ name: 'lf.example.com.', nonce: 'n1', sites: ['b', 'a'], scope: 0, ttl: 20 });
  });

  it('parseReply: only the reply to this request, with known sites and sane numbers', () => {
    const req: DecideRequest = { site: 'b', name: 'lf.example.com.', nonce: 'n1' };
    const good = { name: 'lf.example.com.', nonce: 'n1', sites: ['a', 'b'], scope: 0, ttl: 20 };
    expect(parseReply(JSON.stringify(good), req, sites)).toEqual(good);
    const bad = (over: object) => () => parseReply(JSON.stringify({ ...good, ...over }), req, sites);
    expect(bad({ nonce: 'old' })).toThrow(/another request/);
    expect(bad({ name: 'x.example.com.' })).toThrow(/another request/);
    expect(bad({ sites: ['a', 'z'] })).toThrow(/known sites/);
    expect(bad({ sites: ['a', 'a'] })).toThrow(/distinct/);
    expect(bad({ scope: 129 })).toThrow(/scope/);
    expect(bad({ ttl: -1 })).toThrow(/ttl/);
    expect(() => parseReply('not json', req, sites)).toThrow(/not JSON/);
  });
});
