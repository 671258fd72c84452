import type { Cursor, Field, WireReader } from './fields.js';

/**
 * LOC (RFC 1876), encoded as PowerDNS's LOCRecordContent (sillyrecords.cc) encodes it, including
 * its rounding of sizes to one digit times a power of ten, and written back in a form it re-reads
 * to the same wire data: `d m s.sss N d m s.sss E alt.cm size hp vp` with every value explicit.
 */

const EQUATOR = 2 ** 31; // latitude/longitude 0 on the wire
const ALT_ZERO = 10_000_000; // altitude 0 m on the wire, in cm
const MAX_CM = 0xffffffff; // PowerDNS reads sizes as unsigned int centimetres

interface Loc {
  lat: number;
  lon: number;
  alt: number;
  size: number;
  hp: number;
  vp: number;
}

/** Degrees [minutes [seconds[.fff]]] hemisphere, as signed thousandths of arc seconds. */
function angle(c: Cursor, tokens: { text: string; start: number }[], hemis: string, maxDeg: number): number {
  const start = tokens[0]?.start ?? c.pos;
  const nums: string[] = [];
  while (tokens.length > 0 && /^[\d.]/.test(tokens[0]!.text) && nums.length < 3) nums.push(tokens.shift()!.text);
  const hemi = tokens.shift();
  if (!hemi || !new RegExp(`^[${hemis}]$`, 'i').test(hemi.text))
    c.fail(`expected degrees [minutes [seconds]] then ${hemis.split('').join(' or ')}`, hemi?.start ?? start);
  const [d = '', m = '0', s = '0'] = nums;
  const sec = /^(\d+)(?:\.(\d{1,3}))?$/.exec(s);
  if (!/^\d+$/.test(d) || !/^\d+$/.test(m) || !sec || Number(m) > 59 || Number(sec[1]) > 59)
    c.fail(`'${nums.join(' ')}' is not degrees, minutes (0-59) and seconds (0-59.999)`, start);
  const thousandths =
    ((Number(d) * 60 + Number(m)) * 60 + Number(sec[1])) * 1000 + Number((sec[2] ?? '').padEnd(3, '0'));
  if (thousandths > maxDeg * 3_600_000) c.fail(`'${nums.join(' ')}' is more than ${maxDeg} degrees`, start);
  return /[SW]/i.test(hemi.text) ? -thousandths : thousandths;
}

/** Metres with up to two decimals, optional 'm', as centimetres. */
function metres(c: Cursor, t: { text: string; start: number }, signed: boolean, what: string): number {
  const m = (signed ? /^([-+]?)(\d+)(?:\.(\d{1,2}))?m?$/i : /^()(\d+)(?:\.(\d{1,2}))?m?$/i).exec(t.text);
  if (!m) c.fail(`expected ${what} in metres (up to two decimals), got '${t.text}'`, t.start);
  const cm = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'));
  return m[1] === '-' ? -cm : cm;
}

/** precsize_aton: the largest power of ten not above the value, times one digit (rounded down). */
function precsize(cm: number): number {
  let exponent = 0;
  while (exponent < 9 && cm >= 10 ** (exponent + 1)) exponent++;
  return (Math.min(9, Math.floor(cm / 10 ** exponent)) << 4) | exponent;
}

function readLoc(c: Cursor): Loc {
  const tokens: { text: string; start: number }[] = [];
  while (!c.atEnd()) tokens.push(c.token('LOC data'));
  const lat = angle(c, tokens, 'NS', 90);
  const lon = angle(c, tokens, 'EW', 180);
  const [altT, ...sizes] = tokens;
  if (!altT) c.fail('expected an altitude in metres after the longitude');
  if (sizes.length > 3)
    c.fail(`unexpected '${sizes[3]!.text}' after size, horizontal and vertical precision`, sizes[3]!.start);
  const alt = metres(c, altT, true, 'an altitude');
  if (alt < -ALT_ZERO || alt > MAX_CM - ALT_ZERO)
    c.fail(`altitude '${altT.text}' is outside -100000m to 42849672.95m`, altT.start);
  const [size = 100, hp = 1_000_000, vp = 1000] = sizes.map((t, i) => {
    const cm = metres(c, t, false, ['a size', 'a horizontal precision', 'a vertical precision'][i]!);
    if (cm > MAX_CM) c.fail(`'${t.text}' is more than 42949672.95m`, t.start);
    return cm;
  });
  return {
    lat: EQUATOR + lat,
    lon: EQUATOR + lon,
    alt: ALT_ZERO + alt,
    size: precsize(size),
    hp: precsize(hp),
    vp: precsize(vp),
  };
}

function formatAngle(raw: number, hemis: string): string {
  const v = raw - EQUATOR;
  const a = Math.abs(v);
  const [d, m, s, f] = [Math.floor(a / 3_600_000), Math.floor(a / 60_000) % 60, Math.floor(a / 1000) % 60, a % 1000];
  return `${d} ${m} ${s}.${String(f).padStart(3, '0')} ${v < 0 ? hemis[1] : hemis[0]}`;
}

const formatCm = (cm: number) =>
  `${cm < 0 ? '-' : ''}${Math.floor(Math.abs(cm) / 100)}.${String(Math.abs(cm) % 100).padStart(2, '0')}m`;
const sizeCm = (b: number) => (b >> 4) * 10 ** (b & 15);

function formatLoc(l: Loc): string {
  return [
    formatAngle(l.lat, 'NS'),
    formatAngle(l.lon, 'EW'),
    formatCm(l.alt - ALT_ZERO),
    formatCm(sizeCm(l.size)),
    formatCm(sizeCm(l.hp)),
    formatCm(sizeCm(l.vp)),
  ].join(' ');
}

function locFromWire(w: WireReader): Loc {
  if (w.uint(1, 'the version') !== 0) w.fail('only LOC version 0 exists');
  const [size, hp, vp] = [w.uint(1, 'the size'), w.uint(1, 'the precision'), w.uint(1, 'the precision')];
  const [lat, lon, alt] = [w.uint(4, 'the latitude'), w.uint(4, 'the longitude'), w.uint(4, 'the altitude')];
  for (const b of [size, hp, vp])
    if (b >> 4 > 9 || (b & 15) > 9 || sizeCm(b) > MAX_CM)
      w.fail(`size/precision byte 0x${b.toString(16)} is out of range`);
  if (Math.abs(lat - EQUATOR) > 90 * 3_600_000 || Math.abs(lon - EQUATOR) > 180 * 3_600_000)
    w.fail('latitude or longitude out of range');
  return { lat, lon, alt, size, hp, vp };
}

export const loc: Field = {
  what: 'a location',
  text: (c: Cursor) => formatLoc(readLoc(c)),
  wire: (w) => formatLoc(locFromWire(w)),
};
