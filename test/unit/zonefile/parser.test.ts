import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseRecordLines,
  parseZone,
  ZoneFileError,
  type ZoneRecord,
} from '../../../src/pdns-backend/zonefile/index.js';

const zone = (text: string, opts: { defaultTtl?: number; file?: string; origin?: string } = {}) =>
  parseZone(text, { origin: 'example.com', ...opts });
const show = (rs: ZoneRecord[]) => rs.map((r) => `${r.name} ${r.ttl} ${r.type} ${r.content}`);
const error = (text: string, file = 'z.zone'): ZoneFileError => {
  try {
    zone(text, { file });
  } catch (e) {
    expect(e).toBeInstanceOf(ZoneFileError);
    return e as ZoneFileError;
  }
  throw new Error('expected a ZoneFileError');
};

describe('zone parser: owners and $ORIGIN', () => {
  it('makes owners absolute, keeps their case, resolves @', () => {
    const rs = zone('@ A 192.0.2.1\nWww A 192.0.2.2\nhost.example.org. A 192.0.2.3\n*.Wild A 192.0.2.4\n');
    expect(rs.map((r) => r.name)).toEqual([
      'example.com.',
      'Www.example.com.',
      'host.example.org.',
      '*.Wild.example.com.',
    ]);
  });

  it('accepts the origin with or without the final dot, and the root', () => {
    expect(parseZone('@ A 192.0.2.1', { origin: 'example.com.' })[0]!.name).toBe('example.com.');
    expect(parseZone('a A 192.0.2.1', { origin: '.' })[0]!.name).toBe('a.');
    expect(() => parseZone('a A 192.0.2.1', { origin: 'bad..origin', file: 'o.zone' })).toThrow(
      /^o\.zone:1:\d+: origin: name 'bad\.\.origin\.' has an empty label/,
    );
  });

  it('applies $ORIGIN, absolute or relative to the current origin', () => {
    const rs = zone(
      '$ORIGIN sub\nx A 192.0.2.1\n@ A 192.0.2.2\n$ORIGIN other.org.\ny A 192.0.2.3\n$origin example.com.\nz A 192.0.2.4\n',
    );
    expect(rs.map((r) => r.name)).toEqual(['x.sub.example.com.', 'sub.example.com.', 'y.other.org.', 'z.example.com.']);
  });

  it('uses $ORIGIN for names in the data too', () => {
    expect(zone('$ORIGIN sub.example.com.\n@ MX 10 mail\n')[0]!.content).toBe('10 mail.sub.example.com.');
  });

  it('repeats the previous owner for lines starting with a blank, across comments, blank lines and directives', () => {
    const rs = zone('mail A 192.0.2.1\n  AAAA 2001:db8::1\n\n; comment\n$TTL 60\n\tMX 10 mx\n');
    expect(rs.map((r) => `${r.name} ${r.type}`)).toEqual([
      'mail.example.com. A',
      'mail.example.com. AAAA',
      'mail.example.com. MX',
    ]);
  });

  it('prints escaped owners as PowerDNS does', () => {
    expect(zone('a\\.b A 192.0.2.1\ndec\\065 A 192.0.2.2\nsp\\032ace A 192.0.2.3\n').map((r) => r.name)).toEqual([
      'a\\.b.example.com.',
      'decA.example.com.',
      'sp\\032ace.example.com.',
    ]);
  });
});

