import { ZoneSyntaxError } from './errors.js';

/**
 * PowerDNS 4.7's QType::names: the type names it prints. PowerDNS's remote backend compares our
 * `qtype` strings with the ones it asks for, so a type is named exactly as QType::toString names
 * it, and TYPEnnn otherwise.
 */
const QTYPE_NAMES: Record<number, string> = {
  1: 'A',
  2: 'NS',
  5: 'CNAME',
  6: 'SOA',
  7: 'MB',
  8: 'MG',
  9: 'MR',
  12: 'PTR',
  13: 'HINFO',
  14: 'MINFO',
  15: 'MX',
  16: 'TXT',
  17: 'RP',
  18: 'AFSDB',
  24: 'SIG',
  25: 'KEY',
  28: 'AAAA',
  29: 'LOC',
  33: 'SRV',
  35: 'NAPTR',
  36: 'KX',
  37: 'CERT',
  38: 'A6',
  39: 'DNAME',
  41: 'OPT',
  42: 'APL',
  43: 'DS',
  44: 'SSHFP',
  45: 'IPSECKEY',
  46: 'RRSIG',
  47: 'NSEC',
  48: 'DNSKEY',
  49: 'DHCID',
  50: 'NSEC3',
  51: 'NSEC3PARAM',
  52: 'TLSA',
  53: 'SMIMEA',
  57: 'RKEY',
  59: 'CDS',
  60: 'CDNSKEY',
  61: 'OPENPGPKEY',
  62: 'CSYNC',
  63: 'ZONEMD',
  64: 'SVCB',
  65: 'HTTPS',
  99: 'SPF',
  104: 'NID',
  105: 'L32',
  106: 'L64',
  107: 'LP',
  108: 'EUI48',
  109: 'EUI64',
  249: 'TKEY',
  251: 'IXFR',
  252: 'AXFR',
  253: 'MAILB',
  254: 'MAILA',
  255: 'ANY',
  256: 'URI',
  257: 'CAA',
  32769: 'DLV',
  65400: 'ADDR',
  65401: 'ALIAS',
  65402: 'LUA',
};

/**
 * The mnemonics PowerDNS's zone parser accepts (DNSRecordContent::TypeToNumber: the types with a
 * record class registered). SIG, A6 and friends are in QType::names but not here: PowerDNS
 * rejects them by name, and so do we (TYPEnnn still works).
 */
const MNEMONICS = new Set(
  (
    'A NS CNAME SOA MB MG MR PTR HINFO MINFO MX TXT RP AFSDB KEY AAAA LOC SRV NAPTR KX CERT DNAME APL DS SSHFP ' +
    'IPSECKEY RRSIG NSEC DNSKEY DHCID NSEC3 NSEC3PARAM TLSA SMIMEA RKEY CDS CDNSKEY OPENPGPKEY CSYNC ZONEMD SVCB ' +
    'HTTPS SPF NID L32 L64 LP EUI48 EUI64 URI CAA DLV ALIAS LUA'
  ).split(' '),
);
const CODES = new Map(Object.entries(QTYPE_NAMES).map(([code, name]) => [name, Number(code)]));

/** Query-only and transport types: never data in a zone. */
const META = new Set([0, 41, 249, 250, 251, 252, 253, 254, 255]);
const META_NAMES = new Set(['ANY', 'AXFR', 'IXFR', 'OPT', 'TSIG', 'TKEY', 'MAILA', 'MAILB', 'ENT']);
const CLASSES = new Set(['CH', 'CHAOS', 'HS', 'HESIOD', 'CS', 'NONE']);

export const qtypeName = (code: number): string => QTYPE_NAMES[code] ?? `TYPE${code}`;

/** The type named by `token` (as PowerDNS prints it), or a ZoneSyntaxError saying what is wrong. */
export function recordType(token: string): string {
  const upper = token.toUpperCase();
  if (CLASSES.has(upper) || /^CLASS\d+$/.test(upper))
    throw new ZoneSyntaxError(`class ${upper} is not supported; only IN (or no class)`);
  if (META_NAMES.has(upper)) throw new ZoneSyntaxError(`${upper} is a query type, not record data`);
  if (MNEMONICS.has(upper)) return upper;
  const m = /^TYPE(\d{1,5})$/.exec(upper);
  if (!m || Number(m[1]) > 65535)
    throw new ZoneSyntaxError(`unknown record type '${token}' (write types PowerDNS does not name as TYPEnnn)`);
  const code = Number(m[1]);
  if (META.has(code)) throw new ZoneSyntaxError(`${token} (${qtypeName(code)}) is a query type, not record data`);
  return qtypeName(code);
}

/** The numeric code of a name returned by recordType. */
export const typeCode = (name: string): number => CODES.get(name) ?? Number(name.slice(4));
