/** IP addresses read as PowerDNS reads them (xfrIP, inet_pton) and printed as it prints them (inet_ntop). */

/** Dotted quad; like PowerDNS's xfrIP, octets may have leading zeros. */
export function parseIPv4(s: string): number[] | undefined {
  return dottedQuad(s, true);
}

/** Four decimal octets; `zeros` allows leading zeros (inet_pton, for an IPv6 tail, does not). */
function dottedQuad(s: string, zeros: boolean): number[] | undefined {
  const out = [0, 0, 0, 0];
  let octet = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e;
    if (c >= 0x30 && c <= 0x39) {
      if (!zeros && digits > 0 && out[octet] === 0) return undefined;
      out[octet] = out[octet]! * 10 + (c - 0x30);
      if (out[octet]! > 255) return undefined;
      digits++;
    } else if (c === 0x2e && digits > 0 && octet < 4) {
      octet++;
      digits = 0;
    } else return undefined;
  }
  return octet === 4 ? out : undefined;
}

const hexValue = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;

/** Colon-separated 16-bit groups, the last possibly a dotted quad (two groups). */
function groups(part: string, allowV4: boolean): number[] | undefined {
  const words: number[] = [];
  if (part === '') return words;
  let start = 0;
  for (let i = 0; i <= part.length; i++) {
    if (i < part.length && part.charCodeAt(i) !== 0x3a) continue;
    const g = part.slice(start, i);
    if (allowV4 && i === part.length && g.includes('.')) {
      const v4 = dottedQuad(g, false);
      if (!v4) return undefined;
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      if (g.length < 1 || g.length > 4) return undefined;
      let w = 0;
      for (let j = 0; j < g.length; j++) {
        const v = hexValue(g.charCodeAt(j));
        if (v < 0) return undefined;
        w = w * 16 + v;
      }
      words.push(w);
    }
    start = i + 1;
  }
  return words;
}

/** The 16 bytes of an IPv6 address in inet_pton's syntax, or undefined. */
export function parseIPv6(s: string): number[] | undefined {
  if (s.length > 45) return undefined;
  const gap = s.indexOf('::');
  let words: number[] | undefined;
  if (gap < 0) {
    words = groups(s, true);
    if (words?.length !== 8) return undefined;
  } else {
    if (s.indexOf('::', gap + 1) >= 0) return undefined;
    const left = groups(s.slice(0, gap), false);
    const right = groups(s.slice(gap + 2), true);
    if (!left || !right || left.length + right.length > 7) return undefined; // '::' stands for at least one group
    words = left;
    while (words.length + right.length < 8) words.push(0);
    for (const w of right) words.push(w);
  }
  const bytes: number[] = [];
  for (const w of words) bytes.push(w >> 8, w & 255);
  return bytes;
}

/** glibc's inet_ntop: longest run (2+) of zero groups as '::', IPv4-mapped and -compatible tails dotted. */
export function formatIPv6(bytes: ArrayLike<number>): string {
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let best = { base: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best.len) best = { base: i, len: j - i };
    i = j;
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base >= 0 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += Array.from(bytes).slice(12, 16).join('.');
      break;
    }
    out += words[i]!.toString(16);
  }
  if (best.base >= 0 && best.base + best.len === 8) out += ':';
  return out;
}
