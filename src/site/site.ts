import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { peerOrigins, resolvePath, sharedKey, statusPageKey, type LoadedConfig } from '../config/index.js';
import { startCoordinator, type RunningCoordinator } from '../coordinator/index.js';
import { agentRequest } from '../haproxy-agent/index.js';
import { startPartitions, type RunningPartitions } from '../partitions/index.js';
import {
  BackendMetrics,
  balancedNames,
  createBackend,
  decideRoute,
  DrainRelay,
  drainSite,
  FailoverLog,
  Orderings,
  RemoteDecider,
  registerAnswerMetrics,
  type Backend,
  type BalancedName,
  type Connector,
  type Flusher,
  type Handler,
} from '../pdns-backend/index.js';
import { DrainStore } from '../shared/drain-store.js';
import { createLogger, type Logger } from '../shared/log.js';
import { createRegistry, serveMetrics, type Route } from '../shared/metrics.js';
import { realTimers } from '../shared/timers.js';
import {
  SiteStateTable,
  startHealthSources,
  type MetricsTable,
  type PoolCause,
  type Prober,
} from '../site-health/index.js';
import { statusPageFor, type SiteView, type StatusPage } from '../status-page/index.js';
import { SiteFigures } from './figures.js';

/**
 * The one composition root: one site's daemon (`multisite backend`). It reads the config, builds
 * the site-state table and the figures, and wires the parts into it: site health (pools, peer
 * heartbeats) and replication lag feed the table and figures; the DNS backend orders answers from
 * them; the coordinator and partitions run beside them. Everything is validated before anything
 * listens, and stop() stops the parts in reverse.
 */

export interface SiteOptions {
  /** Overrides backend.socket. */
  socket?: string;
  logger?: Logger;
  registry?: Registry;
}

export interface RunningSite {
  table: SiteStateTable;
  handler: Handler;
  flusher?: Flusher;
  connectors: Connector[];
  /** Partition ownership (issue 9), when `partitions:` is configured. */
  partitions?: RunningPartitions;
  /** Live order of every balanced name, and the figures it reads (load, response time, probes). */
  orderings: Orderings;
  /** The last failovers and recoveries with their stage times (GET /failovers, the status page). */
  failovers: FailoverLog;
  metricsTable: MetricsTable;
  prober?: Prober;
  /** Where agents' load reports are received (the bound address). */
  loadReports?: { host: string; port: number };
  stop(): Promise<void>;
}

/** The parts of a site, built (validated) but not yet started. */
interface SiteParts {
  loaded: LoadedConfig;
  logger: Logger;
  registry: Registry;
  balanced: BalancedName[];
  table: SiteStateTable;
  figures: SiteFigures;
  orderings: Orderings;
  failovers: FailoverLog;
  backend: Backend;
  decider?: RemoteDecider;
  peersKey?: Buffer;
  /** `site drain --everywhere`: asks the peers, and takes their requests (POST /site-drain). */
  relay?: DrainRelay;
  /** The control socket's drain path, shared with the status page. */
  drain(site: string, drained: boolean, by: string): boolean;
  /** The status page's actions key, read with every other key before anything starts. */
  statusPageKey?: Buffer;
}

/** The parts that run once started; each stops cleanly when the site stops. */
interface Started {
  health?: Awaited<ReturnType<typeof startHealthSources>>;
  coordinator?: RunningCoordinator;
  partitions?: RunningPartitions;
  loadReports?: { host: string; port: number };
  metricsServer?: Server;
  statusPage?: StatusPage;
}

/** Loads zones and state, then serves PowerDNS; everything is validated before anything listens. */
export async function startSite(loaded: LoadedConfig, opts: SiteOptions = {}): Promise<RunningSite> {
  const parts = buildSite(loaded, opts);
  const started: Started = {};
  try {
    await startParts(parts, started);
  } catch (err) {
    await stopParts(parts, started);
    throw err;
  }
  const { config } = loaded;
  parts.logger.info(
    {
      site: config.site,
      zones: parts.backend.zones,
      balanced: parts.balanced.length,
      listen: parts.backend.connectors.map((c) => `${c.name}:${c.address}`),
      drained: parts.table.drainedSites(),
    },
    'backend ready',
  );
  return {
    table: parts.table,
    handler: parts.backend.handler,
    orderings: parts.orderings,
    failovers: parts.failovers,
    metricsTable: parts.figures.table,
    ...(parts.figures.prober ? { prober: parts.figures.prober } : {}),
    ...(started.loadReports ? { loadReports: started.loadReports } : {}),
    flusher: parts.backend.flusher,
    connectors: parts.backend.connectors,
    partitions: started.partitions,
    async stop() {
      await stopParts(parts, started);
      parts.logger.info('backend stopped');
      parts.logger.flush();
    },
  };
}

