import { fromBase64, fromHex, toBase64, toHex } from './bytes.js';
import { ZoneSyntaxError } from './errors.js';
import { formatIPv6, parseIPv4, parseIPv6 } from './ip.js';
import { canonicalName, nameFromWire } from './names.js';
import { MAX_U32, parseTtl } from './ttl.js';

/**
 * Record data fields, each read the way PowerDNS's RecordTextReader reads it (the reader
 * DNSRecordContent::mastermake uses on a backend's content) but strictly, and written back the
 * way RecordTextWriter writes it: text PowerDNS re-reads to the same wire data. Each field can
 * also be read from wire form, for RFC 3597 generic data (`\# LENGTH HEX`).
 */

const SPACE = ' \t\r\n'; // dns_isspace

/** A position in record data, for one record type (named in errors). */
export class Cursor {
  pos = 0;
  constructor(
    readonly s: string,
    readonly type: string,
    readonly origin: string,
    /** Added to offsets in errors (data we quoted ourselves is one character to the right). */
    private readonly shift = 0,
  ) {}

  fail(problem: string, at = this.pos): never {
    throw new ZoneSyntaxError(`${this.type}: ${problem}`, Math.max(0, at + this.shift));
  }

  atEnd(): boolean {
    while (this.pos < this.s.length && SPACE.includes(this.s[this.pos]!)) this.pos++;
    return this.pos >= this.s.length;
  }

  private need(what: string): number {
    if (this.atEnd()) this.fail(`expected ${what}, but the record data ends here`);
    return this.pos;
  }

  /** The next whitespace-delimited token. */
  token(what: string): { text: string; start: number } {
    const start = this.need(what);
    while (this.pos < this.s.length && !SPACE.includes(this.s[this.pos]!)) this.pos++;
    return { text: this.s.slice(start, this.pos), start };
  }

  /** Everything left (fields that PowerDNS reads across spaces: hex and base64 blobs, LOC). */
  rest(what: string): { text: string; start: number } {
    const start = this.need(what);
    this.pos = this.s.length;
    return { text: this.s.slice(start), start };
  }

  /** Rethrows a helper's ZoneSyntaxError with this type's prefix, at `start` + its offset. */
  wrap<T>(start: number, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ZoneSyntaxError) this.fail(err.message, start + err.offset);
      throw err;
    }
  }
}

/** Uncompressed wire data of generic (RFC 3597) record data. */
export class WireReader {
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly type: string,
  ) {}

  fail(problem: string): never {
    throw new ZoneSyntaxError(`${this.type}: generic data: ${problem}`);
  }

  take(n: number, what: string): Uint8Array {
    if (this.pos + n > this.bytes.length) this.fail(`it ends before ${what}`);
    this.pos += n;
    return this.bytes.subarray(this.pos - n, this.pos);
  }

  uint(n: number, what: string): number {
    return this.take(n, what).reduce((v, b) => v * 256 + b, 0);
  }

  rest(): Uint8Array {
    return this.take(this.bytes.length - this.pos, '');
  }

  get atEnd(): boolean {
    return this.pos >= this.bytes.length;
  }
}

export interface Field {
  /** What the field is, for "expected ..." messages. */
  what: string;
  text(c: Cursor): string;
  wire(w: WireReader): string;
}

export function uint(bytes: 1 | 2 | 4, what: string): Field {
  const max = 2 ** (8 * bytes) - 1;
  return {
    what,
    text(c: Cursor) {
      const t = c.token(what);
      if (!/^\d+$/.test(t.text) || Number(t.text) > max)
        c.fail(`expected ${what} (0-${max}), got '${t.text}'`, t.start);
      return String(Number(t.text));
    },
    wire: (w) => String(w.uint(bytes, what)),
  };
}

/** SOA timers: seconds, or with units (ZoneParserTNG converts these to seconds). */
export function seconds(what: string): Field {
  return {
    what,
    text(c: Cursor) {
      const t = c.token(what);
      return String(c.wrap(t.start, () => parseTtl(t.text, MAX_U32)));
    },
    wire: (w) => String(w.uint(4, what)),
  };
}

/** A domain name, made absolute against the origin (RFC 1035), so PowerDNS reads it without one. */
export function name(what: string): Field {
  return {
    what,
    text(c: Cursor) {
      const t = c.token(what);
      return c.wrap(t.start, () => canonicalName(t.text, c.origin));
    },
    wire(w) {
      try {
        const [text, end] = nameFromWire(w.bytes, w.pos);
        w.pos = end;
        return text;
      } catch (err) {
        if (err instanceof ZoneSyntaxError) w.fail(err.message);
        throw err;
      }
    },
  };
}

export const ipv4: Field = {
  what: 'an IPv4 address',
  text(c: Cursor) {
    const t = c.token(this.what);
    const bytes = parseIPv4(t.text);
    if (!bytes) return c.fail(`'${t.text}' is not an IPv4 address`, t.start);
    return bytes.join('.');
  },
  wire: (w) => Array.from(w.take(4, 'the address')).join('.'),
};

export const ipv6: Field = {
  what: 'an IPv6 address',
  text(c: Cursor) {
    const t = c.token(this.what);
    const bytes = parseIPv6(t.text);
    if (!bytes) return c.fail(`'${t.text}' is not an IPv6 address`, t.start);
    return formatIPv6(bytes);
  },
  wire: (w) => formatIPv6(w.take(16, 'the address')),
};

/** Hex to the end of the data, spaces allowed (xfrHexBlob with keepReading); `-` is empty. */
export function hex(what: string): Field {
  return {
    what,
    text(c: Cursor) {
      const t = c.rest(what);
      const digits = t.text.replace(/[ \t\r\n]+/g, '');
      if (digits === '-') return '-';
      const bad = /[^0-9a-fA-F]/.exec(digits);
      if (bad) c.fail(`${what} must be hex digits, found '${bad[0]}'`, t.start + t.text.indexOf(bad[0]));
      const bytes = fromHex(digits);
      if (!bytes) return c.fail(`${what} has an odd number of hex digits (${digits.length})`, t.start);
      return toHex(bytes);
    },
    wire: (w) => (w.atEnd ? '-' : toHex(w.rest())),
  };
}

/** Base64 to the end of the data, spaces allowed (xfrBlob). */
export function base64(what: string): Field {
  return {
    what,
    text(c: Cursor) {
      const t = c.rest(what);
      const bytes = fromBase64(t.text.replace(/[ \t\r\n]+/g, ''));
      if (!bytes || bytes.length === 0)
        return c.fail(`${what} is not valid base64 (RFC 4648, with '=' padding)`, t.start);
      return toBase64(bytes);
    },
    wire(w) {
      if (w.atEnd) w.fail(`${what} is empty, which PowerDNS cannot read back`);
      return toBase64(w.rest());
    },
  };
}

/** EUI48 / EUI64: hex pairs joined by '-'. */
export function eui(octets: 6 | 8): Field {
  const what = `${octets} hex pairs joined by '-'`;
  const re = new RegExp(`^[0-9a-fA-F]{2}(-[0-9a-fA-F]{2}){${octets - 1}}$`);
  return {
    what,
    text(c: Cursor) {
      const t = c.token(what);
      if (!re.test(t.text)) c.fail(`expected ${what}, got '${t.text}'`, t.start);
      return t.text.toLowerCase();
    },
    wire: (w) => toHex(w.take(octets, 'the address')).replace(/(..)(?!$)/g, '$1-'),
  };
}
