import { request } from 'node:http';
import { tcpCheck } from '../site-health/index.js';

export interface ServerCheck {
  name: string;
  address: { host: string; port: number };
  check: 'http' | 'tcp';
  path: string;
  status: number;
}

export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** Does the server answer? A TCP connect, or an HTTP GET of its health path expecting a status. */
export function checkServer(s: ServerCheck, timeoutMs: number): Promise<CheckResult> {
  if (s.check === 'tcp') return tcpCheck(s.address.host, s.address.port, timeoutMs);
  return new Promise((resolve) => {
    const where = `GET http://${s.address.host}:${s.address.port}${s.path}`;
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, detail: `${where}: ${detail}` });
    };
    const req = request({
      host: s.address.host,
      port: s.address.port,
      path: s.path,
      method: 'GET',
      agent: false,
      headers: { connection: 'close', 'user-agent': 'multisite-coordinator' },
    });
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    req.once('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    req.once('response', (res) => {
      res.resume();
      done(res.statusCode === s.status, `HTTP ${res.statusCode}`);
    });
    req.end();
  });
}

/** Up to `attempts` checks; ok at the first that answers. */
export async function verifyServer(
  s: ServerCheck,
  timeoutMs: number,
  attempts: number,
  check = checkServer,
): Promise<CheckResult> {
  let last: CheckResult = { ok: false, detail: 'not checked' };
  for (let i = 0; i < attempts; i++) {
    last = await check(s, timeoutMs);
    if (last.ok) return last;
  }
  return { ok: false, detail: attempts > 1 ? `${attempts} attempts failed: ${last.detail}` : last.detail };
}
