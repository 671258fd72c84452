import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Requests to the coordinator are signed, not sent with a password: the header
 *   x-multisite-auth: t=<unix ms>,mac=<hex HMAC-SHA256(key, "t\nMETHOD\nPATH\nBODY")>
 * proves the sender holds the key without revealing it; `t` bounds how long a captured request
 * could be replayed (a replayed report only triggers another verification).
 */
export const AUTH_HEADER = 'x-multisite-auth';

function mac(key: Buffer, t: number, method: string, path: string, body: string): string {
  return createHmac('sha256', key).update(`${t}\n${method.toUpperCase()}\n${path}\n${body}`).digest('hex');
}

export function signRequest(key: Buffer, method: string, path: string, body: string, now = Date.now()): string {
  return `t=${now},mac=${mac(key, now, method, path, body)}`;
}

export type AuthResult = { ok: true } | { ok: false; reason: string };

export function verifyRequest(key: Buffer, header: string | undefined, method: string, path: string, body: string, now: number, maxSkewMs: number): AuthResult {
  const m = /^t=(\d{1,16}),mac=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return { ok: false, reason: `missing or malformed ${AUTH_HEADER} header` };
  const t = Number(m[1]);
  if (Math.abs(t - now) > maxSkewMs) return { ok: false, reason: `request time is ${t - now} ms off (at most ±${maxSkewMs})` };
  const want = Buffer.from(mac(key, t, method, path, body), 'hex');
  if (!timingSafeEqual(want, Buffer.from(m[2]!, 'hex'))) return { ok: false, reason: 'bad signature' };
  return { ok: true };
}
