import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/pdns-backend/control.js';
import type { Explanation } from '../../src/pdns-backend/explain.js';
import { addresses, query } from './support/dns.js';
import { startPeerCluster, type PeerCluster } from './support/peer-cluster.js';
import { waitFor } from './support/ports.js';

/**
 * Sites share probe results in heartbeats: a query for a `closest` name at site a makes a probe
 * the client's network (ICMP as root, else TCP connect) and a's next heartbeat carries the result
 * to b, whose `explain` then shows a's figures for that network without b having probed it.
 */
describe('probe results shared between sites in heartbeats (real backends and pdns_server)', () => {
  let cluster: PeerCluster;
  beforeAll(async () => {
    cluster = await startPeerCluster({
      names: ['a', 'b'],
      periodMs: 200,
      logLevel: 'warn',
      balanced: ['{ name: near.example.com, ttl: 60, policy: closest, addresses: ADDRESSES }'],
      extra: 'probes:\n  count: 1\n  timeout-ms: 500\n  tcp-port: 9\n',
    });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 30_000);

  const explainAt = async (site: string) => {
    const res = await controlRequest(join(cluster.site(site).dir, 'control.sock'), { cmd: 'explain', name: 'near.example.com', client: '127.0.0.1' });
    if (!res.ok) throw new Error(`explain at ${site}: ${res.error}`);
    return res.explain as Explanation;
  };

  it("a query at a gets probed there; b learns a's result from a's heartbeat", async () => {
    const a = cluster.site('a');
    // the first answer uses the default order and schedules a probe of 127.0.0.0/24 (the resolver's network)
    const first = addresses(await query(a.host, a.pdns.port, 'near.example.com.', 'A'));
    expect(first.length).toBeGreaterThan(0);
    await waitFor("a's probe of 127.0.0.0/24", async () => (await explainAt('a')).sites.find((s) => s.site === 'a')?.probe !== undefined);
    await waitFor("a's probe result at b", async () => (await explainAt('b')).sites.find((s) => s.site === 'a')?.probe !== undefined);
    const atB = (await explainAt('b')).sites;
    expect(atB.find((s) => s.site === 'a')!.probe).toMatchObject({ network: '127.0.0.0/24', completion: expect.any(Number) });
    expect(atB.find((s) => s.site === 'b')!.probe).toBeUndefined(); // b never probed it itself
  });
});
