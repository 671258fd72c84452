import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { peerOrigins, readKey, resolvePath, sharedKey, type LoadedConfig, probesSchema } from '../config/index.js';
import { startCoordinator, type RunningCoordinator } from '../coordinator/index.js';
import { ReplicaLagReporter } from '../db-triggers/index.js';
import { startPartitions, type RunningPartitions } from '../partitions/index.js';
import {
  BackendMetrics,
  buildZone,
  compileBalanced,
  ControlServer,
  decideRoute,
  describeZoneProblems,
  explain,
  Flusher,
  Handler,
  HttpConnector,
  loadZones,
  Orderings,
  RemoteDecider,
  UnixConnector,
  type Connector,
  type ConnectorDeps,
  type LoadedZone,
} from '../pdns-backend/index.js';
import { DrainStore } from '../shared/drain-store.js';
import { createLogger, type Logger } from '../shared/log.js';
import { createRegistry, serveMetrics } from '../shared/metrics.js';
import { readSecret as readSharedSecret } from '../shared/secrets.js';
import { realTimers } from '../shared/timers.js';
import { contains, parseClient, probeTarget, startHealthSources, type HealthSources, LoadAggregator, LoadReportListener, MetricsTable, Prober, SiteStateTable } from '../site-health/index.js';

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
  metricsTable: MetricsTable;
  prober?: Prober;
  /** Where agents' load reports are received (the bound address). */
  loadReports?: { host: string; port: number };
  stop(): Promise<void>;
}

