import { request } from 'node:http';
import { connect } from 'node:net';

/**
 * A check's outcome: ok (with an optional number, for load), or a precise reason. A failure says
 * how much it proves about the server:
 *   - `certain`: the server's host answered no (connection refused, reset): no second sample needed;
 *   - `local`: the check could not run here (out of file descriptors, memory, buffers, ports):
 *     no evidence about the server at all, so the verdict stays as it was;
 *   - neither: uncertain (a timeout, a wrong status, a missing keyword): counts towards `fall`.
 */
export type Outcome = { ok: true; value?: number } | { ok: false; reason: string; certain?: boolean; local?: boolean };
export type Failure = Extract<Outcome, { ok: false }>;

/** The host refused or reset the connection: its TCP stack says nobody serves there. */
const CERTAIN = new Set(['ECONNREFUSED', 'ECONNRESET']);
/** Resources of this machine ran out: says nothing about the server. */
const LOCAL = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'EADDRNOTAVAIL', 'EAGAIN']);

/** A probe failure with what it proves (see Outcome). */
export class ProbeError extends Error {
  override name = 'ProbeError';
  constructor(
    message: string,
    readonly certain = false,
    readonly local = false,
  ) {
    super(message);
  }
}

/** The failure an error makes, its reason prefixed with what was checked (e.g. the path). */
export function failureOf(err: unknown, suffix = ''): Failure {
  const e = err instanceof ProbeError ? err : probeError(err as NodeJS.ErrnoException);
  return {
    ok: false,
    reason: `${e.message}${suffix}`,
    ...(e.certain ? { certain: true } : {}),
    ...(e.local ? { local: true } : {}),
  };
}

function probeError(err: NodeJS.ErrnoException): ProbeError {
  if (err?.name === 'AbortError') return new ProbeError('aborted');
  const code = err?.code ?? '';
  return new ProbeError(describeError(err), CERTAIN.has(code), LOCAL.has(code));
}

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
    case 'EMFILE':
    case 'ENFILE':
      return `check could not run: out of file descriptors (${err.code})`;
    case 'ENOMEM':
    case 'ENOBUFS':
      return `check could not run: out of memory (${err.code})`;
    case 'EADDRNOTAVAIL':
      return 'check could not run: no local port or address free (EADDRNOTAVAIL)';
    default:
      return err.message || String(err.code ?? err);
  }
}

/** TCP connect only: does something listen? The runner's timeout aborts it through `signal`. */
export function tcpConnect(target: Target, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    let sock: ReturnType<typeof connect>;
    const done = (o: Outcome) => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(o);
    };
    const onAbort = () => done({ ok: false, reason: 'aborted' });
    try {
      sock = connect({ host: target.host, port: target.port });
    } catch (err) {
      resolve(failureOf(err));
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => done({ ok: true }));
    sock.once('error', (err) => done(failureOf(err)));
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
    let req: ReturnType<typeof request>;
    try {
      req = request({
        host: target.host,
        port: target.port,
        path,
        method: 'GET',
        agent: false,
        headers: {
          host: target.hostHeader ?? `${target.host}:${target.port}`,
          'user-agent': 'multisite-agent',
          connection: 'close',
        },
        signal,
      });
    } catch (err) {
      reject(probeError(err as NodeJS.ErrnoException));
      return;
    }
    req.once('error', (err: NodeJS.ErrnoException) => reject(probeError(err)));
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      const finish = () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), truncated });
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
        if (!truncated) reject(probeError(err));
      });
    });
    req.end();
  });
}
