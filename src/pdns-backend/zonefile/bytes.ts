/**
 * Zone text reaches us as a JS string (files are read as UTF-8), but PowerDNS works on the file's
 * bytes: a non-ASCII character is its UTF-8 bytes in names and character-strings alike.
 */

/** Appends the UTF-8 bytes of the code point at `s[i]`; returns how many UTF-16 units it used. */
export function pushUtf8(out: number[], s: string, i: number): number {
  const cp = s.codePointAt(i)!;
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
  else if (cp >= 0xd800 && cp <= 0xdfff)
    out.push(0xef, 0xbf, 0xbd); // lone surrogate: U+FFFD, as Node encodes it
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  return cp > 0xffff ? 2 : 1;
}

const HEX = '0123456789abcdef';

export function toHex(bytes: ArrayLike<number>): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]! >> 4]! + HEX[bytes[i]! & 15]!;
  return out;
}

/** Hex digits (no separators) to bytes, or undefined if not an even run of hex digits. */
export function fromHex(hex: string): number[] | undefined {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined;
  const out: number[] = [];
  for (let i = 0; i < hex.length; i += 2) out.push(parseInt(hex.slice(i, i + 2), 16));
  return out;
}

/**
 * Strict RFC 4648 base64 (padding required), or undefined. PowerDNS decodes through OpenSSL, which turns bad input
 * into zero bytes rather than an error, so we refuse it up front.
 */
export function fromBase64(b64: string): Uint8Array | undefined {
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return undefined;
  return Buffer.from(b64, 'base64');
}

export const toBase64 = (bytes: ArrayLike<number>): string => Buffer.from(Array.from(bytes)).toString('base64');

/** Bytes as a character-string in double quotes, escaped as PowerDNS's txtEscape does (so it re-reads identically). */
export function quoteBytes(bytes: ArrayLike<number>): string {
  let out = '"';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 32 || b >= 127) out += `\\${String(b).padStart(3, '0')}`;
    else if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else out += String.fromCharCode(b);
  }
  return `${out}"`;
}