describe('zone parser: TTL and class', () => {
  it('uses $TTL as the default, explicit TTLs win', () => {
    const rs = zone(
      '$TTL 1h\na 300 A 192.0.2.1\nb A 192.0.2.2\n$TTL 2d\nc A 192.0.2.3\nd 1w A 192.0.2.4\ne 1h30m A 192.0.2.5\n',
    );
    expect(rs.map((r) => r.ttl)).toEqual([300, 3600, 172800, 604800, 5400]);
  });

  it('before any $TTL, a record without TTL takes the last explicit TTL, else the default (ZoneParserTNG; the SOA minimum is not used)', () => {
    expect(
      zone('@ SOA ns host 1 2 3 4 5\na A 192.0.2.1\nb 300 A 192.0.2.2\nc A 192.0.2.3\n').map((r) => r.ttl),
    ).toEqual([3600, 3600, 300, 300]);
    expect(zone('a A 192.0.2.1\n', { defaultTtl: 42 })[0]!.ttl).toBe(42);
    expect(zone('a A 192.0.2.1\n')[0]!.ttl).toBe(3600);
  });

  it('after a $TTL, explicit TTLs no longer change the default', () => {
    expect(zone('$TTL 100\na 300 A 192.0.2.1\nb A 192.0.2.2\n').map((r) => r.ttl)).toEqual([300, 100]);
  });

  it('takes TTL and class in either order, class optional and in any case', () => {
    const rs = zone('a IN 60 A 192.0.2.1\nb 60 IN A 192.0.2.2\nc 60 A 192.0.2.3\nd in A 192.0.2.4\ne A 192.0.2.5\n');
    expect(rs.map((r) => r.ttl)).toEqual([60, 60, 60, 60, 60]);
  });

  it('names types as PowerDNS does: mnemonics in any case, TYPEnnn for the rest', () => {
    const rs = zone('a mx 10 mx\nb TYPE1 192.0.2.1\nc type16 "t"\nd TYPE38 \\# 1 00\ne TYPE65280 \\# 1 ff\n');
    expect(rs.map((r) => `${r.type} ${r.content}`)).toEqual([
      'MX 10 mx.example.com.',
      'A 192.0.2.1',
      'TXT "t"',
      'A6 \\# 1 00',
      'TYPE65280 \\# 1 ff',
    ]);
  });

  it('drops NSEC, NSEC3 and NSEC3PARAM as the bind backend does (PowerDNS makes them itself)', () => {
    expect(show(zone('a NSEC ( b A\n NSEC )\n@ NSEC3PARAM 1 0 0 -\nb A 192.0.2.1\n'))).toEqual([
      'b.example.com. 3600 A 192.0.2.1',
    ]);
  });
});

describe('zone parser: parentheses and comments', () => {
  it('joins a multi-line SOA with comments on every line', () => {
    const text =
      '@ IN SOA ns1 hostmaster ( ; start\n  2024 ; serial\n  ; a comment line\n\n  1h 15m ; refresh, retry\n  1w 300 ) ; expire, minimum\n';
    expect(zone(text)[0]!.content).toBe('ns1.example.com. hostmaster.example.com. 2024 3600 900 604800 300');
  });

  it('keeps semicolons and parentheses inside quotes', () => {
    expect(zone('t TXT "a;b" "(c)" ; comment')[0]!.content).toBe('"a;b" "(c)"');
    expect(zone('t TXT ( "one" ; first\n "tw;o" ) ; end')[0]!.content).toBe('"one" "tw;o"');
  });

  it('accepts parentheses on one line and data after the closing one', () => {
    expect(zone('m MX ( 10 mx )')[0]!.content).toBe('10 mx.example.com.');
    expect(zone('m MX ( 10\n ) mx')[0]!.content).toBe('10 mx.example.com.');
  });

  it('reads CRLF files', () => {
    expect(show(zone('a A 192.0.2.1\r\nb TXT ( "x"\r\n "y" )\r\n'))).toEqual([
      'a.example.com. 3600 A 192.0.2.1',
      'b.example.com. 3600 TXT "x" "y"',
    ]);
  });
});

describe('zone parser: $INCLUDE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zf-'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'inc.zone'), 'inc A 192.0.2.9\n$ORIGIN elsewhere.example.\nx A 192.0.2.8\n');
  writeFileSync(join(dir, 'sub', 'nested.zone'), '$INCLUDE inc.zone\n');
  writeFileSync(join(dir, 'a.zone'), '$INCLUDE b.zone\n');
  writeFileSync(join(dir, 'b.zone'), '$INCLUDE a.zone\n');
  writeFileSync(join(dir, 'ttl.zone'), '$TTL 60\n');

  it('reads files relative to the zone file directory, with an optional origin, and restores the origin after', () => {
    const rs = parseZone('$INCLUDE inc.zone\n$INCLUDE "inc.zone" other.example.com.\nafter A 192.0.2.10\n', {
      origin: 'example.com',
      file: join(dir, 'top.zone'),
    });
    expect(rs.map((r) => r.name)).toEqual([
      'inc.example.com.',
      'x.elsewhere.example.',
      'inc.other.example.com.',
      'x.elsewhere.example.',
      'after.example.com.',
    ]);
  });

  it('resolves nested includes against the top file directory too (one directory, like the bind backend)', () => {
    const rs = parseZone('$INCLUDE sub/nested.zone\n', { origin: 'example.com', file: join(dir, 'top.zone') });
    expect(rs[0]!.name).toBe('inc.example.com.');
  });

  it('keeps $TTL set in an included file', () => {
    expect(
      parseZone('$INCLUDE ttl.zone\na A 192.0.2.1\n', { origin: 'example.com', file: join(dir, 'top.zone') })[0]!.ttl,
    ).toBe(60);
  });

  it('detects loops and names the chain', () => {
    const e = error('$INCLUDE a.zone\n', join(dir, 'top.zone'));
    expect(e.problem).toBe(
      `$INCLUDE loop: ${['top.zone', 'a.zone', 'b.zone', 'a.zone'].map((f) => join(dir, f)).join(' -> ')}`,
    );
    expect([e.file, e.line, e.column]).toEqual([join(dir, 'b.zone'), 1, 10]);
  });

  it('reports a missing file where the $INCLUDE is, and refuses $INCLUDE without a file', () => {
    expect(error('\n$INCLUDE missing.zone\n', join(dir, 'top.zone')).message).toMatch(
      /top\.zone:2:10: \$INCLUDE: cannot read .*missing\.zone: ENOENT/,
    );
    expect(() => zone('$INCLUDE inc.zone\n')).toThrow(/\$INCLUDE is only allowed in zone files/);
    expect(() => parseRecordLines(['$INCLUDE x'], { origin: 'x' })).toThrow(/only allowed in zone files/);
  });
});

