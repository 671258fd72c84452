import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The one signature on everything sent between sites, agents and the coordinator: HMAC-SHA256
 * with the shared key over the exact bytes sent. Each message type keeps its own framing (UDP
 * datagrams carry the MAC as their last 32 bytes, HTTP as a hex header), but signs and checks
 * through these functions, so a key means the same everywhere and every check is timing-safe.
 */

export const MAC_BYTES = 32;

export function mac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function macHex(key: Buffer, data: string | Buffer): string {
  return mac(key, data).toString('hex');
}

/** True when `given` (32 bytes, or 64 lower-case hex digits) is the MAC of `data`; false for anything malformed. */
export function macMatches(key: Buffer, data: string | Buffer, given: Buffer | string | undefined): boolean {
  if (given === undefined) return false;
  if (typeof given === 'string' && !/^[0-9a-f]{64}$/.test(given)) return false;
  const bytes = typeof given === 'string' ? Buffer.from(given, 'hex') : given;
  return bytes.length === MAC_BYTES && timingSafeEqual(mac(key, data), bytes);
}
