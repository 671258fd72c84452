import { fromHex, toHex } from './bytes.js';
import { ZoneSyntaxError } from './errors.js';
import { base64, Cursor, eui, hex, ipv4, ipv6, name, seconds, uint, WireReader, type Field } from './fields.js';
import { joined, string, strings, tag } from './text.js';
import { loc } from './loc.js';

/**
 * Record data in the presentation form PowerDNS's remote backend hands to
 * DNSRecordContent::mastermake (with no origin): every field normalised, every name absolute,
 * so that PowerDNS builds the same wire data from it as its bind backend builds from the file.
 */

const u8 = (what: string) => uint(1, what);
const u16 = (what: string) => uint(2, what);
const u32 = (what: string) => uint(4, what);
const target = name('a target name');
const ds = [u16('a key tag'), u8('an algorithm'), u8('a digest type'), hex('a digest')];
const tlsa = [u8('a certificate usage'), u8('a selector'), u8('a matching type'), hex('certificate association data')];
const dnskey = [u16('flags'), u8('a protocol'), u8('an algorithm'), base64('a public key')];

/** certificate type 0 is reserved; PowerDNS refuses it when it builds the record. */
const certType: Field = {
  ...u16('a certificate type'),
  text(c: Cursor) {
    const start = c.pos;
    const v = u16('a certificate type').text(c);
    if (v === '0') c.fail('certificate type 0 is reserved', start);
    return v;
  },
};

/** Field layouts as in PowerDNS's dnsrecords.cc (boilerplate_conv). */
const SCHEMAS: Record<string, Field[]> = {
  A: [ipv4],
  AAAA: [ipv6],
  NS: [name('a name server')],
  CNAME: [target],
  DNAME: [target],
  PTR: [target],
  ALIAS: [target],
  MB: [name('a mailbox host')],
  MG: [name('a mailbox')],
  MR: [name('a mailbox')],
  MINFO: [name('a responsible mailbox'), name('an error mailbox')],
  MX: [u16('a preference'), name('a mail exchanger')],
  KX: [u16('a preference'), name('a key exchanger')],
  AFSDB: [u16('a subtype'), name('a hostname')],
  LP: [u16('a preference'), name('a locator name')],
  L32: [u16('a preference'), ipv4],
  SRV: [u16('a priority'), u16('a weight'), u16('a port'), target],
  SOA: [
    name('a primary name server'),
    name('a responsible mailbox'),
    u32('a serial'),
    seconds('a refresh time'),
    seconds('a retry time'),
    seconds('an expire time'),
    seconds('a negative-caching TTL'),
  ],
  RP: [name('a mailbox'), name('a TXT record name')],
  TXT: [strings],
  SPF: [strings],
  HINFO: [string('a CPU'), string('an OS')],
  NAPTR: [
    u16('an order'),
    u16('a preference'),
    string('flags'),
    string('services'),
    string('a regexp'),
    name('a replacement'),
  ],
  CAA: [u8('flags'), tag, joined('a value')],
  URI: [u16('a priority'), u16('a weight'), joined('a target')],
  DS: ds,
  CDS: ds,
  DLV: ds,
  SSHFP: [u8('an algorithm'), u8('a fingerprint type'), hex('a fingerprint')],
  TLSA: tlsa,
  SMIMEA: tlsa,
  ZONEMD: [u32('a serial'), u8('a scheme'), u8('a hash algorithm'), hex('a digest')],
  DNSKEY: dnskey,
  CDNSKEY: dnskey,
  KEY: dnskey,
  RKEY: dnskey,
  CERT: [certType, u16('a key tag'), u8('an algorithm'), base64('a certificate')],
  OPENPGPKEY: [base64('a key')],
  DHCID: [base64('data')],
  EUI48: [eui(6)],
  EUI64: [eui(8)],
  LOC: [loc],
};

/**
 * Types PowerDNS parses but we do not normalise (rare, intricate syntax): their data goes to PowerDNS exactly as its
 * zone parser would pass it.
 */
const VERBATIM = new Set(['IPSECKEY', 'APL', 'SVCB', 'HTTPS', 'CSYNC', 'RRSIG', 'NID', 'L64', 'LUA']);

/** The bind backend drops these (PowerDNS synthesises NSEC/NSEC3 itself). */
export const IGNORED_TYPES = new Set(['NSEC', 'NSEC3', 'NSEC3PARAM']);

export function canonicalContent(type: string, content: string, origin: string): string {
  // ZoneParserTNG: data that is exactly '@' is the origin, whatever the type
  if (content === '@') content = origin;
  if (/^\\#(\s|$)/.test(content)) return generic(type, content);
  const fields = SCHEMAS[type];
  if (fields) return fromText(type, content, origin, fields);
  if (VERBATIM.has(type)) return content;
  throw new ZoneSyntaxError(
    `${type}: PowerDNS has no parser for this type; write its data in the generic form '\\# LENGTH HEX'`,
  );
}

function fromText(type: string, content: string, origin: string, fields: Field[]): string {
  // PowerDNS's DNSBackend::get quotes TXT data that does not start with a quote, as one string
  const quoted = type === 'TXT' && !content.startsWith('"');
  const c = new Cursor(quoted ? `"${content}"` : content, type, origin, quoted ? -1 : 0);
  const out = fields.map((f) => f.text(c));
  if (!c.atEnd()) c.fail(`unexpected '${c.s.slice(c.pos, c.pos + 40)}' after the record data`);
  return out.join(' ');
}

/** RFC 3597 `\# LENGTH HEX...` (hex may be split by spaces). */
function generic(type: string, content: string): string {
  const m = /^\\#\s+(\d+)((?:\s+[0-9a-fA-F]+)*)\s*$/.exec(content);
  if (!m) throw new ZoneSyntaxError(`${type}: generic data must be '\\# LENGTH HEX...', got '${content.slice(0, 60)}'`);
  const hexDigits = m[2]!.replace(/\s+/g, '');
  const bytes = fromHex(hexDigits);
  if (!bytes) throw new ZoneSyntaxError(`${type}: generic data has an odd number of hex digits`);
  if (bytes.length !== Number(m[1]))
    throw new ZoneSyntaxError(`${type}: generic data says ${m[1]} octets but has ${bytes.length}`);
  const fields = SCHEMAS[type];
  if (fields) return fromWire(type, Uint8Array.from(bytes), fields);
  if (VERBATIM.has(type))
    throw new ZoneSyntaxError(`${type}: PowerDNS cannot read this type in generic form; write its presentation form`);
  // PowerDNS's UnknownRecordContent wants the hex as one word
  return bytes.length === 0 ? '\\# 0' : `\\# ${bytes.length} ${toHex(bytes)}`;
}

/**
 * Known types in generic form become their presentation form: PowerDNS reads `\#` only for types it has no parser
 * for.
 */
function fromWire(type: string, bytes: Uint8Array, fields: Field[]): string {
  const w = new WireReader(bytes, type);
  const out = fields.map((f) => f.wire(w));
  if (!w.atEnd) w.fail(`${bytes.length - w.pos} octets left over after the record data`);
  return out.join(' ');
}
