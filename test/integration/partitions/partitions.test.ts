import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet, startPartitionLab, type LabSite, type PartitionLab } from '../../../src/lab/partitions.js';
import { post, sharedKey } from '../../../src/partitions/index.js';
import { addresses, query } from '../support/dns.js';
import { waitForValue } from '../support/ports.js';

/**
 * Two sites on loopback, every part real (HAProxy with the generated config, web servers, the
 * agent, the backend with heartbeats and the partition manager, pdns_server): forwarding to the
 * active site, failure transfer when it dies, failback by command, DNS following the owner.
 */
describe('partitions: two sites on real HAProxy', () => {
  let lab: PartitionLab;
  let a: LabSite;
  let b: LabSite;
  beforeAll(async () => {
    lab = await startPartitionLab({ timeoutMs: 2000 });
    a = lab.site('a');
    b = lab.site('b');
  }, 60_000);
  afterAll(async () => {
    await lab?.stop();
  }, 30_000);

  // A generous client timeout: a slow answer on a loaded machine is still an answer.
  const get = (s: LabSite, host: string, headers: Record<string, string> = {}, path = '/') =>
    httpGet(s.lb.host, s.lb.port, path, host, headers, 10_000);
  /** The A records a site's backend answers PowerDNS with, in order (the lookup line pdns sends). */
  const backendOrder = (s: LabSite, qname: string) =>
    (
      JSON.parse(
        s.backend.handler.handleLine(
          JSON.stringify({
            method: 'lookup',
            parameters: {
              local: '0.0.0.0',
              qname,
              qtype: 'A',
              'real-remote': '127.0.0.1/32',
              remote: '127.0.0.1',
              'zone-id': -1,
            },
          }),
        ),
      ).result as { content: string }[]
    ).map((r) => r.content);
  const dns = async (s: LabSite, name: string) => addresses(await query(s.dns.host, s.dns.port, name, 'A'));
  /** Polls until `ok`; the value and the ms it took (logged, never asserted). */
  const until = <T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean) => waitForValue(what, fn, ok);

  it('each partition is served at its active site, from either side; other requests stay local', async () => {
    for (const s of [a, b]) {
      expect((await get(s, 'p1.example.com')).servedBy).toMatch(/^a\/w[12]$/);
      expect((await get(s, 'p2.example.com')).servedBy).toMatch(/^b\/w[12]$/);
      expect((await get(s, 'lab', { 'X-Tenant': 't1' })).servedBy).toMatch(/^a\//);
      expect((await get(s, 'lab', {}, '/p2/orders')).servedBy).toMatch(/^b\//);
      expect((await get(s, 'other.example.com')).servedBy).toMatch(new RegExp(`^${s.name}/`));
    }
    // the body comes from the server named in the header
    const r = await get(b, 'p1.example.com');
    expect(r.body.trim()).toBe(r.servedBy);
  });

  it("a forwarded request from another site's load balancer is served where it arrives; a client's forged header is dropped", async () => {
    // from b's forward-source address (what b's HAProxy connects from): served at a, never forwarded again
    const fromB = await httpGet(
      a.lb.host,
      a.lb.port,
      '/',
      'p2.example.com',
      { 'X-Multisite-Forwarded': 'b' },
      10_000,
      b.host,
    );
    expect(fromB.servedBy).toMatch(/^a\//);
    // from anywhere else the header is removed: p2 still goes to its active site
    const forged = await get(a, 'p2.example.com', { 'X-Multisite-Forwarded': 'b' });
    expect(forged.servedBy).toMatch(/^b\//);
  });

  it('DNS answers each partition name with its active site first (real pdns_server)', async () => {
    for (const s of [a, b]) {
      expect(await dns(s, 'p1.example.com')).toEqual([a.host, b.host]);
      expect(await dns(s, 'p2.example.com')).toEqual([b.host, a.host]);
    }
  });

  it("a's pool dies: p1 requests at b are served by b, p1 moves to b with epoch 2, DNS follows; failback is manual", async () => {
    const killed = performance.now();
    for (const w of a.web) await w.kill();
    const served = await until(
      'p1 at b served by b',
      () => get(b, 'p1.example.com'),
      (r) => r.status === 200 && /^b\//.test(r.servedBy ?? ''),
    );
    const fromA = await until(
      'p1 at a served by b',
      () => get(a, 'p1.example.com'),
      (r) => r.status === 200 && /^b\//.test(r.servedBy ?? ''),
    );
    const owned = await until(
      'b owns p1',
      async () => b.backend.partitions!.manager!.get('p1')!,
      (o) => o.active === 'b',
    );
    const ownedA = await until(
      'a agrees b owns p1',
      async () => a.backend.partitions!.manager!.get('p1')!,
      (o) => o.active === 'b',
    );
    expect(owned.value.epoch).toBe(2);
    expect(ownedA.value.epoch).toBe(2);
    const dnsMs = await until(
      'DNS at both sites puts b first for p1',
      async () => [await dns(a, 'p1.example.com'), await dns(b, 'p1.example.com')],
      (v) => v.every((x) => x[0] === b.host),
    );
    const total = performance.now() - killed;
    console.log(
      `failure transfer: p1 at b served by b after ${served.ms.toFixed(0)} ms; at a after ${fromA.ms.toFixed(0)} ms; ownership epoch 2 after ${owned.ms.toFixed(0)} ms; DNS after ${dnsMs.ms.toFixed(0)} ms more (${total.toFixed(0)} ms in all)`,
    );
    // p2 is unaffected
    expect((await get(a, 'p2.example.com')).servedBy).toMatch(/^b\//);

    // a comes back: p1 stays at b (manual failback) ...
    for (const w of a.web) await w.revive();
    await until(
      'a usable again at both sites',
      async () => [a, b].every((s) => s.backend.table.isUsable('a')),
      (v) => v,
    );
    // Every evaluation since (on each table change, and each reconcile, which also pulls the
    // peer's records) has left p1 where it is: wait for one more reconcile at each site.
    const reconciled = [a, b].map((s) => s.backend.partitions!.manager!.reconciles);
    await until(
      'a reconcile at each site',
      async () => [a, b].every((s, i) => s.backend.partitions!.manager!.reconciles > reconciled[i]!),
      (v) => v,
    );
    expect(b.backend.partitions!.manager!.get('p1')!.active).toBe('b');
    expect((await get(b, 'p1.example.com')).servedBy).toMatch(/^b\//);

    // ... until an operator fails it back (the route `multisite partition failback p1` calls)
    const key = sharedKey(a.loaded);
    expect(backendOrder(a, 'p1.example.com.')).toEqual([b.host, a.host]); // the answer is current (cached) before failback
    const res = await post(
      `http://${a.metrics.host}:${a.metrics.port}/partitions/failback`,
      JSON.stringify({ partition: 'p1', time: Date.now() }),
      key,
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ ok: true, changed: true, record: { active: 'a', epoch: 3 } });
    // The change is applied before the reply: a's backend already answers a first (no other state changes to help it).
    expect(backendOrder(a, 'p1.example.com.')).toEqual([a.host, b.host]);
    const back = await until(
      'p1 at b forwarded to a again',
      () => get(b, 'p1.example.com'),
      (r) => /^a\//.test(r.servedBy ?? ''),
    );
    await until(
      'b adopts epoch 3',
      async () => b.backend.partitions!.manager!.get('p1')!,
      (o) => o.active === 'a' && o.epoch === 3,
    );
    await until(
      'DNS puts a first again',
      async () => [await dns(a, 'p1.example.com'), await dns(b, 'p1.example.com')],
      (v) => v.every((x) => x[0] === a.host),
    );
    console.log(`manual failback: p1 at b forwarded to a again after ${back.ms.toFixed(0)} ms`);
  }, 60_000);

  it('an unsigned failback is refused; failback to a down site is refused', async () => {
    const res = await post(
      `http://${a.metrics.host}:${a.metrics.port}/partitions/failback`,
      JSON.stringify({ partition: 'p1', time: Date.now() }),
      undefined,
    );
    expect(res.status).toBe(403);
  });

  it("b's pool dies: p2 moves to a; b back: auto failback after the hold-down", async () => {
    for (const w of b.web) await w.kill();
    const moved = await until(
      'p2 at a served by a',
      () => get(a, 'p2.example.com'),
      (r) => r.status === 200 && /^a\//.test(r.servedBy ?? ''),
    );
    await until(
      'a owns p2',
      async () => a.backend.partitions!.manager!.get('p2')!,
      (o) => o.active === 'a' && o.epoch === 2,
    );
    for (const w of b.web) await w.revive();
    const t0 = performance.now();
    const back = await until(
      'p2 back at b (auto)',
      async () => [a.backend.partitions!.manager!.get('p2')!, b.backend.partitions!.manager!.get('p2')!],
      (v) => v.every((o) => o.active === 'b' && o.epoch === 3),
    );
    await until(
      'p2 at a forwarded to b again',
      () => get(a, 'p2.example.com'),
      (r) => /^b\//.test(r.servedBy ?? ''),
    );
    console.log(
      `p2 transfer to a after ${moved.ms.toFixed(0)} ms; auto failback ${(performance.now() - t0).toFixed(0)} ms after b returned (hold-down 2000 ms)`,
    );
    // The site that failed it back says how long b had been usable: at least the 2 s hold-down
    // (the manager's own measure; the other site adopted the record, "announced by").
    const held = back.value
      .map((o) => /automatic failback: b usable for (\d+) s/.exec(o.reason)?.[1])
      .filter((n) => n !== undefined);
    expect(held.length).toBeGreaterThan(0);
    for (const n of held) expect(Number(n)).toBeGreaterThanOrEqual(2);
  }, 60_000);
});
