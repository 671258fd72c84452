import { request } from 'node:http';
import { connect } from 'node:net';

/** A check's outcome: ok (with an optional number, for load), or a precise reason. */
export type Outcome = { ok: true; value?: number } | { ok: false; reason: string };

export interface Target {
  host: string;
  port: number;
  hostHeader?: string;
}

/** Connection errors in the words an operator reads in HAProxy's stats page. */
export function describeError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'name not resolved';
    case 'EPIPE':
      return 'connection closed';
    default:
      return err.message || String(err.code ?? err);
  }
}

/** TCP connect only: does something listen? The runner's timeout aborts it through `signal`. */
export function tcpConnect(target: Target, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = connect({ host: target.host, port: target.port });
    const done = (o: Outcome) => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(o);
    };
    const onAbort = () => done({ ok: false, reason: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done({ ok: true }));
    sock.once('error', (err) => done({ ok: false, reason: describeError(err) }));
  });
}

export interface HttpResult {
  status: number;
  /** At most maxBytes of the body. */
  body: string;
  truncated: boolean;
}

/**
 * GET `path` without keep-alive or an agent pool (each check is its own connection, like HAProxy's),
 * reading at most `maxBytes` of the body. Rejects with a precise reason.
 */
export function httpGet(target: Target, path: string, maxBytes: number, signal: AbortSignal): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: target.host,
      port: target.port,
      path,
      method: 'GET',
      agent: false,
      headers: { host: target.hostHeader ?? `${target.host}:${target.port}`, 'user-agent': 'multisite-agent', connection: 'close' },
      signal,
    });
    req.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.name === 'AbortError' ? 'aborted' : describeError(err))));
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      const finish = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), truncated });
      res.on('data', (d: Buffer) => {
        if (truncated) return;
        const room = maxBytes - size;
        if (d.length >= room) {
          chunks.push(d.subarray(0, room));
          size = maxBytes;
          truncated = true;
          finish();
          req.destroy();
          return;
        }
        chunks.push(d);
        size += d.length;
      });
      res.once('end', () => {
        if (!truncated) finish();
      });
      res.once('error', (err: NodeJS.ErrnoException) => {
        if (!truncated) reject(new Error(describeError(err)));
      });
    });
    req.end();
  });
}
