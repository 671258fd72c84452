import { randomBytes } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import type { Route } from '../shared/metrics.js';
import { MAC_HEADER, parseJsonObject, post, readBody, refuseMethod, reply, verify } from '../shared/peer-http.js';
import type { BalancedName } from './balanced.js';
import type { ClientNet } from '../site-health/index.js';
import type { Orderings } from './orderings.js';

/**
 * `decided-by: SITE`: this backend asks SITE's backend for a name's order (POST /decide on its
 * metrics server, signed with the peers key both ways) and keeps the answer for the name's TTL.
 * A lookup never waits for it: until a decision arrives, or when the peer does not answer within
 * `decided-by-timeout-ms`, our own decision is served (the fallback). Client-independent names are
 * fetched at start and refreshed before they expire; client-dependent ones per client network
 * (/24, /48) on its first query. A failed request is not repeated for `retryMs`.
 */

export interface DecideRequest {
  /** The asking site. */
  site: string;
  name: string;
  /** The client network ("192.0.2.0/24"), for client-dependent names. */
  client?: string;
  /** Echoed in the signed reply: an old reply cannot stand in for a new one. */
  nonce: string;
}

export interface DecideReply {
  name: string;
  nonce: string;
  /** The deciding site's order (usable sites only); empty when it has none (its fallback). */
  sites: string[];
  scope: number;
  ttl: number;
}

export interface DeciderOptions {
  site: string;
  /** Each deciding site's backend origins (its status-url origins), tried in order. */
  peers: ReadonlyMap<string, readonly string[]>;
  key: Buffer;
  orderings: Orderings;
  /** Schedules the sweep. */
  timers: Timers;
  /** The clock the Orderings use (decisions' `until`); default Date.now. */
  clock?: () => number;
  logger: Logger;
  registry?: Registry;
  /** A failed (name, client) is asked again after this long (default 1000 ms). */
  retryMs?: number;
  /** Requests in flight at most (default 64); misses beyond it are served our own decision. */
  maxInFlight?: number;
  /** How often expiry is swept and shared names refreshed (default 500 ms). */
  sweepMs?: number;
}

export class RemoteDecider {
  private readonly inFlight = new Set<string>();
  private readonly failedUntil = new Map<string, number>();
  private readonly requests?: Counter<'site' | 'result'>;
  private timer: unknown;
  private stopped = false;
  /** Shared decisions are refreshed this far (one request timeout at most) ahead of the sweep. */
  private readonly refreshLeadMs: number;

  constructor(private readonly o: DeciderOptions) {
    this.refreshLeadMs = Math.max(0, ...o.orderings.names.filter((b) => b.decidedBy).map((b) => b.decidedByTimeoutMs));
    if (o.registry) {
      this.requests = new Counter({
        name: 'multisite_backend_decided_by_requests_total',
        help: 'decided-by requests to the deciding site, by result',
        labelNames: ['site', 'result'],
        registers: [o.registry],
      });
    }
  }

  start(): void {
    this.sweep();
  }

