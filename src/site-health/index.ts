import type { Registry } from 'prom-client';
import { resolvePath, type LoadedConfig } from '../config/index.js';
import { EventStream, RuntimeClient } from '../haproxy/index.js';
import { realTimers, type Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import { PoolWatcher, type LoadBalancerView, type PoolCause, type StreamHandlers } from './haproxy-pool.js';
import { startPeers, type Peers, type SummaryHooks } from './peers/index.js';
import type { SiteStateTable } from './state-table.js';

export { SiteStateTable, UnknownSiteError, type SiteState, type StateChange } from './state-table.js';
export { PoolWatcher, poolVerdict, type LoadBalancerView, type PoolCause, type PoolServer } from './haproxy-pool.js';
export { type ClientNet, commonBits, contains, parseClient, probeBits, probeKey, probeTarget } from './client.js';
export { LoadAggregator, LoadReportListener } from './load-reports.js';
export { MetricsTable, type ProbeFigures, type SiteFigures } from './metrics-table.js';
export { tcpCheck } from './peers/probe.js';
export type { StatusBody, SummaryHooks } from './peers/index.js';
export { sitesSection } from './peers/cli-status.js';
export { Prober } from './probes.js';

export interface HealthSources {
  stop(): Promise<void>;
  /** HTTP routes of the sources (GET /status for peers' probes), mounted on the metrics server. */
  routes?: Peers['routes'];
  /** The heartbeat service, when `peers:` is configured (shares our probe results). */
  service?: Peers['service'];
  /** The local pool as last read on each load balancer, when `health:` is configured. */
  pool?(): LoadBalancerView[];
  /** Calls `fn` after each read in which some server's row changed (when `health:` is configured). */
  onPoolChange?(fn: () => void): void;
}

/** The health source name of the local pool in the site-state table. */
export const POOL_SOURCE = 'pool';

/**
 * Runs `apply` (the pool verdict set in the table) knowing the HAProxy event behind it: the
 * backend's record of failover stages takes the event's times (src/pdns-backend/failover-log.ts).
 */
export type PoolCauseHook = (site: string, cause: PoolCause | undefined, apply: () => void) => void;

/**
 * Starts every source that feeds the site-state table (the local HAProxy pools, later peer
 * heartbeats). Called by the backend after the table exists and before it serves.
 * With `health:` configured, the local site is up while its pool has `min-servers` usable servers
 * on at least one of its load balancers (read through the Runtime API at each state-change event
 * HAProxy logs to `event-ring`, and every `safety-interval-ms`; every `interval-ms` while the
 * events cannot be followed).
 */
export async function startHealthSources(
  loaded: LoadedConfig,
  table: SiteStateTable,
  logger: Logger,
  registry: Registry,
  timers: Timers = realTimers,
  hooks?: SummaryHooks,
  withCause: PoolCauseHook = (_site, _cause, apply) => apply(),
): Promise<HealthSources> {
  const peers = await startPeers(loaded, table, logger, registry, timers, hooks);
  const health = loaded.config.health;
  if (!health) return peers;
  const site = loaded.config.site;
  const ring = health['event-ring'];
  const poolListeners: (() => void)[] = [];
  const watcher = new PoolWatcher({
    backend: health.backend,
    clients: health['load-balancers'].map(
      (p) => new RuntimeClient(resolvePath(loaded, p), { timeoutMs: health['timeout-ms'] }),
    ),
    intervalMs: health['interval-ms'],
    safetyIntervalMs: health['safety-interval-ms'],
    ...(ring !== false
      ? { follow: (socket: string, handlers: StreamHandlers) => new EventStream({ socket, ring, timers, ...handlers }) }
      : {}),
    minServers: health['min-servers'],
    timers,
    logger,
    registry,
    onChange: (up, reason, cause) => {
      withCause(site, cause, () => table.setHealth(site, POOL_SOURCE, up, reason));
      // Peers learn the change from the next heartbeat: send it now.
      peers.service?.heartbeatNow();
    },
    onServersChange: () => poolListeners.forEach((fn) => fn()),
  });
  watcher.start();
  logger.info(
    {
      site,
      backend: health.backend,
      loadBalancers: health['load-balancers'],
      eventRing: ring,
      intervalMs: health['interval-ms'],
      safetyIntervalMs: health['safety-interval-ms'],
    },
    'watching the local pool',
  );
  return {
    routes: peers.routes,
    ...(peers.service ? { service: peers.service } : {}),
    pool: () => watcher.views,
    onPoolChange: (fn) => poolListeners.push(fn),
    stop: async () => (watcher.stop(), peers.stop()),
  };
}
