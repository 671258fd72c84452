import { isIPv4, isIPv6 } from 'node:net';

/**
 * A client as PowerDNS's remote backend names it in `real-remote`: the EDNS client subnet when the
 * query carried one (edns-subnet-processing=yes), else the resolver's address as /32 or /128.
 * IPv4 is kept as an unsigned 32-bit number (the hot path); IPv6 as a bigint.
 */
export interface ClientNet {
  family: 4 | 6;
  /** IPv4 network as uint32 (host bits zero). */
  v4: number;
  /** IPv6 network (host bits zero). */
  v6: bigint;
  /** Source prefix length: how much of the address PowerDNS gave us. */
  bits: number;
}

const V4_MAX = 0xffffffff;

/** Parses "a.b.c.d/n", "a.b.c.d", "v6/n" or "v6"; undefined when it is neither. */
export function parseClient(text: string): ClientNet | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const v4 = parseV4(addr);
  if (v4 !== undefined) {
    const bits = slash < 0 ? 32 : Number(text.slice(slash + 1));
    if (!Number.isInteger(bits) || bits < 0 || bits > 32) return undefined;
    return { family: 4, v4: (v4 & maskV4(bits)) >>> 0, v6: 0n, bits };
  }
  if (!isIPv6(addr)) return undefined;
  const bits = slash < 0 ? 128 : Number(text.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > 128) return undefined;
  return { family: 6, v4: 0, v6: parseV6(addr) & maskV6(bits), bits };
}

/** Dotted quad to uint32 without allocating; undefined if not one. */
export function parseV4(s: string): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return undefined;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + part;
}

export function maskV4(bits: number): number {
  return bits === 0 ? 0 : (V4_MAX << (32 - bits)) >>> 0;
}

const ALL6 = (1n << 128n) - 1n;
export function maskV6(bits: number): bigint {
  return bits === 0 ? 0n : (ALL6 << BigInt(128 - bits)) & ALL6;
}

export function parseV6(s: string): bigint {
  let text = s;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (isIPv4(tail)) {
    const v = parseV4(tail)!;
    text = `${text.slice(0, lastColon + 1)}${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = rest === undefined ? [] : rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  let out = 0n;
  for (const g of groups) out = (out << 16n) | BigInt(parseInt(g || '0', 16));
  return out;
}

/** Whether `net/bits` (a configured prefix) contains the client's network. */
export function contains(prefix: ClientNet, client: ClientNet): boolean {
  if (prefix.family !== client.family) return false;
  if (prefix.family === 4) return (client.v4 & maskV4(prefix.bits)) >>> 0 === prefix.v4;
  return (client.v6 & maskV6(prefix.bits)) === prefix.v6;
}

/** Leading bits two networks share (capped by the family width). */
export function commonBits(a: ClientNet, b: ClientNet): number {
  if (a.family !== b.family) return 0;
  if (a.family === 4) {
    const x = (a.v4 ^ b.v4) >>> 0;
    return x === 0 ? 32 : Math.clz32(x);
  }
  let x = a.v6 ^ b.v6;
  if (x === 0n) return 128;
  let n = 128;
  while (x > 0n) {
    x >>= 1n;
    n--;
  }
  return n;
}

/** The probe granularity: a client's /24 (IPv4) or /48 (IPv6), as text ("192.0.2.0/24"). */
export function probeKey(c: ClientNet): string {
  if (c.family === 4) {
    const n = (c.v4 & maskV4(24)) >>> 0;
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.0/24`;
  }
  const n = c.v6 & maskV6(48);
  return `${formatV6(n)}/48`;
}

/** The bits a probe result stands for. */
export function probeBits(c: ClientNet): number {
  return c.family === 4 ? 24 : 48;
}

/** The address a probe of the client's network is sent to: the resolver itself, or the subnet's first host. */
export function probeTarget(c: ClientNet): string {
  if (c.family === 4) {
    const host = c.bits >= 31 ? c.v4 : (c.v4 | 1) >>> 0;
    return `${host >>> 24}.${(host >>> 16) & 255}.${(host >>> 8) & 255}.${host & 255}`;
  }
  return formatV6(c.bits >= 127 ? c.v6 : c.v6 | 1n);
}

export function formatV6(n: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups
    .join(':')
    .replace(/(^|:)0(:0)+(:|$)/, '::')
    .replace(/:{3,}/, '::');
}

export function formatClient(c: ClientNet): string {
  if (c.family === 4) return `${c.v4 >>> 24}.${(c.v4 >>> 16) & 255}.${(c.v4 >>> 8) & 255}.${c.v4 & 255}/${c.bits}`;
  return `${formatV6(c.v6)}/${c.bits}`;
}
