import { canonicalName } from './zonefile/names.js';
import { ZoneSyntaxError } from './zonefile/errors.js';

/**
 * Reading remote-backend parameters (PowerDNS 4.7 modules/remotebackend/remotebackend.cc) with
 * every value checked: a wrong type, an empty or oversized value, a zone id that is not an
 * integer, or a name that is not a DNS name becomes a BadRequest, answered with result false and
 * the reason (PowerDNS logs the "log" lines). What PowerDNS itself sends always passes.
 */
export class BadRequest extends Error {
  override name = 'BadRequest';
}

export type Params = Record<string, unknown>;

/**
 * Longest name text accepted before parsing: 255 octets, each at most 4 characters as `\DDD`.
 * Longer text cannot be a DNS name, and parsing it would cost time for nothing.
 */
const MAX_NAME_TEXT = 1024;
/** PowerDNS's QType::toString: a mnemonic ("NAPTR", "TYPE65534"); never longer than this. */
const QTYPE = /^[A-Za-z][A-Za-z0-9]{0,15}$/;
/** Zone ids are C ints in PowerDNS (-1: unknown). */
const INT32_MAX = 2_147_483_647;

/**
 * A DNS name as PowerDNS sends it (DNSName::toString: absolute, `\.` `\\` `\DDD` escapes, case as
 * queried), lower-cased into the form our zones are keyed by. A name without its final dot is
 * taken as absolute, as PowerDNS's own DNSName parser does ("foo" is "foo.").
 */
export function nameParam(p: Params, key: string): string {
  const raw = p[key];
  if (typeof raw !== 'string') throw new BadRequest(`"${key}" must be a string (a DNS name), got ${typeName(raw)}`);
  return canonicalRequestName(raw, key);
}

export function canonicalRequestName(raw: string, key = 'qname'): string {
  if (raw === '') throw new BadRequest(`"${key}" is empty; the root is "."`);
  if (raw.length > MAX_NAME_TEXT)
    throw new BadRequest(`"${key}" is ${raw.length} characters; a DNS name is at most 255 octets`);
  try {
    return canonicalName(raw, '.').toLowerCase();
  } catch (err) {
    if (err instanceof ZoneSyntaxError) throw new BadRequest(`"${key}": ${err.message}`);
    throw err;
  }
}

/** An optional name (PowerDNS sends it; other callers may give the zone by id instead). */
export function optionalNameParam(p: Params, key: string): string | undefined {
  return p[key] === undefined ? undefined : nameParam(p, key);
}

export function qtypeParam(p: Params): string {
  const raw = p.qtype;
  if (typeof raw !== 'string')
    throw new BadRequest(`"qtype" must be a string such as "A" or "ANY", got ${typeName(raw)}`);
  if (!QTYPE.test(raw))
    throw new BadRequest(
      `"qtype" must be a record type mnemonic such as "A", "ANY" or "TYPE65534", got ${preview(raw)}`,
    );
  return raw.toUpperCase();
}

/** A zone id: an integer from -1 (unknown, as PowerDNS sends it) to INT32_MAX; absent means -1. */
export function zoneIdParam(p: Params, key: string): number {
  const raw = p[key];
  if (raw === undefined) return -1;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < -1 || raw > INT32_MAX) {
    throw new BadRequest(
      `"${key}" must be an integer from -1 (unknown) to ${INT32_MAX}, got ${typeof raw === 'number' ? String(raw) : typeName(raw)}`,
    );
  }
  return raw;
}

export function optionalBoolParam(p: Params, key: string): void {
  const raw = p[key];
  if (raw !== undefined && typeof raw !== 'boolean')
    throw new BadRequest(`"${key}" must be true or false, got ${typeName(raw)}`);
}

/** A short free-text parameter (metadata kind, client address); bounded so it can be logged. */
export function optionalTextParam(p: Params, key: string, max = 256): string | undefined {
  const raw = p[key];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw new BadRequest(`"${key}" must be a string, got ${typeName(raw)}`);
  if (raw.length > max) throw new BadRequest(`"${key}" is ${raw.length} characters; at most ${max}`);
  return raw;
}

/** `parameters`: an object; absent is an empty one (a method without parameters). */
export function paramsOf(parameters: unknown): Params {
  if (parameters === undefined) return {};
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    throw new BadRequest(`"parameters" must be an object, got ${typeName(parameters)}`);
  }
  return parameters as Params;
}

function typeName(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

/** A bounded, quoted excerpt of a bad value for the reply's log line. */
function preview(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s);
}