  private now(): number {
    return (this.o.clock ?? Date.now)();
  }

  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
  }

  /** Orderings' onRemoteMiss: no fresh decision for (name, client network); fetch one, never wait. */
  miss(b: BalancedName, client: ClientNet | undefined, key: string): void {
    if (this.stopped || !b.decidedBy) return;
    const id = `${b.name}|${key}`;
    if (this.inFlight.has(id) || this.inFlight.size >= (this.o.maxInFlight ?? 64)) return;
    const until = this.failedUntil.get(id);
    if (until !== undefined && until > this.now()) return;
    this.inFlight.add(id);
    void this.fetch(b, client, key).finally(() => this.inFlight.delete(id));
  }

  private sweep(): void {
    if (this.stopped) return;
    const within = this.o.sweepMs ?? 500;
    for (const b of this.o.orderings.sweepRemote(within + this.refreshLeadMs)) this.miss(b, undefined, '');
    this.timer = this.o.timers.setTimeout(() => this.sweep(), within);
  }

  private async fetch(b: BalancedName, client: ClientNet | undefined, key: string): Promise<void> {
    const site = b.decidedBy!;
    const request: DecideRequest = {
      site: this.o.site,
      name: b.name,
      nonce: randomBytes(12).toString('hex'),
      ...(client && key ? { client: key } : {}),
    };
    const body = JSON.stringify(request);
    let lastError = 'no status-url';
    for (const origin of this.o.peers.get(site) ?? []) {
      try {
        const r = await post(`${origin}/decide`, body, this.o.key, b.decidedByTimeoutMs);
        if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body.trim().slice(0, 200)}`);
        if (!verify(this.o.key, r.body, r.mac)) throw new Error('reply not signed with the peers key');
        const d = parseReply(r.body, request, this.o.orderings.table.sites);
        this.requests?.inc({ site, result: 'ok' });
        this.failedUntil.delete(`${b.name}|${key}`);
        // An empty order (the deciding site has no usable site) is not a decision: ours stands.
        if (d.sites.length > 0 && !this.stopped)
          this.o.orderings.setRemote(b.name, key, { sites: d.sites, scope: d.scope, until: this.now() + d.ttl * 1000 });
        return;
      } catch (err) {
        lastError =
          (err as Error).name === 'TimeoutError'
            ? `no answer within ${b.decidedByTimeoutMs} ms`
            : (err as Error).message;
        this.requests?.inc({ site, result: (err as Error).name === 'TimeoutError' ? 'timeout' : 'error' });
      }
    }
    this.failedUntil.set(`${b.name}|${key}`, this.now() + (this.o.retryMs ?? 1000));
    this.o.logger.warn(
      { name: b.name, site, client: key || undefined, err: lastError },
      `decided-by ${site}: no decision (${lastError}); our own order is served`,
    );
  }
}

export class DecideReplyError extends Error {
  override name = 'DecideReplyError';
}

/** Checks a reply against its request: same name and nonce, known sites, sane scope and TTL. */
export function parseReply(text: string, req: DecideRequest, sites: readonly string[]): DecideReply {
  let v: Partial<DecideReply>;
  try {
    v = JSON.parse(text) as Partial<DecideReply>;
  } catch {
    throw new DecideReplyError('reply is not JSON');
  }
  if (v.name !== req.name || v.nonce !== req.nonce)
    throw new DecideReplyError('reply is for another request (name or nonce differs)');
  if (
    !Array.isArray(v.sites) ||
    !v.sites.every((s) => typeof s === 'string' && sites.includes(s)) ||
    new Set(v.sites).size !== v.sites.length
  ) {
    throw new DecideReplyError(`reply sites must be distinct known sites (${sites.join(', ')})`);
  }
  if (!Number.isInteger(v.scope) || v.scope! < 0 || v.scope! > 128)
    throw new DecideReplyError('reply scope must be an integer 0..128');
  if (!Number.isInteger(v.ttl) || v.ttl! < 0 || v.ttl! > 86_400)
    throw new DecideReplyError('reply ttl must be an integer 0..86400');
  return v as DecideReply;
}

/**
 * POST /decide at the deciding site: a signed DecideRequest in, its own order for the name (and
 * client network) out, signed. Names it does not serve get 404; unsigned requests 403.
 */
export function decideRoute(orderings: Orderings, key: Buffer, logger: Logger): Route {
  const byName = new Map(orderings.names.map((b) => [b.name, b]));
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/decide') return false;
    if (req.method !== 'POST') {
      refuseMethod(req, res, 'POST');
      return true;
    }
    readBody(req, 4096)
      .then(
        (body) => {
          const mac = req.headers[MAC_HEADER];
          if (!verify(key, body, typeof mac === 'string' ? mac : undefined))
            return reply(res, 403, { error: 'not signed with the peers key' });
          const parsed = parseJsonObject(body, '{"site", "name", "nonce", "client"?}');
          if (!parsed.ok) return reply(res, 400, { error: parsed.error });
          const r = parsed.value as Partial<DecideRequest>;
          if (
            typeof r.name !== 'string' ||
            typeof r.nonce !== 'string' ||
            (r.client !== undefined && typeof r.client !== 'string')
          ) {
            return reply(res, 400, { error: 'expected {"site", "name", "nonce", "client"?}' });
          }
          const b = byName.get(r.name.toLowerCase());
          if (!b) return reply(res, 404, { error: `'${r.name}' is not a balanced name here` });
          const d =
            b.dependence === 'client' && r.client
              ? orderings.forClient(b, r.client)
              : { decision: orderings.sharedDecision(b), scope: 0 };
          const out: DecideReply = {
            name: r.name,
            nonce: r.nonce,
            sites: d.decision.kind === 'sites' ? d.decision.sites : [],
            scope: d.scope,
            ttl: b.ttl,
          };
          return reply(res, 200, out, key);
        },
        (err: Error) => reply(res, 413, { error: err.message }),
      )
      .catch((err: Error) => {
        logger.error({ err }, 'decide request failed');
        reply(res, 500, { error: 'internal error' });
      });
    return true;
  };
}
