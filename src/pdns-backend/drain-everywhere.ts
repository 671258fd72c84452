import { randomBytes } from 'node:crypto';
import type { Logger } from '../shared/log.js';
import type { Route } from '../shared/metrics.js';
import { setNewest } from '../shared/bounded-map.js';
import { MAC_HEADER, parseJsonObject, post, readBody, refuseMethod, reply, verify } from '../shared/peer-http.js';
import type { SiteStateTable } from '../site-health/index.js';

/**
 * `multisite site drain SITE --everywhere`: the operator's site drains SITE in its own answers and
 * asks every peer's backend to do the same, over the signed peer channel (POST /site-drain on the
 * backend's peer listener, HMAC with the peers key). A request carries its time and a nonce: one
 * older or newer than `maxSkewMs` is refused, and a nonce is taken once, so a captured request
 * cannot be replayed to drain a site again after the operator undrained it.
 */

export const DRAIN_PATH = '/site-drain';

export interface DrainRequest {
  /** The site whose operator asked. */
  from: string;
  site: string;
  drained: boolean;
  /** Sender's wall clock, ms. */
  at: number;
  nonce: string;
}

/** One site's outcome of a drain everywhere. */
export type DrainResult = { site: string; ok: true; changed: boolean } | { site: string; ok: false; error: string };

export interface DrainRelayOptions {
  site: string;
  /** Every site's peer-HTTP origins (sites[].status-url); our own is skipped. */
  peers: Map<string, string[]>;
  key: Buffer;
  table: SiteStateTable;
  /** Applies a drain here (persists it and logs it): true when it changed something. */
  apply(site: string, drained: boolean, by: string): boolean;
  logger: Logger;
  /** Signed requests further off our clock are refused (peers.max-skew-ms). */
  maxSkewMs: number;
  timeoutMs?: number;
  clock?: () => number;
}

const SEEN_NONCES = 10_000;

export class DrainRelay {
  private readonly seen = new Map<string, number>();
  private readonly clock: () => number;

  constructor(private readonly o: DrainRelayOptions) {
    this.clock = o.clock ?? Date.now;
  }

  /** Asks every peer site to drain (or undrain) `site`; never throws, one result per peer. */
  async everywhere(site: string, drained: boolean): Promise<DrainResult[]> {
    const peers = [...this.o.peers].filter(([name]) => name !== this.o.site);
    return Promise.all(peers.map(([name, origins]) => this.ask(name, origins, site, drained)));
  }

  private async ask(peer: string, origins: string[], site: string, drained: boolean): Promise<DrainResult> {
    const req: DrainRequest = {
      from: this.o.site,
      site,
      drained,
      at: this.clock(),
      nonce: randomBytes(12).toString('hex'),
    };
    const body = JSON.stringify(req);
    let error = `site ${peer} has no status-url to reach it by`;
    for (const origin of origins) {
      try {
        const r = await post(`${origin}${DRAIN_PATH}`, body, this.o.key, this.o.timeoutMs ?? 2000);
        if (!verify(this.o.key, r.body, r.mac))
          throw new Error(`HTTP ${r.status}, reply not signed with the peers key`);
        const v = JSON.parse(r.body) as { ok?: boolean; changed?: boolean; error?: string; nonce?: string };
        if (v.nonce !== req.nonce) throw new Error('reply is for another request (nonce differs)');
        if (r.status !== 200 || v.ok !== true) throw new Error(v.error ?? `HTTP ${r.status}`);
        return { site: peer, ok: true, changed: v.changed === true };
      } catch (err) {
        error = `${origin}: ${(err as Error).message}`;
      }
    }
    this.o.logger.warn({ peer, site, drained, error }, 'drain everywhere: a peer did not take it');
    return { site: peer, ok: false, error };
  }

  /** POST /site-drain: a peer's signed request in, applied here, a signed reply out. */
  route(): Route {
    return (req, res) => {
      if ((req.url ?? '').split('?')[0] !== DRAIN_PATH) return false;
      if (req.method !== 'POST') {
        refuseMethod(req, res, 'POST');
        return true;
      }
      readBody(req, 4096).then(
        (body) => {
          const mac = req.headers[MAC_HEADER];
          if (!verify(this.o.key, body, typeof mac === 'string' ? mac : undefined))
            return reply(res, 403, { error: 'not signed with the peers key' });
          const { status, out } = this.take(body);
          reply(res, status, out, this.o.key);
        },
        (err: Error) => reply(res, 413, { error: err.message }),
      );
      return true;
    };
  }

  /** Checks a signed request (shape, time, nonce, site) and applies it. */
  private take(body: string): { status: number; out: Record<string, unknown> } {
    const parsed = parseJsonObject(body, '{"from", "site", "drained", "at", "nonce"}');
    if (!parsed.ok) return { status: 400, out: { ok: false, error: parsed.error } };
    const r = parsed.value as Partial<DrainRequest>;
    const nonce = typeof r.nonce === 'string' ? r.nonce : undefined;
    const refuse = (status: number, error: string) => ({ status, out: { ok: false, error, nonce } });
    if (typeof r.from !== 'string' || typeof r.site !== 'string' || typeof r.drained !== 'boolean')
      return refuse(400, 'expected {"from": SITE, "site": SITE, "drained": true|false, "at": MS, "nonce": TEXT}');
    if (typeof r.at !== 'number' || !nonce || nonce.length > 64)
      return refuse(400, '"at" (ms) and "nonce" are required');
    const off = r.at - this.clock();
    if (Math.abs(off) > this.o.maxSkewMs)
      return refuse(400, `request time is ${off} ms off this site's clock (at most ±${this.o.maxSkewMs})`);
    if (this.seen.has(nonce)) return refuse(409, 'this request was already taken (replayed nonce)');
    setNewest(this.seen, nonce, r.at, SEEN_NONCES);
    if (!this.o.table.sites.includes(r.site)) return refuse(404, `site '${r.site}' is not configured here`);
    const changed = this.o.apply(r.site, r.drained, `site ${r.from}`);
    return { status: 200, out: { ok: true, changed, nonce } };
  }
}
