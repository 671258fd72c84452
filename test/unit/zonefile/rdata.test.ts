import { describe, expect, it } from 'vitest';
import { ZoneSyntaxError } from '../../../src/pdns-backend/zonefile/errors.js';
import { canonicalContent } from '../../../src/pdns-backend/zonefile/rdata.js';

const origin = 'example.com.';
const content = (type: string, data: string) => canonicalContent(type, data, origin);
const long = (n: number, c = 'a') => c.repeat(n);

describe('record data: names are made absolute (PowerDNS reads the content without an origin)', () => {
  it.each([
    ['NS', 'ns1', 'ns1.example.com.'],
    ['NS', 'ns.example.org.', 'ns.example.org.'],
    ['CNAME', 'Web', 'Web.example.com.'],
    ['DNAME', 'target.example.net.', 'target.example.net.'],
    ['PTR', '@', 'example.com.'],
    ['MX', '10 mail', '10 mail.example.com.'],
    ['MX', '010 @', '10 example.com.'],
    ['MX', '0 .', '0 .'],
    ['KX', '10 kx', '10 kx.example.com.'],
    ['AFSDB', '1 afs', '1 afs.example.com.'],
    ['SRV', '10 60 5060 sip', '10 60 5060 sip.example.com.'],
    ['SRV', '0 0 0 .', '0 0 0 .'],
    ['RP', 'hostmaster txt', 'hostmaster.example.com. txt.example.com.'],
    ['RP', '. .', '. .'],
    ['NAPTR', '100 10 "S" "SIP+D2U" "" _sip._udp', '100 10 "S" "SIP+D2U" "" _sip._udp.example.com.'],
    ['MINFO', 'admin errors', 'admin.example.com. errors.example.com.'],
    ['MB', 'host', 'host.example.com.'],
    ['LP', '10 l64', '10 l64.example.com.'],
    ['ALIAS', 'target', 'target.example.com.'],
    ['CNAME', 'a\\.b', 'a\\.b.example.com.'],
    ['CNAME', 'x\\065', 'xA.example.com.'],
  ])('%s %s → %s', (type, data, want) => {
    expect(content(type, data)).toBe(want);
  });

  it('takes data that is exactly @ as the origin for any type, as ZoneParserTNG does', () => {
    expect(content('TXT', '@')).toBe('"example.com."');
  });
});

describe('record data: SOA', () => {
  it('makes both names absolute and converts timer units to seconds', () => {
    expect(content('SOA', 'ns1 hostmaster 2024010101 1h 15m 1w 300')).toBe(
      'ns1.example.com. hostmaster.example.com. 2024010101 3600 900 604800 300',
    );
    expect(content('SOA', 'ns1.example.org. h.example.org. 0 1d2h 2H 4W 1D')).toBe(
      'ns1.example.org. h.example.org. 0 93600 7200 2419200 86400',
    );
  });

  it.each([
    ['ns1 host 1 2 3 4', 'SOA: expected a negative-caching TTL, but the record data ends here'],
    ['ns1 host 1 2 3 4 5 6', "SOA: unexpected '6' after the record data"],
    ['ns1 host 1h 2 3 4 5', "SOA: expected a serial (0-4294967295), got '1h'"],
    ['ns1 host 4294967296 2 3 4 5', 'SOA: expected a serial (0-4294967295)'],
    ['ns1 host 1 2x 3 4 5', "SOA: '2x' is not a TTL"],
  ])('%s fails: %s', (data, message) => {
    expect(() => content('SOA', data)).toThrow(message);
  });
});

