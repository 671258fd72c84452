import { describe, expect, it } from 'vitest';
import { ZoneSyntaxError } from '../../../src/pdns-backend/zonefile/errors.js';
import { formatIPv6, parseIPv4, parseIPv6 } from '../../../src/pdns-backend/zonefile/ip.js';
import { canonicalName, isAbsolute, nameFromWire } from '../../../src/pdns-backend/zonefile/names.js';
import { parseTtl } from '../../../src/pdns-backend/zonefile/ttl.js';

const origin = 'example.com.';

describe('names', () => {
  it.each([
    ['www', 'www.example.com.'],
    ['Www.Sub', 'Www.Sub.example.com.'],
    ['host.example.org.', 'host.example.org.'],
    ['@', 'example.com.'],
    ['.', '.'],
    ['*.wild', '*.wild.example.com.'],
    ['a\\.b', 'a\\.b.example.com.'],
    ['dec\\065', 'decA.example.com.'],
    ['sp\\032ace', 'sp\\032ace.example.com.'],
    ['back\\\\slash', 'back\\\\slash.example.com.'],
    ['semi\\;colon', 'semi;colon.example.com.'],
    ['\\000\\255', '\\000\\255.example.com.'],
    ['café', 'caf\\195\\169.example.com.'],
    ['trailing\\.', 'trailing\\..example.com.'],
    ['trailing\\\\.', 'trailing\\\\.'],
  ])('%s → %s', (text, want) => {
    expect(canonicalName(text, origin)).toBe(want);
  });

  it('appends nothing under the root origin', () => {
    expect(canonicalName('a.b', '.')).toBe('a.b.');
  });

  it('tells absolute from relative, counting escaping backslashes', () => {
    expect([isAbsolute('a.'), isAbsolute('a'), isAbsolute('a\\.'), isAbsolute('a\\\\.')]).toEqual([
      true,
      false,
      false,
      true,
    ]);
  });

  it.each([
    ['a..b', "name 'a..b' has an empty label"],
    ['.a', "name '.a' has an empty label"],
    ['a\\', "name 'a\\' ends in a lone backslash"],
    ['a\\25', "'\\25' is not an escape"],
    ['a\\256', 'escape \\256 is over 255'],
    ['x'.repeat(64), 'has a label longer than 63 octets'],
    ['é'.repeat(32), 'has a label longer than 63 octets'],
    [`${'abcdefgh.'.repeat(29)}`, 'is longer than 255 octets'],
  ])('%s fails: %s', (text, message) => {
    expect(() => canonicalName(text, origin)).toThrow(ZoneSyntaxError);
    expect(() => canonicalName(text, origin)).toThrow(message);
  });

  it('counts the origin in the 255-octet limit', () => {
    const long = `${'abcdefgh.'.repeat(26)}x`; // 235 octets on its own, 248 with example.com
    expect(canonicalName(long, origin)).toHaveLength(long.length + 1 + origin.length);
    expect(() => canonicalName(`abcdefgh.${long}`, origin)).toThrow(
      /longer than 255 octets \(with origin example\.com\.\)/,
    );
  });

  it('reads uncompressed wire names', () => {
    const bytes = Uint8Array.from([3, 0x77, 0x77, 0x77, 1, 0x2e, 0, 9]);
    expect(nameFromWire(bytes, 0)).toEqual(['www.\\..', 7]);
    expect(() => nameFromWire(Uint8Array.from([0xc0, 0x0c]), 0)).toThrow(/compressed/);
    expect(() => nameFromWire(Uint8Array.from([3, 0x61]), 0)).toThrow(/ends inside a name/);
  });
});

describe('TTLs', () => {
  it.each([
    ['0', 0],
    ['3600', 3600],
    ['30s', 30],
    ['15m', 900],
    ['1h', 3600],
    ['2D', 172800],
    ['1w', 604800],
    ['1y', 31536000],
    ['1h30m', 5400],
    ['1w2d3h4m5s', 788645],
  ])('%s = %d seconds', (text, seconds) => {
    expect(parseTtl(text)).toBe(seconds);
  });

  it.each(['', '1x', 'h', '1h30', '-1', '1.5h', '3600 '])('rejects %j', (text) => {
    expect(() => parseTtl(text)).toThrow(/is not a TTL/);
  });

  it('caps record TTLs at 2^31-1 (the remote backend reads a signed int) and other times at 2^32-1', () => {
    expect(parseTtl('2147483647')).toBe(2147483647);
    expect(() => parseTtl('2147483648')).toThrow(/more than the largest allowed \(2147483647\)/);
    expect(parseTtl('4294967295', 0xffffffff)).toBe(4294967295);
    expect(() => parseTtl('9999999999999999999999')).toThrow(/more than the largest/);
  });
});

describe('IP addresses', () => {
  it('reads IPv4 as PowerDNS does, leading zeros included', () => {
    expect(parseIPv4('192.0.2.1')).toEqual([192, 0, 2, 1]);
    expect(parseIPv4('010.000.002.001')).toEqual([10, 0, 2, 1]);
    for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '1..2.3', 'a.b.c.d', '1.2.3.4 ', ''])
      expect(parseIPv4(bad)).toBeUndefined();
  });

  it.each([
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::FFFF:c000:0201', '::ffff:192.0.2.1'],
    ['::192.0.2.1', '::192.0.2.1'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ])('IPv6 %s prints as inet_ntop does: %s', (text, want) => {
    expect(formatIPv6(parseIPv6(text)!)).toBe(want);
  });

  it.each([
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    ':::',
    '1:2:3:4:5:6:7:8::',
    '12345::',
    'g::',
    '::1.2.3',
    '::01.2.3.4',
    '1.2.3.4::',
    'fe80::1%eth0',
    '',
  ])('rejects IPv6 %j', (text) => {
    expect(parseIPv6(text)).toBeUndefined();
  });
});
