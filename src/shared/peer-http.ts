import type { IncomingMessage, ServerResponse } from 'node:http';
import { macHex, macMatches } from './envelope.js';

/**
 * Signed JSON over HTTP between sites' backends (and from the CLI): partition ownership,
 * decided-by requests. The body is HMAC-SHA256'd with the peers' shared key; the MAC travels in
 * one header, so a body is verified exactly as it was sent.
 */

export const MAC_HEADER = 'x-multisite-mac';

export function sign(key: Buffer, body: string): string {
  return macHex(key, body);
}

export function verify(key: Buffer, body: string, mac: string | undefined): boolean {
  return macMatches(key, body, mac);
}

/** POSTs a body, signed when a key is given. */
export async function post(
  url: string,
  body: string,
  key: Buffer | undefined,
  timeoutMs = 1000,
): Promise<{ status: number; body: string; mac?: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers[MAC_HEADER] = sign(key, body);
  const r = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs) });
  const mac = r.headers.get(MAC_HEADER);
  return { status: r.status, body: await r.text(), ...(mac ? { mac } : {}) };
}

/** A request body past the size a route accepts (answer 413). */
export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
  constructor(readonly max: number) {
    super(`body larger than ${max} bytes`);
  }
}

/** Past the limit, this much more is read and dropped so the refusal can still be answered. */
const DISCARD_BYTES = 1024 * 1024;

/**
 * The request body as text; past `max` bytes it is refused with BodyTooLargeError once the body
 * has ended. The excess is read and dropped, not left unread: closing a socket with unread data
 * makes the kernel reset it, and the client would lose the 413. Past `max` + 1 MiB the sender is
 * taken for hostile and the connection closed without a reply. Rejects, never hangs, when the
 * client goes away mid-body.
 */
export function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n <= max) chunks.push(c);
      else if (n > max + DISCARD_BYTES) req.destroy();
    });
    req.on('end', () =>
      n > max ? reject(new BodyTooLargeError(max)) : resolve(Buffer.concat(chunks).toString('utf8')),
    );
    req.on('error', reject);
    req.on('close', () => reject(new Error('the client closed the connection before the body ended')));
  });
}

export type ParsedBody = { ok: true; value: Record<string, unknown> } | { ok: false; error: string };

/**
 * A request body that must be a JSON object. Signed bodies are parsed with this too: a correct
 * signature proves who sent it, not that its shape is right (`null` used to answer 500).
 */
export function parseJsonObject(body: string, example: string): ParsedBody {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return { ok: false, error: `body is not JSON; expected ${example}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return {
      ok: false,
      error: `body must be a JSON object like ${example}, not ${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`}`,
    };
  return { ok: true, value: v as Record<string, unknown> };
}

/** A JSON reply, signed when a key is given; never twice. */
export function reply(res: ServerResponse, status: number, body: unknown, key?: Buffer): void {
  if (res.headersSent) return;
  const text = `${JSON.stringify(body)}\n`;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (key) headers[MAC_HEADER] = sign(key, text);
  res.writeHead(status, headers);
  res.end(text);
}

/**
 * 405 for a method the route does not take. The body is read and dropped first, as readBody does
 * for a 413: answering with it unread makes the kernel reset the connection and the client never
 * sees the 405 (the HTTP fuzz suite found this with a large body).
 */
export function refuseMethod(req: IncomingMessage, res: ServerResponse, allow: string): void {
  afterBody(req, () => {
    res.setHeader('allow', allow);
    reply(res, 405, { error: `method ${req.method ?? '?'} not allowed here; use ${allow}` });
  });
}

/**
 * Runs `answer` once the request body has been read and dropped, unless the client has gone:
 * answering with the body unread makes the close a reset that loses the reply.
 */
export function afterBody(req: IncomingMessage, answer: () => void): void {
  void readBody(req, 0)
    .catch(() => undefined)
    .finally(() => req.socket.destroyed || answer());
}