/** Loads zones and state, then serves PowerDNS; everything is validated before anything listens. */
export async function startSite(loaded: LoadedConfig, opts: SiteOptions = {}): Promise<RunningSite> {
  const { config } = loaded;
  const logger = opts.logger ?? createLogger('backend', config.backend['log-level']);
  const registry = opts.registry ?? createRegistry('multisite_backend_');
  const metrics = new BackendMetrics(registry);

  const siteOrder = config.sites.map((s) => s.name);
  const balanced = config.balanced.map((b) => compileBalanced(b, config.site, siteOrder));
  const zones = serveableZones(loaded, logger, metrics).map((z) => buildZone(z, balanced.filter((b) => zoneOwns(z.name, b.name, config.zones.map((x) => x.name)))));
  const table = new SiteStateTable(siteOrder);
  const drains = new DrainStore(resolvePath(loaded, config.backend['state-file']));
  for (const site of drains.read()) {
    if (siteOrder.includes(site)) table.setDrained(site, true);
    else logger.warn({ site }, 'state file drains a site that is no longer configured; ignored');
  }
  const metricsTable = new MetricsTable(siteOrder);
  const prober = balanced.some((b) => b.policy === 'closest')
    ? new Prober({
        config: config.probes ?? probesSchema.parse({}),
        timers: realTimers,
        clock: Date.now,
        logger,
        onResult: (key, f) => {
          metricsTable.setProbe(config.site, key, f);
          // Sites share probe results in heartbeats: each site's closest answer weighs every site's figures.
          health?.service?.shareProbe({ key, rttMs: f.rttMs, completion: f.completion, ...(f.hops !== undefined ? { hops: f.hops } : {}), method: f.method }, f.at);
        },
      })
    : undefined;
  const probeNets = (config.probes ?? probesSchema.parse({})).networks.map((n) => parseClient(n)!);
  // Our replica's lag rides in every heartbeat (docs/peers.md); unknown with embedded databases.
  // A site whose replica lags beyond max-lag-seconds is demoted in every answer (DESIGN: stale data);
  // an unknown lag demotes nobody.
  const maxLagMs = (config.replication?.['max-lag-seconds'] ?? Infinity) * 1000;
  const markStale = (site: string, lag: number | undefined) => metricsTable.setStale(site, lag !== undefined && lag > maxLagMs);
  const lagReporter = ReplicaLagReporter.applies(loaded)
    ? new ReplicaLagReporter(loaded, { timers: realTimers, logger, onReading: (lag) => markStale(config.site, lag) })
    : undefined;
  let decider: RemoteDecider | undefined;
  const orderings = new Orderings(balanced, table, metricsTable, {
    onUnprobed: (client, key) => {
      if (probeNets.some((n) => contains(n, client))) prober?.request(key, probeTarget(client));
    },
    onRemoteMiss: (b, client, key) => decider?.miss(b, client, key),
  });
  // The peers key signs decided-by requests and replies; every site with peers answers /decide.
  const peersKey = sharedKey(loaded);
  if (peersKey && balanced.some((b) => b.decidedBy)) {
    decider = new RemoteDecider({ site: config.site, peers: peerOrigins(config), key: peersKey, orderings, timers: realTimers, logger, registry });
  }
  const handler = new Handler(zones, table, metrics, orderings);
  const flusher = createFlusher(loaded, logger, metrics, zones.map((z) => z.name));
  watchOrder(table, orderings, logger, flusher);
  const lr = config['load-reports'];
  const loadListener = lr
    ? new LoadReportListener(lr.listen, new LoadAggregator({
        site: config.site,
        key: readKey(loaded, 'load-reports', lr),
        staleAfterMs: lr['stale-after-ms'],
        maxSkewMs: lr['max-skew-ms'],
        timers: realTimers,
        wallNow: Date.now,
        logger,
        registry,
        onAggregate: (f) => (f ? metricsTable.setFigures(config.site, f) : metricsTable.clearFigures(config.site)),
      }))
    : undefined;

  const deps: ConnectorDeps = {
    handleLine: (l) => handler.handleLine(l),
    handle: (r) => handler.handle(r),
    logger,
    metrics,
    maxRequestBytes: config.backend['max-request-bytes'],
  };
  const connectors: Connector[] = [new UnixConnector(resolvePath(loaded, opts.socket ?? config.backend.socket), deps)];
  if (config.backend.http) connectors.push(new HttpConnector(config.backend.http.host, config.backend.http.port, deps));
  const byName = new Map(balanced.map((b) => [b.name, b]));
  const control = new ControlServer(resolvePath(loaded, config.backend.control), {
    table,
    saveDrains: (d) => drains.write(d),
    logger,
    explain: (name, client) => {
      const b = byName.get(name.toLowerCase().endsWith('.') ? name.toLowerCase() : `${name.toLowerCase()}.`);
      if (!b) return undefined;
      const e = explain(b, orderings, table, client);
      logger.debug({ explain: e }, 'explain');
      return e;
    },
  });

  let metricsServer: Server | undefined;
  let loadReports: { host: string; port: number } | undefined;
  let health: HealthSources | undefined;
  let coordinator: RunningCoordinator | undefined;
  let partitions: RunningPartitions | undefined;
  try {
    health = await startHealthSources(loaded, table, logger, registry, realTimers, {
      // Our site's aggregate rides in every heartbeat; each peer's heartbeat brings its site's.
      own: () => {
        const f = metricsTable.figures(config.site);
        const lag = lagReporter?.lagMs;
        return { ...(f?.load !== undefined ? { load: f.load } : {}), ...(f?.responseMs !== undefined ? { responseMs: f.responseMs } : {}), ...(lag !== undefined ? { replicationLagMs: lag } : {}) };
      },
      received: (site, _sender, s) => {
        markStale(site, s.replicationLagMs);
        if (s.load === undefined && s.responseMs === undefined) metricsTable.clearFigures(site);
        else metricsTable.setFigures(site, { ...(s.load !== undefined ? { load: s.load } : {}), ...(s.responseMs !== undefined ? { responseMs: s.responseMs } : {}) });
      },
      probes: (site, entries) => {
        const now = Date.now();
        metricsTable.setProbes(site, entries.map((e) => [e.key, { rttMs: e.rttMs, completion: e.completion, ...(e.hops !== undefined ? { hops: e.hops } : {}), method: e.method, at: now - e.ageMs }]));
      },
    });
    coordinator = startCoordinator(loaded, logger, registry);
    partitions = await startPartitions(loaded, { table, balanced, flush: flusher && ((names) => flusher.flush(names)), reorder: () => orderings.recompute('partition'), logger });
    for (const c of connectors) await c.start();
    await control.start();
    if (loadListener) loadReports = await loadListener.start();
    const routes = [...(health.routes ?? []), ...coordinator.routes, ...partitions.routes, ...(peersKey ? [decideRoute(orderings, peersKey, logger)] : [])];
    decider?.start();
    lagReporter?.start();
    if (config.backend.metrics) metricsServer = await serveMetrics(registry, config.backend.metrics.host, config.backend.metrics.port, routes);
  } catch (err) {
    await Promise.allSettled([...connectors.map((c) => c.stop()), control.stop(), loadListener?.stop(), health?.stop(), coordinator?.stop(), partitions?.stop()]);
    decider?.stop();
    await lagReporter?.stop();
    throw err;
  }
  logger.info(
    { site: config.site, zones: zones.length, balanced: balanced.length, listen: connectors.map((c) => `${c.name}:${c.address}`), drained: table.drainedSites() },
    'backend ready',
  );

  const stopProbes = async () => {
    prober?.stop();
    decider?.stop();
    await lagReporter?.stop();
  };
  return {
    table,
    handler,
    orderings,
    metricsTable,
    ...(prober ? { prober } : {}),
    ...(loadReports ? { loadReports } : {}),
    flusher,
    connectors,
    partitions,
    async stop() {
      await Promise.allSettled([...connectors.map((c) => c.stop()), control.stop(), loadListener?.stop(), health?.stop(), coordinator?.stop(), partitions?.stop()]);
      await stopProbes();
      await flusher?.stop();
      if (metricsServer) await new Promise((r) => metricsServer!.close(r));
      logger.info('backend stopped');
      logger.flush();
    },
  };
}

