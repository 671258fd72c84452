import { describe, expect, it } from 'vitest';
import {
  chopComment,
  findUnquoted,
  leadingBlanks,
  RecordData,
  splitParts,
  trimEnd,
} from '../../../src/pdns-backend/zonefile/lexer.js';

describe('zone lexer: parts of a line (as ZoneParserTNG splits them)', () => {
  it('splits on spaces, tabs and newlines, with offsets', () => {
    expect(splitParts('www  300\tIN A 192.0.2.1')).toEqual([
      { text: 'www', start: 0 },
      { text: '300', start: 5 },
      { text: 'IN', start: 9 },
      { text: 'A', start: 12 },
      { text: '192.0.2.1', start: 14 },
    ]);
    expect(splitParts('   ')).toEqual([]);
  });

  it('does not group quoted text (the record data is taken raw from the line instead)', () => {
    expect(splitParts('t TXT "a b"').map((p) => p.text)).toEqual(['t', 'TXT', '"a', 'b"']);
  });

  it('keeps carriage returns inside parts, like vstringtok', () => {
    expect(splitParts('a\rb c').map((p) => p.text)).toEqual(['a\rb', 'c']);
  });
});

describe('zone lexer: comments, quotes and escapes', () => {
  it.each([
    ['a A 1.2.3.4 ; comment', 'a A 1.2.3.4 '],
    ['t TXT "a;b" ; c', 't TXT "a;b" '],
    ['t TXT a\\;b ; c', 't TXT a\\;b '],
    ['t TXT "a\\";b" ; c', 't TXT "a\\";b" '],
    ['; only a comment', ''],
    ['no comment', 'no comment'],
    ['t TXT "open ; not a comment', 't TXT "open ; not a comment'],
  ])('chopComment(%j) = %j', (line, want) => {
    expect(chopComment(line)).toBe(want);
  });

  it('finds characters outside quotes and escapes only', () => {
    expect(findUnquoted('"(" \\( (', '(')).toBe(7);
    expect(findUnquoted('"("', '(')).toBe(-1);
    expect(findUnquoted('a ( b', '(', 3)).toBe(-1);
  });

  it('trims blanks as ZoneParserTNG does (space, tab, CR, LF, ^Z)', () => {
    expect(trimEnd('a \t\r\n\x1a')).toBe('a');
    expect(leadingBlanks(' \t x')).toBe(3);
  });
});

describe('zone lexer: record data over several lines', () => {
  it('maps offsets back to line and column across an elided parenthesis and joined lines', () => {
    const d = new RecordData();
    d.add('ns1 host ( 1', 4, 11);
    expect(d.elide('(')).toBe(true);
    expect(d.text).toBe('ns1 host  1');
    const from = d.text.length + 1;
    d.add(' 2 3 )', 5, 4);
    expect(d.elide(')', from)).toBe(true);
    d.trim();
    expect(d.text).toBe('ns1 host  1 2 3');
    expect(d.position(0)).toEqual({ line: 4, column: 11 });
    expect(d.position(10)).toEqual({ line: 4, column: 22 });
    expect(d.position(d.text.indexOf('2'))).toEqual({ line: 5, column: 5 });
  });

  it('keeps positions right after trimming leading blanks', () => {
    const d = new RecordData();
    d.add('   x', 1, 1);
    d.trim();
    expect(d.text).toBe('x');
    expect(d.position(0)).toEqual({ line: 1, column: 4 });
  });

  it('says when there is nothing to elide, and ignores quoted parentheses', () => {
    const d = new RecordData();
    d.add('"(" x', 1, 1);
    expect(d.elide('(')).toBe(false);
    expect(d.text).toBe('"(" x');
  });
});
