import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/pdns-backend/control.js';
import { addresses, query, rcode } from './support/dns.js';
import { startSite, type SiteUnderTest } from './support/cluster.js';
import { waitFor } from './support/ports.js';
import { EXAMPLE_ZONE_YAML } from './support/example-zone.js';

const config = `site: a
sites: [{ name: a }, { name: b }, { name: c }]
backend:
  socket: {{DIR}}/backend.sock
  control: {{DIR}}/control.sock
  state-file: {{DIR}}/state.json
  http: {{HTTP}}
pdns:
  url: {{API_URL}}
  api-key-file: api-key
${EXAMPLE_ZONE_YAML}
      - "www TXT \\"balanced names keep their other records\\""
balanced:
  - name: www.example.com
    ttl: 300
    addresses: { a: [192.0.2.1, "2001:db8::1"], b: [198.51.100.1], c: [203.0.113.1, 203.0.113.2] }
  - name: two.example.com
    ttl: 300
    addresses: { a: [192.0.2.10], b: [198.51.100.10] }
  - name: sf.example.com
    fallback: servfail
    addresses: { a: [192.0.2.20], b: [198.51.100.20] }
  - name: empty.example.com
    fallback: empty
    addresses: { a: [192.0.2.30], b: [198.51.100.30] }
`;

type State = 'up' | 'down' | 'drained';
const A: Record<string, Record<string, string[]>> = {
  'www.example.com.': { a: ['192.0.2.1'], b: ['198.51.100.1'], c: ['203.0.113.1', '203.0.113.2'] },
  'two.example.com.': { a: ['192.0.2.10'], b: ['198.51.100.10'] },
};

/** The expected answer, written independently of the backend: site a first, dead sites out, fallback all. */
function expected(name: string, states: Record<string, State>): string[] {
  const sites = Object.keys(A[name]!);
  const alive = sites.filter((s) => states[s] === 'up');
  return (alive.length > 0 ? alive : sites).flatMap((s) => A[name]![s]!);
}

function combos(sites: string[]): Record<string, State>[] {
  if (sites.length === 0) return [{}];
  const rest = combos(sites.slice(1));
  return (['up', 'down', 'drained'] as State[]).flatMap((st) => rest.map((r) => ({ [sites[0]!]: st, ...r })));
}

describe.each(['unix', 'http'] as const)('balanced answers through a real pdns_server (%s connector)', (connector) => {
  let site: SiteUnderTest;
  const ask = async (name: string, type = 'A', tcp = false) =>
    query(site.pdns.host, site.pdns.port, name, type, { tcp });

  beforeAll(async () => {
    site = await startSite({ host: connector === 'unix' ? '127.0.0.2' : '127.0.0.3', config, connector });
  });
  afterAll(() => site?.stop());

  const apply = (states: Record<string, State>) => {
    for (const [s, st] of Object.entries(states)) {
      site.backend.table.setDrained(s, st === 'drained');
      site.backend.table.setHealth(s, 'test', st !== 'down', st === 'down' ? 'killed by the test' : 'ok');
    }
  };

  it('orders every up/down/drained combination of three sites and of two, over UDP and TCP, with the packet cache on', async () => {
    for (const name of ['www.example.com.', 'two.example.com.']) {
      const sites = Object.keys(A[name]!);
      for (const states of combos(sites)) {
        await ask(name); // fills PowerDNS's packet cache with the previous answer
        apply({ a: 'up', b: 'up', c: 'up', ...states });
        const want = expected(name, { c: 'up', ...states });
        // The cache (cache-ttl 20 s, record TTL 300 s) could only change this answer by a flush.
        await waitFor(
          `${name} = ${want.join(',')} for ${JSON.stringify(states)}`,
          async () => JSON.stringify(addresses(await ask(name))) === JSON.stringify(want),
          5000,
          5,
        );
        expect(addresses(await ask(name, 'A', true))).toEqual(want);
      }
    }
    apply({ a: 'up', b: 'up', c: 'up' });
  });

  it('keeps the other records of a balanced name and answers AAAA by site', async () => {
    const any = await ask('www.example.com.', 'TXT');
    expect(any.answers?.map((a) => a.type)).toEqual(['TXT']);
    expect(addresses(await ask('www.example.com.', 'AAAA'))).toEqual(['2001:db8::1']);
  });

  it('answers the configured fallback when no site is up: SERVFAIL, or an empty NOERROR', async () => {
    expect(rcode(await ask('sf.example.com.'))).toBe('NOERROR');
    apply({ a: 'down', b: 'down', c: 'up' });
    await waitFor('SERVFAIL for sf', async () => rcode(await ask('sf.example.com.')) === 'SERVFAIL', 5000, 5);
    await waitFor(
      'empty answer for empty',
      async () => {
        const res = await ask('empty.example.com.');
        return rcode(res) === 'NOERROR' && (res.answers ?? []).length === 0;
      },
      5000,
      5,
    );
    apply({ a: 'up', b: 'up', c: 'up' });
    await waitFor(
      'sf back',
      async () => addresses(await ask('sf.example.com.')).join() === '192.0.2.20,198.51.100.20',
      5000,
      5,
    );
    // Other names in the zone were not disturbed by the failing one.
    expect(addresses(await ask('ns1.example.com.'))).toEqual(['192.0.2.53']);
  });

  it('drains through the control socket: the cached answer changes at once, and the drain is persisted', async () => {
    await ask('www.example.com.');
    const t0 = performance.now();
    const res = await controlRequest(site.control, { cmd: 'drain', site: 'a' });
    expect(res).toMatchObject({ ok: true, changed: true });
    await waitFor('drain visible', async () => addresses(await ask('www.example.com.'))[0] === '198.51.100.1', 5000, 2);
    const ms = performance.now() - t0;
    console.log(`[${connector}] drain → changed PowerDNS answer (packet cache on): ${ms.toFixed(1)} ms`);
    const { readFileSync } = await import('node:fs');
    expect(JSON.parse(readFileSync(`${site.dir}/state.json`, 'utf8'))).toEqual({ version: 1, drained: ['a'] });
    expect(await controlRequest(site.control, { cmd: 'drain', site: 'x' })).toEqual({
      ok: false,
      error: "unknown site 'x' (known: a, b, c)",
    });
    await controlRequest(site.control, { cmd: 'undrain', site: 'a' });
    await waitFor('undrain visible', async () => addresses(await ask('www.example.com.'))[0] === '192.0.2.1', 5000, 2);
  });
});
