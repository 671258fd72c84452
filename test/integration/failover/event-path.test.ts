import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeClient } from '../../../src/haproxy/index.js';
import { startHaproxy, startWebServer, type Haproxy, type WebServer } from '../../../src/lab/haproxy.js';
import { freePort } from '../../../src/lab/ports.js';
import { until } from '../agent/support.js';
import { startSite, type SiteUnderTest } from '../support/cluster.js';
import { addresses, query } from '../support/dns.js';
import { startRelay } from '../support/relay.js';

/**
 * HAProxy → site health → PowerDNS on real parts, with the safety-net poll set to minutes: the
 * backend can learn a server state change only from HAProxy's event stream (`show events
 * multisite -w`) or from the full re-read each (re)connect of it does. HAProxy's Runtime API and
 * PowerDNS's API are reached through relays the test cuts, switches and refuses.
 */
const A = '192.0.2.1';
const B = '198.51.100.1';
const HOST = '127.0.0.5';

// A check may take seconds on a loaded machine (the default timeout is `inter`): these tests change
// server states through the Runtime API only, and a check timing out would change them too.
const haproxyBody = (web: WebServer[], disabled = false) => `backend web
    timeout check 5s
${web.map((w, i) => `    server w${i + 1} 127.0.0.1:${w.port} check inter 200ms${disabled ? ' disabled' : ''}`).join('\n')}
`;

const siteConfig = (lbPath: string, apiUrl: string, balanced: string) => `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: "{{DIR}}/backend.sock", control: "{{DIR}}/control.sock", state-file: "{{DIR}}/state.json" }
pdns: { url: "${apiUrl}", api-key-file: api-key, retries: 20 }
health:
  load-balancers: [${lbPath}]
  backend: web
  interval-ms: 60000
  safety-interval-ms: 600000
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
${balanced}`;

