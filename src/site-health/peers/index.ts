import type { Registry } from 'prom-client';
import { readKey, type LoadedConfig } from '../../config/index.js';
import { realTimers, type Timers } from '../../shared/timers.js';
import type { Logger } from '../../shared/log.js';
import type { Route } from '../../shared/metrics.js';
import { refuseMethod } from '../../shared/peer-http.js';
import type { SiteStateTable } from '../state-table.js';
import { type SharedProbe, type SiteSummary } from './codec.js';
import { PeerMetrics } from './metrics.js';
import { probeSite, statusProof } from './probe.js';
import { PeerService, type PeerStatus } from './service.js';
import { UdpTransport } from './transport.js';

export {
  PeerService,
  PEER_SOURCE,
  PEER_POOL_SOURCE,
  type PeerStatus,
  type PeerSite,
  type PeerServiceOptions,
} from './service.js';
export { PeerMachine, type PeerState, type PeerEvent, type PeerEffect, type PeerSnapshot } from './machine.js';
export {
  encode,
  decode,
  WIRE_VERSION,
  MAX_DATAGRAM,
  type Message,
  type Heartbeat,
  type Announce,
  type SiteSummary,
  type RejectReason,
} from './codec.js';
export { ReplayGuard } from './guard.js';
export { probeSite, statusProof, checkProof } from './probe.js';

export interface Peers {
  service?: PeerService;
  /** GET /status, to mount on the backend's metrics server. */
  routes: Route[];
  stop(): Promise<void>;
}

/** Timing the machine runs with, from the config and its documented defaults. */
export function peerTiming(p: NonNullable<LoadedConfig['config']['peers']>) {
  const periodMs = p['period-ms'];
  return {
    periodMs,
    suspectAfterMs: p['suspect-after-ms'] ?? Math.round(periodMs * 1.5),
    recoverPeriods: p['recover-periods'],
    maxSkewMs: p['max-skew-ms'],
    probeTimeoutMs: p['probe-timeout-ms'],
    probeAttempts: p['probe-attempts'],
    /** Every attempt's timeout plus slack for the event loop. */
    probeBudgetMs: p['probe-timeout-ms'] * p['probe-attempts'] + 250,
  };
}

/** This site's own summary from the table: the pool verdict and its "N of M usable" counts. */
export function tableSummary(table: SiteStateTable, site: string): SiteSummary {
  const pool = table.get(site)?.health.pool;
  if (!pool) return { pool: 'unknown' };
  const summary: SiteSummary = { pool: pool.up ? 'up' : 'down' };
  const counts = /(\d+) of (\d+)(?: servers)? usable/.exec(pool.reason);
  if (counts) {
    summary.usable = Number(counts[1]);
    summary.servers = Number(counts[2]);
  }
  return summary;
}

/** Load and response time in heartbeats (docs/policies.md): ours to send, the peers' as received. */
export interface SummaryHooks {
  own(): Pick<SiteSummary, 'load' | 'responseMs' | 'replicationLagMs'>;
  received(site: string, sender: string, summary: SiteSummary): void;
  /** Probe results a peer shared in its heartbeats. */
  probes?(site: string, entries: SharedProbe[]): void;
}

/** Starts heartbeats when `peers:` is configured (a health source of the site-state table). */
export async function startPeers(
  loaded: LoadedConfig,
  table: SiteStateTable,
  logger: Logger,
  registry?: Registry,
  timers: Timers = realTimers,
  hooks?: SummaryHooks,
): Promise<Peers> {
  const { config } = loaded;
  const p = config.peers;
  if (!p) return { routes: [statusRoute(config.site, table)], stop: async () => {} };
  const key = readKey(loaded, 'peers', p);
  const timing = peerTiming(p);
  const node = p.node ?? `${p.listen.host}:${p.listen.port}`;
  const service = new PeerService({
    site: config.site,
    node,
    key,
    peers: config.sites
      .filter((s) => s.name !== config.site)
      .map((s) => ({
        site: s.name,
        heartbeat: s.heartbeat,
        statusUrls: s['status-url'],
        lbAddresses: s['lb-address'],
      })),
    ...timing,
    transport: new UdpTransport(p.listen),
    probe: (target) => probeSite(target, { key, timeoutMs: timing.probeTimeoutMs, attempts: timing.probeAttempts }),
    summary: () => ({ ...tableSummary(table, config.site), ...hooks?.own() }),
    ...(hooks ? { onSummary: (site: string, sender: string, s: SiteSummary) => hooks.received(site, sender, s) } : {}),
    ...(hooks?.probes ? { onProbes: hooks.probes } : {}),
    table,
    timers,
    wallNow: Date.now,
    logger,
    metrics: new PeerMetrics(registry),
  });
  await service.start();
  logger.info(
    {
      site: config.site,
      node,
      listen: `${p.listen.host}:${p.listen.port}`,
      periodMs: timing.periodMs,
      suspectAfterMs: timing.suspectAfterMs,
      recoverPeriods: timing.recoverPeriods,
    },
    'peer heartbeats started',
  );
  return { service, routes: [statusRoute(config.site, table, service, key, node)], stop: () => service.stop() };
}

export interface StatusBody {
  site: string;
  node?: string;
  time: number;
  nonce?: string;
  proof?: string;
  sites: {
    site: string;
    usable: boolean;
    drained: boolean;
    reason: string;
    since: number;
    peer?: PeerStatus;
  }[];
}

/**
 * GET /status[?nonce=HEX]: every site as this backend sees it (usable, why, since when, the peer
 * state and last heartbeat). With a nonce and a key, the answer carries a proof that peers check
 * when they verify this site.
 */
export function statusRoute(
  site: string,
  table: SiteStateTable,
  service?: PeerService,
  key?: Buffer,
  node?: string,
): Route {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/status') return false;
    if (req.method !== 'GET') {
      refuseMethod(req, res, 'GET');
      return true;
    }
    const nonce = url.searchParams.get('nonce') ?? undefined;
    if (nonce !== undefined && !/^[0-9a-f]{16,64}$/.test(nonce)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('nonce: 16 to 64 lower-case hex digits\n');
      return true;
    }
    const peers = new Map((service?.status() ?? []).map((s) => [s.site, s]));
    const body: StatusBody = {
      site,
      time: Date.now(),
      sites: table.snapshot().map((s) => {
        const row: StatusBody['sites'][number] = {
          site: s.site,
          usable: s.usable,
          drained: s.drained,
          reason: s.reason,
          since: s.since,
        };
        const peer = peers.get(s.site);
        if (peer) row.peer = peer;
        return row;
      }),
    };
    if (node) body.node = node;
    if (nonce && key) {
      body.nonce = nonce;
      body.proof = statusProof(key, site, nonce);
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify(body)}\n`);
    return true;
  };
}
