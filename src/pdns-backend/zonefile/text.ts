import { pushUtf8, quoteBytes } from './bytes.js';
import type { Cursor, Field, WireReader } from './fields.js';

/**
 * Character-string fields (TXT, SPF, HINFO, NAPTR, CAA, URI): read as RecordTextReader::xfrText
 * reads them, octets counted as PowerDNS's packet writer (segmentDNSText) counts them, and
 * written back quoted with PowerDNS's escapes (`\"`, `\\`, `\DDD` outside printable ASCII).
 */

const isAlnum = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/**
 * One character-string as RecordTextReader::xfrText reads it: in double quotes with `\c` and
 * `\DDD` escapes, or a bare alphanumeric word that ends the data. Returns its bytes.
 */
export function readString(c: Cursor, what: string): number[] {
  const { s } = c;
  const start = c.token(what).start;
  c.pos = start;
  if (s[start] !== '"') {
    let p = start;
    while (p < s.length && isAlnum(s.charCodeAt(p))) p++;
    if (p < s.length)
      c.fail(`expected ${what} in double quotes, got '${/^[^ \t\r\n]*/.exec(s.slice(start))![0]}'`, start);
    c.pos = p;
    return Array.from(s.slice(start), (ch) => ch.charCodeAt(0));
  }
  const out: number[] = [];
  let i = start + 1;
  while (i < s.length && s[i] !== '"') {
    if (s[i] !== '\\' || i + 1 >= s.length) i += pushUtf8(out, s, i);
    else if (!/\d/.test(s[i + 1]!)) i += 1 + pushUtf8(out, s, i + 1);
    else i = decimalEscape(c, i, out);
  }
  if (i >= s.length) c.fail('unterminated quoted string', start);
  c.pos = i + 1;
  return out;
}

function decimalEscape(c: Cursor, i: number, out: number[]): number {
  const digits = c.s.slice(i + 1, i + 4);
  if (!/^\d{3}$/.test(digits)) c.fail(`'\\${digits}' is not an escape (\\DDD needs three digits)`, i);
  if (Number(digits) > 255) c.fail(`escape \\${digits} is over 255`, i);
  out.push(Number(digits));
  return i + 4;
}

/** A length-prefixed string from wire data. */
function wireString(w: WireReader, what: string): Uint8Array {
  return w.take(w.uint(1, what), what);
}

/**
 * One character-string (HINFO, NAPTR): at most 255 octets, else PowerDNS would split it into two and garble the
 * record.
 */
export function string(what: string): Field {
  return {
    what,
    text(c: Cursor) {
      const start = c.pos;
      const bytes = readString(c, what);
      if (bytes.length > 255) c.fail(`${what} is ${bytes.length} octets; a character-string holds at most 255`, start);
      return quoteBytes(bytes);
    },
    wire: (w) => quoteBytes(wireString(w, what)),
  };
}

/**
 * TXT and SPF: one or more character-strings. PowerDNS's packet writer (segmentDNSText) cuts a
 * string longer than 255 octets into 255-octet pieces; we write those pieces out, so the wire data
 * is the same and each string we hand over fits.
 */
export const strings: Field = {
  what: 'a character-string',
  text(c: Cursor) {
    const out: string[] = [];
    do {
      const bytes = readString(c, this.what);
      for (let i = 0; i === 0 || i < bytes.length; i += 255) out.push(quoteBytes(bytes.slice(i, i + 255)));
    } while (!c.atEnd());
    return out.join(' ');
  },
  wire(w) {
    const out: string[] = [];
    do {
      out.push(quoteBytes(wireString(w, 'a character-string')));
    } while (!w.atEnd);
    return out.join(' ');
  },
};

/** CAA value, URI target: strings read as one run of octets with no length prefix; all of them joined. */
export function joined(what: string): Field {
  return {
    what,
    text(c: Cursor) {
      const bytes: number[] = [];
      do {
        for (const b of readString(c, what)) bytes.push(b);
      } while (!c.atEnd());
      return quoteBytes(bytes);
    },
    wire: (w) => quoteBytes(w.rest()),
  };
}

/** CAA tag: a bare word (RFC 8659: letters and digits), kept as written. */
export const tag: Field = {
  what: 'a tag (letters and digits)',
  text(c: Cursor) {
    const t = c.token(this.what);
    if (!/^[A-Za-z0-9]+$/.test(t.text)) c.fail(`expected ${this.what}, got '${t.text}'`, t.start);
    return t.text;
  },
  wire(w) {
    const text = Buffer.from(wireString(w, 'a tag')).toString('latin1');
    if (!/^[A-Za-z0-9]+$/.test(text)) w.fail(`the tag '${text}' is not letters and digits`);
    return text;
  },
};