describe('HAProxy state-change events → backend → PowerDNS (real haproxy, pdns_server)', () => {
  let dir: string;
  const web: WebServer[] = [];
  let haproxy: Haproxy;
  let second: Haproxy | undefined;
  let site: SiteUnderTest;
  let lbRelay: Awaited<ReturnType<typeof startRelay>>;
  let apiRelay: Awaited<ReturnType<typeof startRelay>>;
  let lb: RuntimeClient;
  let lbSocket: string;
  const flushCalls: string[] = [];

  const answer = async (name = 'www.example.com.') =>
    addresses(await query(site.pdns.host, site.pdns.port, name, 'A')).join();
  const setAll = (client: RuntimeClient, state: 'maint' | 'ready') =>
    Promise.all(web.map((_, i) => client.setServerState('web', `w${i + 1}`, state)));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-events-it-'));
    for (let i = 0; i < 2; i++)
      web.push(await startWebServer({ host: '127.0.0.1', port: await freePort('127.0.0.1'), database: 'unused' }));
    haproxy = await startHaproxy({ body: haproxyBody(web) });
    lb = new RuntimeClient(haproxy.socket);
    lbSocket = join(dir, 'lb.sock');
    lbRelay = await startRelay(lbSocket, haproxy.socket);
    const apiPort = await freePort(HOST);
    // Until the site is up, the relay points nowhere useful; then at the real PowerDNS API.
    apiRelay = await startRelay({ host: HOST, port: apiPort }, { host: HOST, port: 1 }, (d) => {
      for (const m of d.toString('latin1').matchAll(/PUT \/api\/v1\/servers\/localhost\/cache\/flush\?domain=(\S+) /g))
        flushCalls.push(decodeURIComponent(m[1]!));
    });
    site = await startSite({
      host: HOST,
      config: siteConfig(
        lbSocket,
        `http://${HOST}:${apiPort}`,
        `  - name: www.example.com\n    ttl: 300\n    addresses: { a: [${A}], b: [${B}] }\n`,
      ),
    });
    apiRelay.target = { host: HOST, port: Number(new URL(site.pdns.apiUrl).port) };
    await until(
      'both servers UP in HAProxy',
      async () => (await lb.showStat({ proxy: 'web', serversOnly: true })).every((r) => r.status === 'UP'),
      performance.now(),
    );
  });

  afterAll(async () => {
    await Promise.allSettled([
      site?.stop(),
      haproxy?.stop(),
      second?.stop(),
      lbRelay?.pause(),
      apiRelay?.pause(),
      ...web.map((w) => w.kill()),
    ]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('learns a state change from the event stream (the poll is 60 s, the safety net 10 min) and PowerDNS answers the new order', async () => {
    await until('site a first', async () => (await answer()) === `${A},${B}`, performance.now());
    await setAll(lb, 'maint');
    await until('site a unusable in the table', () => !site.backend.table.isUsable('a'), performance.now());
    expect(site.backend.table.get('a')!.reason).toMatch(/0 of 2 usable \(w1 MAINT; w2 MAINT\)/);
    await until('PowerDNS answers without site a', async () => (await answer()) === B, performance.now());
    await setAll(lb, 'ready');
    await until('site a first again', async () => (await answer()) === `${A},${B}`, performance.now());
  });

  it('the event stream cut: a change made while it is cut is read when it reconnects (nothing missed)', async () => {
    // The last test ends when PowerDNS answers with a again, which one ready server already gives:
    // the other server's event may still be starting a read, which the cut would fail (HAProxy
    // unreachable: the site is rightly unusable). Cut once that read is done: both servers read
    // usable, and only the event stream open.
    await until(
      'both servers read usable, no read in flight',
      async () =>
        (await site.metric('multisite_backend_pool_usable_servers', { lb: lbSocket })) === 2 && lbRelay.open === 1,
      performance.now(),
    );
    const before = lbRelay.connections;
    await lbRelay.pause(); // the stream is cut; reconnects are refused
    await setAll(lb, 'maint'); // HAProxy logs this while nobody follows
    expect(site.backend.table.isUsable('a')).toBe(true);
    await lbRelay.resume();
    await until(
      'site a unusable after the reconnect re-read',
      () => !site.backend.table.isUsable('a'),
      performance.now(),
    );
    expect(lbRelay.connections).toBeGreaterThan(before);
    await setAll(lb, 'ready');
    await until(
      'site a usable (an event again, over the new stream)',
      () => site.backend.table.isUsable('a'),
      performance.now(),
    );
  });

  it('HAProxy restarted (a new process and socket): the stream reconnects and the new state is read', async () => {
    second = await startHaproxy({ body: haproxyBody(web, true) }); // every server starts in maintenance
    const old = haproxy;
    lbRelay.target = second.socket;
    await old.stop();
    lbRelay.cut();
    await until(
      'site a unusable: the restarted HAProxy has every server in maintenance',
      () => !site.backend.table.isUsable('a'),
      performance.now(),
    );
    await setAll(new RuntimeClient(second.socket), 'ready');
    await until("site a usable: the new HAProxy's event", () => site.backend.table.isUsable('a'), performance.now());
    lb = new RuntimeClient(second.socket);
  });

  it('PowerDNS API down during a flush: retried until it is back; lookups are answered meanwhile', async () => {
    await until('site a first', async () => (await answer()) === `${A},${B}`, performance.now());
    // Down as a hung API (accepts, never answers): a refused connection would mean PowerDNS is not
    // running and has nothing cached, which the flusher rightly does not retry.
    apiRelay.stall();
    const calls = flushCalls.length;
    await setAll(lb, 'maint');
    await until('site a unusable in the table', () => !site.backend.table.isUsable('a'), performance.now());
    // PowerDNS keeps answering while its API is down: from the packet cache (the old answer) until
    // that entry's TTL runs out, which a loaded machine can reach, then from the backend (the new one).
    for (let i = 0; i < 5; i++) expect([`${A},${B}`, B]).toContain(await answer());
    expect(addresses(await query(site.pdns.host, site.pdns.port, 'ns1.example.com.', 'A'))).toEqual(['192.0.2.53']);
    await apiRelay.resume();
    // Wait for the retried flush itself: the answer alone may already be B (cache entry expired).
    await until('the retried flush reaches PowerDNS', () => flushCalls.length > calls, performance.now(), 30_000);
    await until('PowerDNS answers without site a', async () => (await answer()) === B, performance.now(), 30_000);
    await setAll(lb, 'ready');
    await until('site a first again', async () => (await answer()) === `${A},${B}`, performance.now());
  });
});

describe('10,000 balanced names fail over together (real haproxy, pdns_server)', () => {
  const N = 10_000;
  let web: WebServer;
  let haproxy: Haproxy;
  let site: SiteUnderTest;
  let apiRelay: Awaited<ReturnType<typeof startRelay>>;
  const flushCalls: string[] = [];
  const name = (i: number) => `n${i}.lb.example.com.`;
  const answer = async (n: string) => addresses(await query(site.pdns.host, site.pdns.port, n, 'A')).join();
  const sample = Array.from({ length: 40 }, (_, i) => Math.floor((i * N) / 40));

  beforeAll(async () => {
    web = await startWebServer({ host: '127.0.0.1', port: await freePort('127.0.0.1'), database: 'unused' });
    haproxy = await startHaproxy({ body: haproxyBody([web]) });
    const apiPort = await freePort(HOST);
    apiRelay = await startRelay({ host: HOST, port: apiPort }, { host: HOST, port: 1 }, (d) => {
      for (const m of d.toString('latin1').matchAll(/PUT \/api\/v1\/servers\/localhost\/cache\/flush\?domain=(\S+) /g))
        flushCalls.push(decodeURIComponent(m[1]!));
    });
    const balanced = Array.from(
      { length: N },
      (_, i) => `  - { name: ${name(i).slice(0, -1)}, ttl: 300, addresses: { a: [${A}], b: [${B}] } }\n`,
    ).join('');
    site = await startSite({ host: HOST, config: siteConfig(haproxy.socket, `http://${HOST}:${apiPort}`, balanced) });
    apiRelay.target = { host: HOST, port: Number(new URL(site.pdns.apiUrl).port) };
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([site?.stop(), haproxy?.stop(), apiRelay?.pause(), web?.kill()]);
  });

  it('one flush call covers every changed name: cached names answer the new order', async () => {
    const lb = new RuntimeClient(haproxy.socket);
    await until('site a first', async () => (await answer(name(0))) === `${A},${B}`, performance.now());
    for (const i of sample) expect(await answer(name(i))).toBe(`${A},${B}`); // now in the packet cache
    flushCalls.length = 0;
    await lb.setServerState('web', 'w1', 'maint');
    await until(
      'every sampled name answers without site a',
      async () => (await Promise.all(sample.map((i) => answer(name(i))))).every((a) => a === B),
      performance.now(),
      30_000,
    );
    // One call for the zone's changed names (and its settle repeat), not 10,000.
    expect(new Set(flushCalls)).toEqual(new Set(['lb.example.com.']));
    expect(flushCalls.length).toBeLessThanOrEqual(3);
  }, 60_000);
});
