import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/pdns-backend/control.js';
import type { Explanation } from '../../src/pdns-backend/explain.js';
import { addresses, query } from './support/dns.js';
import { startPeerCluster, type PeerCluster } from './support/peer-cluster.js';
import { waitFor } from './support/ports.js';
import { createCluster, type Cluster } from './replication/harness.js';

/**
 * Sites share probe results in heartbeats: a query for a `closest` name at site a makes a probe
 * the client's network (ICMP as root, else TCP connect) and a's next heartbeat carries the result
 * to b, whose `explain` then shows a's figures for that network without b having probed it.
 */
describe('what heartbeats carry besides health: probe results and replica lag (real backends, pdns_server, PostgreSQL)', () => {
  let cluster: PeerCluster;
  let dbs: Cluster;
  beforeAll(async () => {
    dbs = await createCluster('hbpayload', ['a', 'b'], 'CREATE TABLE items (id int PRIMARY KEY, v text)', ['items']);
    const replication = `replication:\n  tables: [items]\n  max-lag-seconds: 0.3\n  sites: { a: { db: "${dbs.site('a').url}" }, b: { db: "${dbs.site('b').url}" } }\n`;
    cluster = await startPeerCluster({
      names: ['a', 'b'],
      periodMs: 200,
      logLevel: 'warn',
      balanced: ['{ name: near.example.com, ttl: 60, policy: closest, addresses: ADDRESSES }'],
      extra: `probes:\n  count: 1\n  timeout-ms: 500\n  tcp-port: 9\n${replication}`,
    });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
    await dbs?.close();
  }, 30_000);

  const explainAt = async (site: string) => {
    const res = await controlRequest(join(cluster.site(site).dir, 'control.sock'), {
      cmd: 'explain',
      name: 'near.example.com',
      client: '127.0.0.1',
    });
    if (!res.ok) throw new Error(`explain at ${site}: ${res.error}`);
    return res.explain as Explanation;
  };

  it("a query at a gets probed there; b learns a's result from a's heartbeat", async () => {
    const a = cluster.site('a');
    // the first answer uses the default order and schedules a probe of 127.0.0.0/24 (the resolver's network)
    const first = addresses(await query(a.host, a.pdns.port, 'near.example.com.', 'A'));
    expect(first.length).toBeGreaterThan(0);
    await waitFor(
      "a's probe of 127.0.0.0/24",
      async () => (await explainAt('a')).sites.find((s) => s.site === 'a')?.probe !== undefined,
    );
    await waitFor(
      "a's probe result at b",
      async () => (await explainAt('b')).sites.find((s) => s.site === 'a')?.probe !== undefined,
    );
    const atB = (await explainAt('b')).sites;
    expect(atB.find((s) => s.site === 'a')!.probe).toMatchObject({
      network: '127.0.0.0/24',
      completion: expect.any(Number),
    });
    expect(atB.find((s) => s.site === 'b')!.probe).toBeUndefined(); // b never probed it itself
  });

  it("b's heartbeats tell a how far b's database is behind; past max-lag-seconds b is demoted in DNS until it catches up", async () => {
    const a = cluster.site('a');
    const lagOfB = async () => (await a.status()).sites.find((s) => s.site === 'b')?.peer?.summary?.replicationLagMs;
    await waitFor("b's lag 0 at a", async () => (await lagOfB()) === 0);
    const b = cluster.site('b');
    expect(await b.answer()).toEqual(['192.0.2.2', '192.0.2.1']); // local-first at b
    await dbs.site('a').db.query(`INSERT INTO items VALUES (1, 'x')`); // not replicated: nothing runs replicate here
    await waitFor("b's lag reported at a", async () => ((await lagOfB()) ?? 0) > 0);
    // past max-lag-seconds (0.3 s) b's data is stale: b demotes itself in its own answers
    await waitFor('b demoted at b', async () => (await b.answer())[0] === '192.0.2.1');
    await dbs.syncAll();
    await waitFor("b's lag 0 again at a", async () => (await lagOfB()) === 0);
    await waitFor('b first again at b', async () => (await b.answer())[0] === '192.0.2.2');
  });
});
