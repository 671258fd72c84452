import { pushUtf8 } from './bytes.js';
import { ZoneSyntaxError } from './errors.js';

/**
 * DNS names in presentation form (escapes `\.`, `\\`, `\DDD`), printed back the way PowerDNS's
 * DNSName::toString does, so our names equal the qnames PowerDNS sends and re-read to the same
 * wire name. Relative names get the origin appended (RFC 1035); `@` is the origin.
 */

/** Is the name written absolute (a final unescaped dot)? */
export function isAbsolute(text: string): boolean {
  if (!text.endsWith('.')) return false;
  let backslashes = 0;
  for (let i = text.length - 2; i >= 0 && text[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/** The labels' bytes; the root name has none. Errors carry the offset in `text`. */
export function parseLabels(text: string): number[][] {
  if (text === '.') return [];
  const labels: number[][] = [];
  let label: number[] = [];
  const end = isAbsolute(text) ? text.length - 1 : text.length;
  for (let i = 0; i < end;) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i = readEscape(text, i, end, label);
    else if (c === 0x2e /* . */) {
      if (label.length === 0) throw new ZoneSyntaxError(`name '${text}' has an empty label`, i);
      labels.push(label);
      label = [];
      i++;
    } else i += pushUtf8(label, text, i);
    if (label.length > 63) throw new ZoneSyntaxError(`name '${text}' has a label longer than 63 octets`, i - 1);
  }
  if (label.length === 0) throw new ZoneSyntaxError(`name '${text}' has an empty label`, end);
  labels.push(label);
  return labels;
}

/** `\DDD` (exactly three digits, at most 255) or `\c`; returns the index after it. */
function readEscape(text: string, i: number, end: number, label: number[]): number {
  const next = text.charCodeAt(i + 1);
  if (i + 1 >= end) throw new ZoneSyntaxError(`name '${text}' ends in a lone backslash`, i);
  if (next < 0x30 || next > 0x39) return i + 1 + pushUtf8(label, text, i + 1);
  const digits = text.slice(i + 1, i + 4);
  if (!/^\d{3}$/.test(digits) || i + 4 > end)
    throw new ZoneSyntaxError(`name '${text}': '\\${digits}' is not an escape (\\DDD needs three digits)`, i);
  const value = Number(digits);
  if (value > 255) throw new ZoneSyntaxError(`name '${text}': escape \\${digits} is over 255`, i);
  label.push(value);
  return i + 4;
}

/** A label as DNSName::toString prints it. */
function escapeLabel(bytes: number[]): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x2e) out += '\\.';
    else if (b === 0x5c) out += '\\\\';
    else if (b > 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${String(b).padStart(3, '0')}`;
  }
  return out;
}

export const labelsToString = (labels: number[][]): string =>
  labels.length === 0 ? '.' : `${labels.map(escapeLabel).join('.')}.`;

/** Wire length: a length byte per label plus its bytes, plus the root byte. */
export const wireLength = (labels: number[][]): number => labels.reduce((n, l) => n + 1 + l.length, 1);

/** The common case, checked in one pass: printable ASCII without backslashes, labels of 1 to 63 octets. */
export function isPlain(text: string): boolean {
  let label = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (label === 0) return false;
      label = 0;
    } else if (c <= 0x20 || c >= 0x7f || c === 0x5c || ++label > 63) return false;
  }
  return text.length > 0 && (label > 0 || text.length > 1);
}

const originLengths = new Map<string, number>();

function originLength(origin: string): number {
  let n = originLengths.get(origin);
  if (n === undefined) {
    if (originLengths.size > 1000) originLengths.clear(); // bounded: origins are few in real zones
    n = wireLength(parseLabels(origin));
    originLengths.set(origin, n);
  }
  return n;
}

/**
 * `text` as an absolute name in canonical presentation form. `origin` must itself be canonical
 * (the output of this function). Case is kept as written.
 */
export function canonicalName(text: string, origin: string): string {
  if (text === '@') return origin;
  if (isPlain(text)) {
    // already canonical: printable ASCII, no escapes, no empty or long label
    const absolute = text.endsWith('.');
    const length = text.length + (absolute ? 1 : originLength(origin) + 1);
    if (length > 255)
      throw new ZoneSyntaxError(
        `name '${text}' is longer than 255 octets${absolute ? '' : ` (with origin ${origin})`}`,
        0,
      );
    return absolute || origin === '.' ? (absolute ? text : `${text}.`) : `${text}.${origin}`;
  }
  const labels = parseLabels(text);
  const absolute = text === '.' || isAbsolute(text);
  const length = wireLength(labels) + (absolute ? 0 : originLength(origin) - 1);
  if (length > 255)
    throw new ZoneSyntaxError(
      `name '${text}' is longer than 255 octets${absolute ? '' : ` (with origin ${origin})`}`,
      0,
    );
  const own = labelsToString(labels);
  if (absolute) return own;
  return origin === '.' ? own : own + origin;
}

/** A name from uncompressed wire form (RFC 3597 generic data); returns it and the offset after it. */
export function nameFromWire(bytes: Uint8Array, pos: number): [string, number] {
  const labels: number[][] = [];
  for (;;) {
    const len = bytes[pos];
    if (len === undefined) throw new ZoneSyntaxError('the data ends inside a name');
    if (len === 0) break;
    if (len > 63) throw new ZoneSyntaxError('a name in the data is compressed or has a label longer than 63 octets');
    if (pos + 1 + len > bytes.length) throw new ZoneSyntaxError('the data ends inside a name');
    labels.push(Array.from(bytes.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  if (wireLength(labels) > 255) throw new ZoneSyntaxError('a name in the data is longer than 255 octets');
  return [labelsToString(labels), pos + 1];
}

/**
 * Is `name` the apex or below it? Both canonical and lower-case. Compared by labels: in
 * "a\.example.com." the dot after "a" is part of a label, so that name is not in "example.com.".
 */
export function isAtOrBelow(name: string, apex: string): boolean {
  if (apex === '.' || name === apex) return true;
  const dot = name.length - apex.length - 1;
  if (dot < 1 || name[dot] !== '.' || !name.endsWith(apex)) return false;
  let backslashes = 0;
  for (let i = dot - 1; i >= 0 && name[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}