describe('zone parser: $GENERATE', () => {
  it('expands $, ${offset,width,radix}, steps and escapes', () => {
    const rs = zone(
      '$GENERATE 1-3 host$ A 10.0.0.$\n$GENERATE 8-12/2 r${0,3,x} CNAME host${-7}\n$GENERATE 250-251 ${0,4,X}.\\$ PTR h-${2}\n',
    );
    expect(rs.map((r) => `${r.name} ${r.content}`)).toEqual([
      'host1.example.com. 10.0.0.1',
      'host2.example.com. 10.0.0.2',
      'host3.example.com. 10.0.0.3',
      'r008.example.com. host1.example.com.',
      'r00a.example.com. host3.example.com.',
      'r00c.example.com. host5.example.com.',
      '00FA.$.example.com. h-252.example.com.',
      '00FB.$.example.com. h-253.example.com.',
    ]);
  });

  it('prints negative values as printf does (%d signed, %o %x unsigned)', () => {
    expect(zone('$GENERATE 0-0 a${-5,3} A 10.0.0.1\n$GENERATE 0-0 b${-1,0,x} A 10.0.0.2\n').map((r) => r.name)).toEqual(
      ['a-05.example.com.', 'bffffffff.example.com.'],
    );
  });

  it('uses the current TTL and origin, and continues with the file after', () => {
    expect(show(zone('$TTL 60\n$GENERATE 1-2 g$ TXT "n$" ; comment\nafter A 192.0.2.1\n'))).toEqual([
      'g1.example.com. 60 TXT "n1"',
      'g2.example.com. 60 TXT "n2"',
      'after.example.com. 60 A 192.0.2.1',
    ]);
  });
});

