import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseZone, type ZoneRecord } from '../../../src/pdns-backend/zonefile/index.js';
import { canonicalContent } from '../../../src/pdns-backend/zonefile/rdata.js';

const dir = resolve(__dirname, '../../fixtures/zones');
const load = (name: string) => {
  const file = join(dir, `${name}.zone`);
  return parseZone(readFileSync(file, 'utf8'), { origin: name, file });
};
const find = (rs: ZoneRecord[], name: string, type: string) =>
  rs.filter((r) => r.name === name && r.type === type).map((r) => r.content);

describe('fixture zones (also served by the differential test through both PowerDNS backends)', () => {
  const com = load('example.com');
  const net = load('example.net');

  it('parse completely', () => {
    expect(com.length).toBeGreaterThan(90);
    expect(net).toHaveLength(27);
    expect(new Set(com.map((r) => r.type))).toEqual(
      new Set([
        'SOA',
        'NS',
        'MX',
        'TXT',
        'SPF',
        'CAA',
        'DNSKEY',
        'CDS',
        'CDNSKEY',
        'LOC',
        'A',
        'AAAA',
        'CNAME',
        'DS',
        'DNAME',
        'SRV',
        'NAPTR',
        'URI',
        'HINFO',
        'RP',
        'SSHFP',
        'TLSA',
        'SMIMEA',
        'OPENPGPKEY',
        'CERT',
        'KX',
        'PTR',
        'AFSDB',
        'EUI48',
        'TYPE65280',
      ]),
    );
  });

  it('hold contents that are already canonical (normalising twice changes nothing)', () => {
    for (const r of [...com, ...net])
      expect(canonicalContent(r.type, r.content, '.'), `${r.name} ${r.type}`).toBe(r.content);
  });

  it('have the multi-line, split and escaped data in PowerDNS form', () => {
    expect(find(com, 'example.com.', 'SOA')).toEqual([
      'ns1.example.com. hostmaster.example.com. 2026112401 3600 900 604800 300',
    ]);
    expect(find(com, 'sub.example.com.', 'DS')).toEqual(['60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118']);
    const long = find(com, 'long.example.com.', 'TXT')[0]!;
    expect(long.split('" "').map((s) => s.replace(/"/g, '').length)).toEqual([255, 45, 13]);
    expect(
      find(com, 'longer.example.com.', 'TXT')[0]!
        .split(' ')
        .map((s) => s.length - 2),
    ).toEqual([255, 255, 90]);
    expect(find(com, 'escaped.example.com.', 'TXT')).toEqual([
      '"quote \\" backslash \\\\ semicolon ; decimal AB tab\\009end \\255 \\000"',
    ]);
    expect(find(com, 'utf8.example.com.', 'TXT')).toEqual(['"caf\\195\\169 \\226\\152\\149 na\\195\\175ve"']);
    expect(find(com, 'words.example.com.', 'TXT')).toEqual(['"unquoted words here"']);
    expect(find(com, 'rp2.example.com.', 'RP')).toEqual(['hostmaster.example.com. txt.example.com.']);
    expect(find(com, 'private.example.com.', 'TYPE65280')).toEqual(['\\# 4 0a000001', '\\# 0']);
    expect(find(com, 'zone2.example.com.', 'MX')).toEqual(['5 inner.zone2.example.com.']);
  });

  it('have the TTLs the directives and explicit values give', () => {
    const ttl = (rs: ZoneRecord[], name: string, type: string) =>
      rs.find((r) => r.name === name && r.type === type)?.ttl;
    expect([
      ttl(com, 'web.example.com.', 'A'),
      ttl(com, 'web.example.com.', 'AAAA'),
      ttl(com, 'ns2.example.com.', 'AAAA'),
      ttl(com, 'mail.example.com.', 'A'),
    ]).toEqual([172800, 60, 300, 3600]);
    expect([
      ttl(net, 'example.net.', 'SOA'),
      ttl(net, 'short.example.net.', 'A'),
      ttl(net, 'weekly.example.net.', 'TXT'),
      ttl(net, 'included.example.net.', 'TXT'),
      ttl(net, 'gen1.example.net.', 'A'),
    ]).toEqual([7200, 1800, 604800, 300, 1800]);
  });

  it('read example.net through two levels of $INCLUDE and three $GENERATE lines', () => {
    expect(find(net, 'nested.example.net.', 'TXT')).toEqual(['"two includes deep" "and a second string"']);
    expect(net.filter((r) => /^(gen|rev|00F)/.test(r.name)).map((r) => `${r.name} ${r.content}`)).toEqual([
      'gen1.example.net. 198.51.100.11',
      'gen2.example.net. 198.51.100.12',
      'gen3.example.net. 198.51.100.13',
      'gen4.example.net. 198.51.100.14',
      'gen5.example.net. 198.51.100.15',
      'rev001.example.net. gen1.example.net.',
      'rev003.example.net. gen3.example.net.',
      '00FA.example.net. host-250.example.net.',
      '00FB.example.net. host-251.example.net.',
      '00FC.example.net. host-252.example.net.',
    ]);
  });
});
