import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addresses, query } from './support/dns.js';
import { startPeerCluster, type PeerCluster } from './support/peer-cluster.js';
import { waitFor, waitForValue } from './support/ports.js';

/**
 * decided-by through real pdns_server: the name has addresses at a and b and is decided by c
 * (whose local-first order, without an address of its own, is a then b). b's backend asks c's
 * (POST /decide, signed) and serves c's order instead of its own (b first); when c's backend
 * stops answering, b serves its own order again once c's decision expires (TTL 2 s here). c
 * being down does not change the name's usable sites, so the change is the fallback alone.
 */
describe('decided-by: another site decides the order (real pdns_server, three backends)', () => {
  let cluster: PeerCluster;
  beforeAll(async () => {
    cluster = await startPeerCluster({
      names: ['a', 'b', 'c'],
      periodMs: 200,
      logLevel: 'warn',
      balanced: [
        '{ name: dec.example.com, ttl: 2, decided-by: c, decided-by-timeout-ms: 1000, addresses: { a: [192.0.2.1], b: [192.0.2.2] } }',
      ],
    });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 30_000);

  const answer = async (site: string) => {
    const s = cluster.site(site);
    return addresses(await query(s.host, s.pdns.port, 'dec.example.com.', 'A', { timeoutMs: 3000 }));
  };
  /**
   * Polls until the answer is `want` (a query that times out while c is stopped counts as "not yet"); the ms it took,
   * for the log.
   */
  const until = async (what: string, fn: () => Promise<string[]>, want: string[]) =>
    (await waitForValue(what, fn, (v) => v.join() === want.join())).ms;

  it("b answers c's order (a first) instead of its own (b first)", async () => {
    await until("b serves c's order", () => answer('b'), ['192.0.2.1', '192.0.2.2']);
    expect(await answer('a')).toEqual(['192.0.2.1', '192.0.2.2']);
    // the plain local-first name (not decided-by) stays local-first at b
    // (its other addresses depend on which peers b already hears: the sites started one by one)
    expect(
      addresses(await query(cluster.site('b').host, cluster.site('b').pdns.port, 'www.example.com.', 'A'))[0],
    ).toBe('192.0.2.2');
    expect(
      await cluster.site('b').metric('multisite_backend_decided_by_requests_total', { site: 'c', result: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it("c's backend stops answering (SIGSTOP): b falls back to its own order when c's decision expires, and back to c's after", async () => {
    const b = cluster.site('b');
    const c = cluster.site('c');
    const timeouts = async () =>
      (await b.metric('multisite_backend_decided_by_requests_total', { site: 'c', result: 'timeout' })) +
      (await b.metric('multisite_backend_decided_by_requests_total', { site: 'c', result: 'error' }));
    // From c's order (a request to c that timed out on a loaded machine may have left b on its own for a moment).
    await until("b serves c's order before c stops", () => answer('b'), ['192.0.2.1', '192.0.2.2']);
    const before = await timeouts();
    c.backend.child.kill('SIGSTOP');
    try {
      const ms = await until('b serves its own order', () => answer('b'), ['192.0.2.2', '192.0.2.1']);
      console.log(
        `decided-by: b serves its own order ${ms.toFixed(0)} ms after c's backend stopped (TTL 2 s, timeout 1000 ms)`,
      );
      await waitFor('b counts a request to c that got no answer', async () => (await timeouts()) > before);
    } finally {
      c.backend.child.kill('SIGCONT');
    }
    await until("b serves c's order again", () => answer('b'), ['192.0.2.1', '192.0.2.2']);
  });
});
