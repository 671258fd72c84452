import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';

/**
 * Verification of a suspect peer: its backends' status endpoints over HTTP (one must answer with
 * a proof that it holds the shared key and stands in that site) and a TCP connect to its load
 * balancer addresses (one must accept). Every configured kind must pass; an attempt that fails is
 * retried up to `attempts` times, each bounded by `timeoutMs`.
 */

export interface ProbeTarget {
  site: string;
  statusUrls: string[];
  lbAddresses: { host: string; port: number }[];
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
  ms: number;
}

export interface ProbeOptions {
  key: Buffer;
  timeoutMs: number;
  attempts: number;
}

/** The proof a status endpoint gives for a nonce: only a holder of the key can compute it. */
export function statusProof(key: Buffer, site: string, nonce: string): string {
  return createHmac('sha256', key).update(`multisite-status\n${site}\n${nonce}`).digest('hex');
}

export function checkProof(key: Buffer, site: string, nonce: string, proof: unknown): boolean {
  if (typeof proof !== 'string' || !/^[0-9a-f]{64}$/.test(proof)) return false;
  return timingSafeEqual(Buffer.from(statusProof(key, site, nonce), 'hex'), Buffer.from(proof, 'hex'));
}

export async function probeSite(target: ProbeTarget, opts: ProbeOptions): Promise<ProbeResult> {
  const started = performance.now();
  let detail = '';
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    const parts = await Promise.all([
      target.statusUrls.length ? anyOf(target.statusUrls.map((u) => () => statusCheck(u, target.site, opts))) : null,
      target.lbAddresses.length
        ? anyOf(target.lbAddresses.map((a) => () => tcpCheck(a.host, a.port, opts.timeoutMs)))
        : null,
    ]);
    const done = parts.filter((p): p is { ok: boolean; detail: string } => p !== null);
    detail = done.map((p) => p.detail).join('; ');
    if (done.every((p) => p.ok)) return { ok: true, detail, ms: performance.now() - started };
  }
  return {
    ok: false,
    detail: `${opts.attempts} attempt${opts.attempts > 1 ? 's' : ''} failed: ${detail}`,
    ms: performance.now() - started,
  };
}

/** Runs the checks in parallel; ok as soon as one is ok, else every failure. */
async function anyOf(
  checks: (() => Promise<{ ok: boolean; detail: string }>)[],
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const failures: string[] = [];
    for (const c of checks) {
      c().then((r) => {
        if (r.ok) resolve(r);
        else {
          failures.push(r.detail);
          if (failures.length === checks.length) resolve({ ok: false, detail: failures.join(', ') });
        }
      });
    }
  });
}

function statusCheck(url: string, site: string, opts: ProbeOptions): Promise<{ ok: boolean; detail: string }> {
  const nonce = randomBytes(16).toString('hex');
  const u = new URL(url);
  u.searchParams.set('nonce', nonce);
  return new Promise((resolve) => {
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, detail: `${url}: ${detail}` });
    };
    const req = request(u, {
      method: 'GET',
      agent: false,
      headers: { connection: 'close', 'user-agent': 'multisite-peer-probe' },
    });
    const timer = setTimeout(() => done(false, `no answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    req.once('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.length > 1 << 20) done(false, 'answer too large');
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return done(false, `HTTP ${res.statusCode}`);
        try {
          const json = JSON.parse(body) as { site?: unknown; proof?: unknown };
          if (json.site !== site) return done(false, `answered for site ${String(json.site)}`);
          if (!checkProof(opts.key, site, nonce, json.proof)) return done(false, 'bad proof (not our key)');
          done(true, 'status ok');
        } catch {
          done(false, 'not JSON');
        }
      });
      res.on('error', (err) => done(false, err.message));
    });
    req.end();
  });
}

export function tcpCheck(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok, detail: `tcp ${host}:${port}: ${detail}` });
    };
    const timer = setTimeout(() => done(false, `no connect within ${timeoutMs} ms`), timeoutMs);
    sock.once('connect', () => done(true, 'connected'));
    sock.once('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
  });
}