/**
 * Flush exactly the names whose cacheable answer changed (site states, a load-based order past its
 * hysteresis, a decision from another site). Client-dependent names are never in this list: they
 * carry a scope and PowerDNS does not cache them.
 */
function watchOrder(table: SiteStateTable, orderings: Orderings, logger: Logger, flusher?: Flusher): void {
  orderings.on('changed', (names) => flusher?.flush(names));
  // Registered after the orderings' own listener: lastChanged is this change's.
  table.on('change', ({ sites }) => {
    logger.info({ sites, states: sites.map((s) => table.get(s)?.reason), names: orderings.lastChanged }, 'site state changed');
  });
  orderings.metrics.on('change', () => {
    if (orderings.lastChanged.length > 0) logger.info({ names: orderings.lastChanged }, 'order changed by site figures');
  });
}

function createFlusher(loaded: LoadedConfig, logger: Logger, metrics: BackendMetrics, zones: string[]): Flusher | undefined {
  const api = loaded.config.pdns;
  if (!api) {
    logger.warn('no pdns: section: answers change at once in the backend, but PowerDNS caches keep old answers until their TTL');
    return undefined;
  }
  const apiKey = readSecret(loaded, api['api-key-file'], api['api-key-env']);
  return new Flusher({ url: api.url, serverId: api['server-id'], apiKey, timeoutMs: api['timeout-ms'], retries: api.retries, zones }, logger, metrics);
}

/** Secrets come from a file or the environment, never from the config file or logs (src/shared/secrets.ts). */
function readSecret(loaded: LoadedConfig, file?: string, env?: string): string {
  if (!file && !env) throw new Error('pdns: give api-key-file or api-key-env (PowerDNS api-key) so the backend can flush caches');
  try {
    return readSharedSecret(file ? { file: resolvePath(loaded, file) } : { env }, { text: true }).toString('utf8');
  } catch (err) {
    throw new Error(`pdns.${file ? 'api-key-file' : 'api-key-env'}: ${(err as Error).message}`);
  }
}

/**
 * The zones that load; a bad one is logged (located, as `check-config` prints it) and counted,
 * and the others are served.
 */
function serveableZones(loaded: LoadedConfig, logger: Logger, metrics: BackendMetrics): LoadedZone[] {
  const result = loadZones(loaded);
  const { warnings, errors } = describeZoneProblems(result);
  for (const w of warnings) logger.warn(w);
  for (const e of errors) logger.error(e);
  for (const s of result.skipped) metrics.skippedRecords.inc({ zone: s.zone });
  for (const r of result.refused) metrics.refusedZones.set({ zone: r.zone }, 1);
  return result.zones;
}

/** A balanced name belongs to the most specific configured zone containing it. */
function zoneOwns(zone: string, name: string, zones: string[]): boolean {
  const inside = (z: string) => name === z || name.endsWith(`.${z}`);
  return inside(zone) && !zones.some((z) => z !== zone && z.length > zone.length && inside(z));
}