describe('zone parser: errors name file, line and column', () => {
  it.each([
    ['a AAA 192.0.2.1\n', "z.zone:1:3: unknown record type 'AAA' (write types PowerDNS does not name as TYPEnnn)"],
    ['a A 300.1.2.3\n', "z.zone:1:5: A: '300.1.2.3' is not an IPv4 address"],
    ['\n\na  AAAA 192.0.2.1\n', "z.zone:3:9: AAAA: '192.0.2.1' is not an IPv6 address"],
    ['a MX mail\n', "z.zone:1:6: MX: expected a preference (0-65535), got 'mail'"],
    ['a MX 10\n', 'z.zone:1:8: MX: expected a mail exchanger, but the record data ends here'],
    ['a 300 IN MX x mail\n', "z.zone:1:13: MX: expected a preference (0-65535), got 'x'"],
    [
      '@ SOA ns1 host (\n  1 2\n  3 x 5 )\n',
      "z.zone:3:5: SOA: 'x' is not a TTL (seconds, or numbers with units s m h d w: 3600, 1h, 1h30m)",
    ],
    ['a..b A 192.0.2.1\n', "z.zone:1:3: name 'a..b' has an empty label"],
    ['a CNAME b..c\n', "z.zone:1:11: CNAME: name 'b..c' has an empty label"],
    [`${'x'.repeat(64)} A 192.0.2.1\n`, `z.zone:1:64: name '${'x'.repeat(64)}' has a label longer than 63 octets`],
    [
      '@ SOA ns1 host (\n 1 2 3 4 5\n',
      "z.zone:1:16: unbalanced parenthesis opened at 1:16 (no ')' before the end of the file)",
    ],
    ['a A 192.0.2.1 )\n', "z.zone:1:15: ')' without '(' before it"],
    ['a TXT ( "x" ) ( "y" )\n', "z.zone:1:15: a second '(': one pair of parentheses per record"],
    ['a TXT "open\n', 'z.zone:1:7: TXT: unterminated quoted string'],
    ['a TXT ( "x"\n  "open\n )\n', 'z.zone:2:3: TXT: unterminated quoted string'],
    ['a TXT ( "x"\n  "open )\n', 'z.zone:1:7: unbalanced parenthesis opened at 1:7'],
    ['a CH TXT "x"\n', 'z.zone:1:3: class CH is not supported; only IN (or no class)'],
    ['a HS A 192.0.2.1\n', 'z.zone:1:3: class HS is not supported'],
    ['a ANY 192.0.2.1\n', 'z.zone:1:3: ANY is a query type, not record data'],
    ['$FOO bar\n', "z.zone:1:1: cannot read directive '$FOO bar'"],
    ['$TTL\n', "z.zone:1:1: cannot read directive '$TTL'"],
    ['$TTL 1x\n', "z.zone:1:6: '1x' is not a TTL"],
    ['$ORIGIN a..b\n', "z.zone:1:11: name 'a..b' has an empty label"],
    [
      '  A 192.0.2.1\n',
      'z.zone:1:1: the line starts with a blank (same owner as the record before) but no record comes before it',
    ],
    ['a 60\n', 'z.zone:1:3: no record type on this line'],
    ['a 60 ; A 192.0.2.1\n', 'z.zone:1:3: no record type on this line'],
    ['a 60 120 A 192.0.2.1\n', "z.zone:1:6: a second TTL '120' (one TTL per record)"],
    [
      'a 2147483648 A 192.0.2.1\n',
      "z.zone:1:3: '2147483648' is 2147483648 seconds, more than the largest allowed (2147483647)",
    ],
    ['a A\n', 'z.zone:1:4: A: record data is missing'],
    ['a A ; nothing\n', 'z.zone:1:5: A: record data is missing'],
    ['$GENERATE 5-1 a$ A 10.0.0.$\n', "z.zone:1:11: $GENERATE: range '5-1' needs START <= STOP and STEP >= 1"],
    ['$GENERATE 1-2 a${x} A 10.0.0.$\n', "z.zone:1:1: $GENERATE: cannot read '${x}'"],
    ['$GENERATE 1-100000 a$ A 10.0.0.1\n', 'makes more than 65536 records'],
    ['a TYPE70000 \\# 0\n', "z.zone:1:3: unknown record type 'TYPE70000'"],
  ])('%j → %s', (text, message) => {
    expect(error(text).message).toContain(message);
  });

  it('uses <zone> when no file is given, and exposes the position', () => {
    const e = (() => {
      try {
        zone('a A x\n');
      } catch (err) {
        return err as ZoneFileError;
      }
      throw new Error('expected a ZoneFileError');
    })();
    expect(e.message).toBe("<zone>:1:5: A: 'x' is not an IPv4 address");
    expect([e.file, e.line, e.column, e.problem]).toEqual(['<zone>', 1, 5, "A: 'x' is not an IPv4 address"]);
  });
});

describe('inline record lines', () => {
  it('parses lines relative to the origin', () => {
    const rs = parseRecordLines(['www 300 IN A 192.0.2.1', '@ MX 10 mail', 'mail A 192.0.2.2', '  AAAA 2001:db8::2'], {
      origin: 'example.com.',
    });
    expect(show(rs)).toEqual([
      'www.example.com. 300 A 192.0.2.1',
      'example.com. 300 MX 10 mail.example.com.',
      'mail.example.com. 300 A 192.0.2.2',
      'mail.example.com. 300 AAAA 2001:db8::2',
    ]);
  });

  it('numbers errors by entry (index + 1), also inside multi-line entries', () => {
    expect(() => parseRecordLines(['www A 192.0.2.1', 'bad MX'], { origin: 'example.com', file: 'c.yaml' })).toThrow(
      /^c\.yaml:2:7: MX: record data is missing$/,
    );
    expect(() =>
      parseRecordLines(['a A 192.0.2.1', '@ SOA ns host (\n1 2 3 4 x )'], { origin: 'example.com' }),
    ).toThrow(/^<records>:2:9: SOA: 'x' is not a TTL/);
  });

  it('lets parentheses span entries, as PowerDNS does for a list of lines', () => {
    expect(parseRecordLines(['@ SOA ns host (', '1 2 3 4 5 )'], { origin: 'example.com' })[0]!.content).toBe(
      'ns.example.com. host.example.com. 1 2 3 4 5',
    );
  });
});
