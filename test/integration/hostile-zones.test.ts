import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnixClient } from '../fuzz/support/remote-backend.js';
import { addresses, query, rcode } from './support/dns.js';
import { startSite, type SiteUnderTest } from './support/cluster.js';

/**
 * Issue 15 through a real pdns_server: a zone file with records outside its zone (PowerDNS's own
 * regression zone nztest.com) does not take the other zones down, and a relative-name lookup
 * sent over the real unix socket does not hang the backend.
 */
const fixtures = resolve(__dirname, '../fixtures/zones');
const config = `site: a
sites: [{ name: a }, { name: b }]
backend:
  socket: {{DIR}}/backend.sock
  control: {{DIR}}/control.sock
  state-file: {{DIR}}/state.json
zones:
  - name: example.org
    records:
      - "@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60"
      - "@ NS ns1"
      - "ns1 A 192.0.2.53"
  - name: nztest.com
    file: ${fixtures}/nztest.com.zone
balanced:
  - name: www.example.org
    addresses: { a: [192.0.2.1], b: [198.51.100.1] }
`;

let site: SiteUnderTest;
beforeAll(async () => {
  site = await startSite({ host: '127.0.0.6', config, connector: 'unix' });
});
afterAll(() => site?.stop());

describe('hostile zones and requests through a real pdns_server', () => {
  it('serves every zone when one has records outside it, without those records', async () => {
    expect(addresses(await query(site.pdns.host, site.pdns.port, 'www.example.org.', 'A'))).toEqual([
      '192.0.2.1',
      '198.51.100.1',
    ]);
    expect(addresses(await query(site.pdns.host, site.pdns.port, 'nztest.com.', 'A'))).toEqual(['127.0.0.1']);
    // Not ours: PowerDNS refuses names outside every zone it serves.
    expect(rcode(await query(site.pdns.host, site.pdns.port, 'testnonzone.com.', 'A'))).toBe('REFUSED');
  });

  it('answers a relative-name lookup on the real socket, and PowerDNS still answers after it', async () => {
    const c = await UnixClient.open(site.socket);
    await c.write(
      '{"method":"lookup","parameters":{"local":"0.0.0.0","qname":"foo","qtype":"A","real-remote":"0.0.0.0/0","remote":"0.0.0.0","zone-id":-1}}\n',
    );
    expect(await c.next('the relative-name lookup')).toBe('{"result":false}');
    c.close();
    expect(addresses(await query(site.pdns.host, site.pdns.port, 'ns1.example.org.', 'A'))).toEqual(['192.0.2.53']);
  });
});
