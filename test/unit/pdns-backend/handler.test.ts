import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exampleHandler } from './fixtures.js';

const call = (h: ReturnType<typeof exampleHandler>['handler'], method: string, parameters: object) =>
  JSON.parse(h.handleLine(JSON.stringify({ method, parameters }))) as { result: unknown; log?: string[] };

const lookup = (h: ReturnType<typeof exampleHandler>['handler'], qname: string, qtype = 'ANY', zoneId = 1) =>
  call(h, 'lookup', { qtype, qname, remote: '127.0.0.1', local: '127.0.0.1', 'real-remote': '127.0.0.1/32', 'zone-id': zoneId });

describe('remote backend handler', () => {
  it('initializes and lists the zones PowerDNS needs for its zone cache', () => {
    const { handler } = exampleHandler();
    expect(call(handler, 'initialize', { path: '/x', timeout: '2000' })).toEqual({ result: true });
    expect(call(handler, 'getAllDomains', { include_disabled: false })).toEqual({
      result: [{ id: 1, zone: 'example.com.', kind: 'native', serial: 2024010101, notified_serial: 2024010101, last_check: 0, masters: [] }],
    });
    expect(call(handler, 'getDomainInfo', { name: 'EXAMPLE.com' }).result).toMatchObject({ id: 1, zone: 'example.com.' });
    expect(call(handler, 'getDomainInfo', { name: 'nope.org.' })).toEqual({ result: false });
    expect(call(handler, 'getAllDomainMetadata', { name: 'example.com.' })).toEqual({ result: {} });
    expect(call(handler, 'getDomainMetadata', { name: 'example.com.', kind: 'PRESIGNED' })).toEqual({ result: [] });
  });

  it('answers a balanced name in site order, local first, with scopeMask 0', () => {
    const { handler } = exampleHandler('b');
    expect(lookup(handler, 'www.example.com.', 'A').result).toEqual([
      { qtype: 'A', qname: 'www.example.com.', content: '198.51.100.1', ttl: 20, auth: 1, domain_id: 1, scopeMask: 0 },
      { qtype: 'A', qname: 'www.example.com.', content: '192.0.2.1', ttl: 20, auth: 1, domain_id: 1, scopeMask: 0 },
    ]);
    const any = lookup(handler, 'WWW.Example.COM.').result as { qtype: string; content: string }[];
    expect(any.map((r) => `${r.qtype} ${r.content}`)).toEqual(['A 198.51.100.1', 'A 192.0.2.1', 'AAAA 2001:db8::1', 'TXT "hello"']);
  });

  it('changes the answer with the site table, and returns to it', () => {
    const { handler, table } = exampleHandler('a');
    const a = () => (lookup(handler, 'www.example.com.', 'A').result as { content: string }[]).map((r) => r.content);
    expect(a()).toEqual(['192.0.2.1', '198.51.100.1']);
    table.setDrained('a', true);
    expect(a()).toEqual(['198.51.100.1']);
    table.setHealth('b', 'pool', false, 'dead');
    expect(a()).toEqual(['192.0.2.1', '198.51.100.1']); // fallback all, local first
    table.setDrained('a', false);
    expect(a()).toEqual(['192.0.2.1']);
  });

  it('marks the cut NS and glue unauthoritative, the DS at the cut authoritative', () => {
    const { handler } = exampleHandler();
    const sub = lookup(handler, 'sub.example.com.').result as { qtype: string; auth: number }[];
    expect(sub.map((r) => [r.qtype, r.auth])).toEqual([['DS', 1], ['NS', 0]]); // last-first, as the bind backend
    expect((lookup(handler, 'ns.sub.example.com.').result as { auth: number }[])[0]!.auth).toBe(0);
    expect((lookup(handler, 'ns1.example.com.').result as { auth: number }[])[0]!.auth).toBe(1);
  });

  it('answers an empty non-terminal with an ENT record, unknown names with false', () => {
    const { handler } = exampleHandler();
    expect(lookup(handler, 'ent.example.com.').result).toEqual([{ qtype: 'ENT', qname: 'ent.example.com.', content: '', ttl: 0, auth: 1, domain_id: 1 }]);
    expect(lookup(handler, 'nothing.example.com.')).toEqual({ result: false });
    expect(lookup(handler, 'www.example.com.', 'MX')).toEqual({ result: false });
    expect(lookup(handler, 'example.com.', 'SOA', -1).result).toHaveLength(1);
  });

  it('lists the whole zone for AXFR, balanced addresses included', () => {
    const { handler } = exampleHandler();
    const list = call(handler, 'list', { zonename: 'example.com.', domain_id: 1, include_disabled: false }).result as { qtype: string; qname: string; content: string }[];
    expect(list).toHaveLength(11);
    expect(list.filter((r) => r.qname === 'www.example.com.' && r.qtype !== 'TXT').map((r) => r.content)).toEqual(['192.0.2.1', '198.51.100.1', '2001:db8::1']);
    expect(list.some((r) => r.qtype === 'ENT')).toBe(false);
  });

  it('answers bad requests with result false and the reason, never throwing', () => {
    const { handler } = exampleHandler();
    expect(JSON.parse(handler.handleLine('{"method":'))).toMatchObject({ result: false, log: [expect.stringMatching(/^malformed JSON/)] });
    expect(JSON.parse(handler.handleLine('[1,2]'))).toMatchObject({ result: false, log: [expect.stringMatching(/JSON object/)] });
    expect(JSON.parse(handler.handleLine('{"method":7}'))).toMatchObject({ result: false, log: ['"method" must be a string'] });
    expect(call(handler, 'lookup', { qname: 5 })).toMatchObject({ result: false, log: [expect.stringMatching(/qname/)] });
    expect(call(handler, 'getBeforeAndAfterNamesAbsolute', {})).toEqual({ result: false });
    expect(JSON.parse(handler.handleLine('null'))).toMatchObject({ result: false });
  });

  it('answers PowerDNS-shaped lookup lines on the fast path exactly as through JSON.parse', () => {
    const { handler, table } = exampleHandler();
    table.setHealth('b', 'test', false, 'x');
    const names = ['www.example.com.', 'WWW.example.COM.', 'ent.example.com.', 'sub.example.com.', 'a"b.example.com.', 'a\\.b.example.com.', 'nx.example.org.', ''];
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.constantFrom('ANY', 'A', 'SOA', 'NS', 'ds'), fc.integer({ min: -1, max: 3 }), (qname, qtype, zoneId) => {
        const line = JSON.stringify({ method: 'lookup', parameters: { local: '127.0.0.1', qname, qtype, 'real-remote': '192.0.2.0/24', remote: '192.0.2.1', 'zone-id': zoneId } });
        expect(handler.handleLine(line)).toBe(handler.handle(JSON.parse(line)));
      }),
    );
  });
});
