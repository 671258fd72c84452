import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quoteBytes } from '../../../src/pdns-backend/zonefile/bytes.js';
import { parseRecordLines, parseZone, ZoneFileError } from '../../../src/pdns-backend/zonefile/index.js';
import { canonicalContent } from '../../../src/pdns-backend/zonefile/rdata.js';
import { fuzzRuns } from '../../fuzz/runs.js';

const valid = readFileSync(join(resolve(__dirname, '../../fixtures/zones'), 'example.com.zone'), 'utf8');

/** Parses, or fails with a ZoneFileError; anything else (TypeError, RangeError, ...) fails the property. */
function parseOrZoneError(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    if (!(e instanceof ZoneFileError)) throw e;
  }
}

const TOKENS = [
  '@',
  'www',
  'a\\.b',
  '\\065',
  '*',
  '.',
  'IN',
  'CH',
  '300',
  '1h',
  'A',
  'AAAA',
  'MX',
  'TXT',
  'SOA',
  'LOC',
  'DS',
  'CAA',
  'NAPTR',
  'TYPE65280',
  'TYPE1',
  '\\#',
  '4',
  '0A000001',
  '192.0.2.1',
  '::1',
  '10',
  '"',
  '"x"',
  '"a\\"b"',
  '\\',
  '\\999',
  '(',
  ')',
  ';',
  ';c',
  '$ORIGIN',
  '$TTL',
  '$GENERATE',
  '1-3',
  'h$',
  '${0,3,x}',
  '$INCLUDE',
  'N',
  'E',
  '52',
  '-2m',
  'é',
  '\t',
  ' ',
  '\n',
  '\r\n',
];

describe('zone parser: robustness (fast-check)', () => {
  it('random text parses or throws ZoneFileError, nothing else', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) =>
        parseOrZoneError(() => parseZone(text, { origin: 'example.com' })),
      ),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('token soup (zone syntax in random order) parses or throws ZoneFileError', () => {
    const soup = fc
      .array(fc.constantFrom(...TOKENS), { maxLength: 60 })
      .map((ts) => ts.join(' ').replace(/ ?\n ?/g, '\n'));
    fc.assert(
      fc.property(soup, (text) => parseOrZoneError(() => parseZone(text, { origin: 'example.com' }))),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('the fixture zone with random mutations parses or throws ZoneFileError', () => {
    const mutation = fc.tuple(
      fc.nat(valid.length - 1),
      fc.nat(8),
      fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(...TOKENS)),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
        let text = valid;
        for (const [at, cut, junk] of muts) text = text.slice(0, at) + junk + text.slice(at + cut);
        parseOrZoneError(() => parseZone(text, { origin: 'example.com' }));
      }),
      { numRuns: fuzzRuns(500) },
    );
  });

  it('inline record lines with random content parse or throw ZoneFileError', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 5 }), (lines) =>
        parseOrZoneError(() => parseRecordLines(lines, { origin: 'example.com' })),
      ),
      { numRuns: fuzzRuns(500) },
    );
  });

  it('TXT strings of any bytes survive quoting: the canonical content reads back to itself', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { minLength: 1, maxLength: 3 }), (strings) => {
        const content = canonicalContent('TXT', strings.map(quoteBytes).join(' '), '.');
        expect(canonicalContent('TXT', content, '.')).toBe(content);
        // one quoted string per 255 bytes (at least one per input string); a string may itself hold '" "'
        expect(content.match(/"(?:[^"\\]|\\.)*"/g)).toHaveLength(
          strings.reduce((n, s) => n + Math.max(1, Math.ceil(s.length / 255)), 0),
        );
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  it('a TXT string that is one space (once a failing case of the test above, seed 996151746)', () => {
    const content = canonicalContent('TXT', quoteBytes(Uint8Array.from([32])), '.');
    expect(content).toBe('" "');
    expect(canonicalContent('TXT', content, '.')).toBe(content);
  });
});

// Speed (100,000 records, linear time on pathological lines) is measured in bench/zonefile.ts,
// never asserted here: a loaded machine must not fail a test. These check the same inputs' results.
describe('zone parser: large and pathological input', () => {
  it('parses 100,000 records, every one of them', () => {
    const lines = ['$TTL 1h', '@ SOA ns1 host ( 1 2 3 4 5 )'];
    for (let i = 0; i < 100_000; i++) {
      const n = `h${i}`;
      lines.push(
        i % 4 === 0
          ? `${n} 300 IN A 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
          : i % 4 === 1
            ? `${n} MX 10 mail${i}`
            : i % 4 === 2
              ? `${n} TXT "record ${i}" ; comment`
              : `${n} AAAA 2001:db8::${(i & 0xffff).toString(16)}`,
      );
    }
    const records = parseZone(lines.join('\n'), { origin: 'example.com' });
    expect(records).toHaveLength(100_001);
    expect(records.at(-1)).toMatchObject({ name: 'h99999.example.com.', type: 'AAAA' });
  });

  it('pathological lines (long quotes, escapes, parentheses, comments) parse or throw ZoneFileError', () => {
    const n = 20_000;
    for (const text of [
      `a TXT "${'\\"'.repeat(n)}"`,
      `a TXT ${'"x" '.repeat(n / 4)}`,
      `a TXT (${'\n"x"'.repeat(n / 10)} )`,
      `${';'.repeat(n)}`,
      `a TXT "${'(;'.repeat(n)}"`,
      `a.${'b.'.repeat(n)} A 1.2.3.4`,
      `a TYPE65280 \\# ${n / 2} ${'0'.repeat(n)}`,
    ]) {
      parseOrZoneError(() => parseZone(text, { origin: 'example.com' }));
    }
  });
});
