import { macHex, macMatches } from '../shared/envelope.js';

/**
 * Requests to the coordinator are signed, not sent with a password: the header
 *   x-multisite-auth: t=<unix ms>,mac=<hex HMAC-SHA256(key, "t\nMETHOD\nPATH\nBODY")>
 * proves the sender holds the key without revealing it; `t` bounds how long a captured request
 * could be replayed (a replayed report only triggers another verification).
 */
export const AUTH_HEADER = 'x-multisite-auth';

function mac(key: Buffer, t: number, method: string, path: string, body: string): string {
  return macHex(key, signedText(t, method, path, body));
}

function signedText(t: number, method: string, path: string, body: string): string {
  return `${t}\n${method.toUpperCase()}\n${path}\n${body}`;
}

export function signRequest(key: Buffer, method: string, path: string, body: string, now = Date.now()): string {
  return `t=${now},mac=${mac(key, now, method, path, body)}`;
}

export type AuthResult = { ok: true } | { ok: false; reason: string };

export function verifyRequest(
  key: Buffer,
  header: string | undefined,
  method: string,
  path: string,
  body: string,
  now: number,
  maxSkewMs: number,
): AuthResult {
  const m = /^t=(\d{1,16}),mac=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return { ok: false, reason: `missing or malformed ${AUTH_HEADER} header` };
  const t = Number(m[1]);
  if (Math.abs(t - now) > maxSkewMs)
    return { ok: false, reason: `request time is ${t - now} ms off (at most ±${maxSkewMs})` };
  if (!macMatches(key, signedText(t, method, path, body), m[2])) return { ok: false, reason: 'bad signature' };
  return { ok: true };
}
