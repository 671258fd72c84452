import { ZoneSyntaxError } from './errors.js';

const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

/**
 * Record TTLs are at most 2^31-1: RFC 2181 §8, and PowerDNS's remote backend reads "ttl" as a
 * signed JSON int, so a larger one would not survive the trip.
 */
export const MAX_TTL = 0x7fffffff;
export const MAX_U32 = 0xffffffff;

/** Could this owner-line token be a TTL? (Type and class names never start with a digit.) */
export const looksLikeTtl = (token: string): boolean => token.charCodeAt(0) >= 0x30 && token.charCodeAt(0) <= 0x39;

/**
 * `3600`, `1h`, `2d`, `1w`, or BIND's compound `1h30m` / `1w2d` (units s m h d w, and PowerDNS's
 * y; case-insensitive) in seconds. PowerDNS itself reads one trailing unit only.
 */
export function parseTtl(text: string, max = MAX_TTL): number {
  if (/^\d{1,9}$/.test(text) && Number(text) <= max) return Number(text); // the common case
  if (!/^(?:\d+|(?:\d+[smhdwy])+)$/i.test(text))
    throw new ZoneSyntaxError(`'${text}' is not a TTL (seconds, or numbers with units s m h d w: 3600, 1h, 1h30m)`);
  let total = 0;
  for (const m of text.matchAll(/(\d+)([a-z]?)/gi)) total += Number(m[1]) * UNIT[(m[2] || 's').toLowerCase()]!;
  if (total > max) throw new ZoneSyntaxError(`'${text}' is ${total} seconds, more than the largest allowed (${max})`);
  return total;
}