describe('record data: addresses', () => {
  it.each([
    ['A', '192.0.2.1', '192.0.2.1'],
    ['A', '010.0.2.001', '10.0.2.1'],
    ['AAAA', '2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['AAAA', '::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['L32', '10 192.0.2.1', '10 192.0.2.1'],
    ['EUI48', '00-00-5E-00-53-2A', '00-00-5e-00-53-2a'],
    ['EUI64', '00-00-5e-ef-10-00-00-2a', '00-00-5e-ef-10-00-00-2a'],
  ])('%s %s → %s', (type, data, want) => {
    expect(content(type, data)).toBe(want);
  });

  it.each([
    ['A', '300.1.2.3', "A: '300.1.2.3' is not an IPv4 address"],
    ['A', '192.0.2.1 192.0.2.2', "A: unexpected '192.0.2.2' after the record data"],
    ['AAAA', '192.0.2.1', "AAAA: '192.0.2.1' is not an IPv6 address"],
    ['AAAA', '1::2::3', "AAAA: '1::2::3' is not an IPv6 address"],
    ['EUI48', '00-00-5e-00-53', "EUI48: expected 6 hex pairs joined by '-', got '00-00-5e-00-53'"],
  ])('%s %s fails: %s', (type, data, message) => {
    expect(() => content(type, data)).toThrow(message);
  });
});

describe('record data: character-strings (TXT, SPF, HINFO, NAPTR, CAA, URI)', () => {
  it.each([
    ['"v=spf1 -all"', '"v=spf1 -all"'],
    ['"one"   "two"', '"one" "two"'],
    ['"a""b"', '"a" "b"'],
    ['""', '""'],
    ['"a;b" "c(d)"', '"a;b" "c(d)"'],
    ['"q\\"uote" "back\\\\slash"', '"q\\"uote" "back\\\\slash"'],
    ['"\\065\\066\\067" "\\a\\b"', '"ABC" "ab"'],
    ['"tab\tand\\009"', '"tab\\009and\\009"'],
    ['"\\000\\127\\128\\255"', '"\\000\\127\\128\\255"'],
    ['"café"', '"caf\\195\\169"'],
    ['"a" b', '"a" "b"'],
  ])('TXT %s → %s', (data, want) => {
    expect(content('TXT', data)).toBe(want);
  });

  it('quotes unquoted TXT data as one string, as PowerDNS does (DNSBackend::get)', () => {
    expect(content('TXT', 'unquoted words here')).toBe('"unquoted words here"');
    expect(content('TXT', 'v=spf1 a\\"b')).toBe('"v=spf1 a\\"b"');
    expect(content('TXT', 'word')).toBe('"word"');
  });

  it('splits strings longer than 255 octets into 255-octet strings, as PowerDNS writes them on the wire', () => {
    expect(content('TXT', `"${long(300)}" "x"`)).toBe(`"${long(255)}" "${long(45)}" "x"`);
    expect(content('TXT', `"${long(510)}"`)).toBe(`"${long(255)}" "${long(255)}"`);
    expect(content('SPF', `"${long(256)}"`)).toBe(`"${long(255)}" "a"`);
    // octets, not characters: 128 two-octet characters are 256 octets
    expect(content('TXT', `"${long(128, 'é')}"`)).toBe(`"${'\\195\\169'.repeat(127)}\\195" "\\169"`);
    // an escape is one octet
    expect(content('TXT', `"${'\\065'.repeat(256)}"`)).toBe(`"${long(255, 'A')}" "A"`);
  });

  it.each([
    ['TXT', '"open', 'TXT: unterminated quoted string'],
    ['TXT', '"a" "b', 'TXT: unterminated quoted string'],
    ['TXT', '"ends in \\"', 'TXT: unterminated quoted string'],
    ['TXT', '"\\12x"', "TXT: '\\12x' is not an escape (\\DDD needs three digits)"],
    ['TXT', '"\\256"', 'TXT: escape \\256 is over 255'],
    ['TXT', '"a" b c', "TXT: expected a character-string in double quotes, got 'b'"],
    ['SPF', 'v=spf1 -all', "SPF: expected a character-string in double quotes, got 'v=spf1'"],
    ['HINFO', 'PC Linux', "HINFO: expected a CPU in double quotes, got 'PC'"],
    ['HINFO', '"PC"', 'HINFO: expected an OS, but the record data ends here'],
    ['HINFO', `"${long(256)}" "os"`, 'HINFO: a CPU is 256 octets; a character-string holds at most 255'],
  ])('%s %s fails: %s', (type, data, message) => {
    expect(() => content(type, data)).toThrow(message);
  });

  it('reads HINFO and NAPTR strings, an unquoted word only as the last field', () => {
    expect(content('HINFO', '"PC-Intel" "Debian GNU/Linux"')).toBe('"PC-Intel" "Debian GNU/Linux"');
    expect(content('HINFO', '"PC" Linux')).toBe('"PC" "Linux"');
    expect(content('NAPTR', '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@example.com!" .')).toBe(
      '100 10 "u" "E2U+sip" "!^(.*)$!sip:\\\\1@example.com!" .',
    );
  });

  it('joins CAA values and URI targets into one string (they have no length octet on the wire)', () => {
    expect(content('CAA', '0 issue "letsencrypt.org"')).toBe('0 issue "letsencrypt.org"');
    expect(content('CAA', '128 iodef "mailto:a@example.com"')).toBe('128 iodef "mailto:a@example.com"');
    expect(content('CAA', '0 issue "ca" ".example"')).toBe('0 issue "ca.example"');
    expect(content('CAA', '0 issue ca')).toBe('0 issue "ca"');
    expect(content('CAA', `0 issue "${long(300)}"`)).toBe(`0 issue "${long(300)}"`);
    expect(content('URI', '10 1 "https://example.com/" "path"')).toBe('10 1 "https://example.com/path"');
  });

  it.each([
    ['CAA', '256 issue "x"', "CAA: expected flags (0-255), got '256'"],
    ['CAA', '0 is-sue "x"', "CAA: expected a tag (letters and digits), got 'is-sue'"],
    ['CAA', '0 issue', 'CAA: expected a value, but the record data ends here'],
    ['CAA', '0 issue letsencrypt.org', "CAA: expected a value in double quotes, got 'letsencrypt.org'"],
    ['URI', '10 1', 'URI: expected a target, but the record data ends here'],
    ['NAPTR', '100 10 u "s" "r" .', "NAPTR: expected flags in double quotes, got 'u'"],
  ])('%s %s fails: %s', (type, data, message) => {
    expect(() => content(type, data)).toThrow(message);
  });
});

describe('record data: hex and base64 blobs (joined across spaces and lines, as PowerDNS reads them)', () => {
  it.each([
    ['DS', '60485 5 1 2BB183AF5F22588179A5 3B0A98631FAD1A292118', '60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118'],
    ['CDS', '1 8 2 AB\tCD  EF', '1 8 2 abcdef'],
    ['DS', '1 8 2 -', '1 8 2 -'],
    ['SSHFP', '4 2 2e8b44b5ee76d65b 3a4a7a8e4cd6d3c0', '4 2 2e8b44b5ee76d65b3a4a7a8e4cd6d3c0'],
    ['TLSA', '3 1 1 0C72AC70 B745AC19', '3 1 1 0c72ac70b745ac19'],
    ['SMIMEA', '3 0 1 ABCD', '3 0 1 abcd'],
    ['ZONEMD', '2024 1 1 ABCD EF01', '2024 1 1 abcdef01'],
    ['DNSKEY', '257 3 8 AwEAAa  dT cw==', '257 3 8 AwEAAadTcw=='],
    ['CDNSKEY', '256 3 13 AQID', '256 3 13 AQID'],
    ['KEY', '256 3 5 AQID', '256 3 5 AQID'],
    ['OPENPGPKEY', 'mQIN BFMH', 'mQINBFMH'],
    ['CERT', '1 12345 8 MIIB CgKC', '1 12345 8 MIIBCgKC'],
    ['DHCID', 'AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=', 'AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA='],
  ])('%s %s → %s', (type, data, want) => {
    expect(content(type, data)).toBe(want);
  });

  it.each([
    ['DS', '1 8 2 ABCDEG', "DS: a digest must be hex digits, found 'G'"],
    ['DS', '1 8 2 ABC', 'DS: a digest has an odd number of hex digits (3)'],
    ['DS', '1 8 2', 'DS: expected a digest, but the record data ends here'],
    ['DS', '70000 8 2 AB', "DS: expected a key tag (0-65535), got '70000'"],
    ['TLSA', '3 1 1 0x12', "TLSA: certificate association data must be hex digits, found 'x'"],
    ['DNSKEY', '257 3 8 AwE', 'DNSKEY: a public key is not valid base64'],
    ['DNSKEY', '257 3 8 Aw!A', 'DNSKEY: a public key is not valid base64'],
    ['CERT', '0 1 8 AQID', 'CERT: certificate type 0 is reserved'],
    ['CERT', 'PKIX 1 8 AQID', "CERT: expected a certificate type (0-65535), got 'PKIX'"],
  ])('%s %s fails: %s', (type, data, message) => {
    expect(() => content(type, data)).toThrow(message);
  });
});

describe('record data: LOC (encoded and rounded as PowerDNS does, written back in full)', () => {
  it.each([
    [
      '52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000.00m 10.00m',
      '52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000.00m 10.00m',
    ],
    ['52 22 23 N 4 53 32 E -2m', '52 22 23.000 N 4 53 32.000 E -2.00m 1.00m 10000.00m 10.00m'],
    ['33 52 S 151 12 30.5 W 58m', '33 52 0.000 S 151 12 30.500 W 58.00m 1.00m 10000.00m 10.00m'],
    ['1 n 2 e 0', '1 0 0.000 N 2 0 0.000 E 0.00m 1.00m 10000.00m 10.00m'],
    ['0 0 0.001 N 0 0 0.999 W 10.5m 15m 1.5m 0.01m', '0 0 0.001 N 0 0 0.999 W 10.50m 10.00m 1.00m 0.01m'],
    [
      '90 0 0 S 180 0 0 W -100000m 40000000m 42949672.95m 9m',
      '90 0 0.000 S 180 0 0.000 W -100000.00m 40000000.00m 40000000.00m 9.00m',
    ],
  ])('LOC %s → %s', (data, want) => {
    expect(content('LOC', data)).toBe(want);
  });

  it.each([
    ['52 22 23 X 4 53 32 E 0m', 'LOC: expected degrees [minutes [seconds]] then N or S'],
    ['52 60 0 N 4 0 0 E 0m', "LOC: '52 60 0' is not degrees, minutes (0-59) and seconds (0-59.999)"],
    ['91 N 4 E 0m', "LOC: '91' is more than 90 degrees"],
    ['52 N 181 E 0m', "LOC: '181' is more than 180 degrees"],
    ['52 N 4 E', 'LOC: expected an altitude in metres after the longitude'],
    ['52 N 4 E 1.234m', "LOC: expected an altitude in metres (up to two decimals), got '1.234m'"],
    ['52 N 4 E -100000.01m', "LOC: altitude '-100000.01m' is outside -100000m to 42849672.95m"],
    ['52 N 4 E 0m 1m 1m 1m 1m', "LOC: unexpected '1m' after size, horizontal and vertical precision"],
    ['52 N 4 E 0m 42949673m', "LOC: '42949673m' is more than 42949672.95m"],
  ])('LOC %s fails: %s', (data, message) => {
    expect(() => content('LOC', data)).toThrow(message);
  });
});

describe('record data: RFC 3597 generic form', () => {
  it('keeps unknown types generic, hex joined into one word as PowerDNS requires', () => {
    expect(content('TYPE65280', '\\# 4 0A000001')).toBe('\\# 4 0a000001');
    expect(content('TYPE65280', '\\# 4 0A 00 00 01')).toBe('\\# 4 0a000001');
    expect(content('TYPE65280', '\\# 0')).toBe('\\# 0');
    expect(content('A6', '\\# 1 00')).toBe('\\# 1 00');
  });

  it.each([
    ['A', '\\# 4 C0000201', '192.0.2.1'],
    ['AAAA', '\\# 16 20010db8000000000000000000000001', '2001:db8::1'],
    ['MX', '\\# 6 000a 026d7800', '10 mx.'],
    ['TXT', '\\# 9 0568656c6c6f 02ff22', '"hello" "\\255\\""'],
    ['CAA', '\\# 9 0005697373756563 61', '0 issue "ca"'],
    ['DS', '\\# 7 0001 08 02 abcdef', '1 8 2 abcdef'],
    ['DS', '\\# 4 0001 08 02', '1 8 2 -'],
    ['DNSKEY', '\\# 7 0101 03 08 010203', '257 3 8 AQID'],
    ['SOA', '\\# 22 00 00 00000001 00000002 00000003 00000004 00000005', '. . 1 2 3 4 5'],
    ['LOC', '\\# 16 00121613 8b3cf018 810cbce0 009895b8', '52 22 23.000 N 4 53 32.000 E -2.00m 1.00m 10000.00m 10.00m'],
    ['EUI48', '\\# 6 00005e00532a', '00-00-5e-00-53-2a'],
  ])('%s %s → %s (PowerDNS reads \\# only for types it has no parser for)', (type, data, want) => {
    expect(content(type, data)).toBe(want);
  });

  it.each([
    ['TYPE65280', '\\# 4 0A0000', 'TYPE65280: generic data says 4 octets but has 3'],
    ['TYPE65280', '\\# 2 0A0', 'TYPE65280: generic data has an odd number of hex digits'],
    ['TYPE65280', '\\# x 0A', "TYPE65280: generic data must be '\\# LENGTH HEX...'"],
    [
      'TYPE65280',
      '0A000001',
      "TYPE65280: PowerDNS has no parser for this type; write its data in the generic form '\\# LENGTH HEX'",
    ],
    ['A', '\\# 3 C00002', 'A: generic data: it ends before the address'],
    ['A', '\\# 5 C000020100', 'A: generic data: 1 octets left over after the record data'],
    ['MX', '\\# 4 000a c00c', 'MX: generic data: a name in the data is compressed'],
    ['TXT', '\\# 2 0561', 'TXT: generic data: it ends before a character-string'],
    ['DNSKEY', '\\# 4 01010308', 'DNSKEY: generic data: a public key is empty'],
    ['SVCB', '\\# 2 0000', 'SVCB: PowerDNS cannot read this type in generic form'],
  ])('%s %s fails: %s', (type, data, message) => {
    expect(() => content(type, data)).toThrow(message);
  });
});

describe('record data: other types', () => {
  it('passes intricate types PowerDNS parses itself through as written', () => {
    expect(content('SVCB', '1 . alpn=h2,h3 port=443')).toBe('1 . alpn=h2,h3 port=443');
    expect(content('IPSECKEY', '10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==')).toBe(
      '10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==',
    );
  });

  it('reports errors as ZoneSyntaxError with the offset of the bad field', () => {
    try {
      content('MX', '10  mail extra');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ZoneSyntaxError);
      expect((e as ZoneSyntaxError).offset).toBe(9);
    }
  });
});