function buildSite(loaded: LoadedConfig, opts: SiteOptions): SiteParts {
  const { config } = loaded;
  const logger = opts.logger ?? createLogger('backend', config.backend['log-level']);
  const registry = opts.registry ?? createRegistry('multisite_backend_');
  const metrics = new BackendMetrics(registry);
  const balanced = balancedNames(loaded);
  const table = new SiteStateTable(config.sites.map((s) => s.name));
  const drains = restoreDrains(loaded, table, logger);
  const figures = new SiteFigures(loaded, balanced, logger, registry);
  let decider: RemoteDecider | undefined;
  const orderings = new Orderings(balanced, table, figures.table, {
    onUnprobed: figures.onUnprobed(loaded),
    onRemoteMiss: (b, client, key) => decider?.miss(b, client, key),
  });
  registerAnswerMetrics(registry, orderings);
  const failovers = new FailoverLog({ registry });
  failovers.attach(table);
  // The peers key signs decided-by requests and replies; every site with peers answers /decide.
  const peersKey = sharedKey(loaded);
  const pageKey = statusPageKey(loaded);
  if (peersKey && balanced.some((b) => b.decidedBy)) {
    const peers = peerOrigins(config);
    decider = new RemoteDecider({
      site: config.site,
      peers,
      key: peersKey,
      orderings,
      timers: realTimers,
      logger,
      registry,
    });
  }
  const saveDrains = (d: string[]) => drains.write(d);
  const drain = (site: string, drained: boolean, by: string) =>
    drainSite({ site: config.site, table, saveDrains, logger }, site, drained, by);
  const relay =
    peersKey &&
    new DrainRelay({
      site: config.site,
      peers: peerOrigins(config),
      key: peersKey,
      table,
      apply: drain,
      logger,
      maxSkewMs: config.peers!['max-skew-ms'],
    });
  const backend = createBackend(loaded, {
    balanced,
    table,
    orderings,
    metrics,
    logger,
    saveDrains,
    failovers,
    ...(relay ? { drainEverywhere: (site: string, drained: boolean) => relay.everywhere(site, drained) } : {}),
    ...(opts.socket ? { socket: opts.socket } : {}),
  });
  return {
    loaded,
    logger,
    registry,
    balanced,
    table,
    figures,
    orderings,
    failovers,
    backend,
    ...(decider ? { decider } : {}),
    ...(peersKey ? { peersKey } : {}),
    ...(relay ? { relay } : {}),
    drain,
    ...(pageKey ? { statusPageKey: pageKey } : {}),
  };
}

/** Drained sites survive a restart (backend.state-file). */
function restoreDrains(loaded: LoadedConfig, table: SiteStateTable, logger: Logger): DrainStore {
  const drains = new DrainStore(resolvePath(loaded, loaded.config.backend['state-file']));
  const sites = loaded.config.sites.map((s) => s.name);
  for (const site of drains.read()) {
    if (sites.includes(site)) table.setDrained(site, true);
    else logger.warn({ site }, 'state file drains a site that is no longer configured; ignored');
  }
  return drains;
}

/** Health sources first (they fill the table), then what reads it, then what serves it. */
async function startParts(p: SiteParts, s: Started): Promise<void> {
  const { loaded, logger, registry, figures, orderings, backend } = p;
  const withCause = (site: string, cause: PoolCause | undefined, apply: () => void) =>
    p.failovers.withCause(site, cause, apply);
  s.health = await startHealthSources(
    loaded,
    p.table,
    logger,
    registry,
    realTimers,
    figures.heartbeatHooks(),
    withCause,
  );
  figures.health = s.health;
  s.coordinator = startCoordinator(loaded, logger, registry);
  const flush = backend.flusher && ((names: string[]) => void backend.flusher!.flush(names));
  const reorder = () => orderings.recompute('partition');
  s.partitions = await startPartitions(loaded, { table: p.table, balanced: p.balanced, flush, reorder, logger });
  await backend.start();
  const bound = await figures.start();
  if (bound) s.loadReports = bound;
  p.decider?.start();
  const routes: Route[] = [
    ...(s.health.routes ?? []),
    ...s.coordinator.routes,
    ...s.partitions.routes,
    ...(p.peersKey ? [decideRoute(orderings, p.peersKey, logger)] : []),
    ...(p.relay ? [p.relay.route()] : []),
    p.failovers.route(),
  ];
  s.statusPage = statusPageFor(loaded, p.statusPageKey, pageView(p, s));
  routes.push(...(s.statusPage?.routes ?? []));
  const m = loaded.config.backend.metrics;
  if (m) s.metricsServer = await serveMetrics(registry, m.host, m.port, routes);
}

/** What the status page reads and does: the site's live parts, and the agent's drain path when `agent:` is here. */
function pageView(p: SiteParts, s: Started): SiteView {
  const { loaded, table, orderings, balanced, drain, logger, figures, failovers } = p;
  const agent = loaded.config.agent;
  const control = agent && resolvePath(loaded, agent.control);
  // The agent's control socket, as `multisite agent drain` uses it: the same path whether the agent
  // runs in this process (`multisite run`) or beside it; the drain persists in agent.state-file.
  const drainServer = async (server: string, drained: boolean, by: string) => {
    const r = await agentRequest(control!, { cmd: drained ? 'drain' : 'undrain', server });
    if (!r.ok) throw new Error(r.error);
    logger.info({ server, drained, by }, `server ${drained ? 'drained' : 'undrained'} through the agent`);
    return r.changed === true;
  };
  return {
    table,
    orderings,
    balanced,
    metricsTable: figures.table,
    failovers,
    ownLagMs: () => figures.lagReporter?.lagMs,
    replicationFigures: () => figures.lagReporter?.status,
    drain,
    ...(control ? { servers: agent.servers.map((x) => x.name), drainServer } : {}),
    logger,
    ...(s.health ? { health: s.health } : {}),
    ...(s.partitions ? { partitions: s.partitions } : {}),
  };
}

async function stopParts(p: SiteParts, s: Started): Promise<void> {
  await Promise.allSettled([
    p.backend.stop(),
    p.figures.loadListener?.stop(),
    s.health?.stop(),
    s.coordinator?.stop(),
    s.partitions?.stop(),
  ]);
  p.decider?.stop();
  p.orderings.close();
  s.statusPage?.stop();
  await p.figures.stop();
  await p.backend.stopFlusher();
  if (s.metricsServer) await new Promise((r) => s.metricsServer!.close(r));
}
