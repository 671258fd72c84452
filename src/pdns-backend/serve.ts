import { resolvePath, type LoadedConfig } from '../config/index.js';
import type { Logger } from '../shared/log.js';
import { readSecret } from '../shared/secrets.js';
import type { SiteStateTable } from '../site-health/index.js';
import { compileBalanced, type BalancedName } from './balanced.js';
import type { Connector, ConnectorDeps } from './connectors/connector.js';
import { HttpConnector } from './connectors/http.js';
import { UnixConnector } from './connectors/unix.js';
import { ControlServer } from './control.js';
import type { DrainResult } from './drain-everywhere.js';
import { explain } from './explain.js';
import type { FailoverLog } from './failover-log.js';
import { Flusher } from './flusher.js';
import { Handler } from './handler.js';
import type { BackendMetrics } from './metrics.js';
import type { Orderings } from './orderings.js';
import { buildZone } from './zone-index.js';
import { describeZoneProblems, loadZones, type LoadedZone } from './zones.js';

/** The configured balanced names, compiled for this site. */
export function balancedNames(loaded: LoadedConfig): BalancedName[] {
  const { config } = loaded;
  const siteOrder = config.sites.map((s) => s.name);
  return config.balanced.map((b) => compileBalanced(b, config.site, siteOrder));
}

export interface BackendDeps {
  balanced: BalancedName[];
  table: SiteStateTable;
  orderings: Orderings;
  metrics: BackendMetrics;
  logger: Logger;
  /** Overrides backend.socket. */
  socket?: string;
  /** Persists the drained sites (the control socket's drain and undrain). */
  saveDrains(drained: string[]): void;
  /** `drain SITE --everywhere` (DrainRelay.everywhere), when peers are configured. */
  drainEverywhere?(site: string, drained: boolean): Promise<DrainResult[]>;
  /** Told of each change of answers and its flush, for the failover stages. */
  failovers?: FailoverLog;
}

/** The DNS backend of one site: zones, PowerDNS connectors, cache flushes and the control socket. */
export interface Backend {
  handler: Handler;
  flusher?: Flusher;
  connectors: Connector[];
  zones: number;
  start(): Promise<void>;
  /** Stops listening; the flusher is stopped by stopFlusher, after the parts that still flush. */
  stop(): Promise<void>;
  stopFlusher(): Promise<void>;
}

/** Builds the backend (nothing listens yet); zones that do not load are logged, counted and left out. */
export function createBackend(loaded: LoadedConfig, deps: BackendDeps): Backend {
  const { config } = loaded;
  const { balanced, table, orderings, metrics, logger } = deps;
  const zoneNames = config.zones.map((x) => x.name);
  const zones = serveableZones(loaded, logger, metrics).map((z) =>
    buildZone(
      z,
      balanced.filter((b) => zoneOwns(z.name, b.name, zoneNames)),
    ),
  );
  const handler = new Handler(zones, table, metrics, orderings);
  const zoneList = zones.map((z) => z.name);
  const dnsdist = createDnsdistFlusher(loaded, logger, metrics, zoneList);
  const flusher = createFlusher(loaded, logger, metrics, zoneList, dnsdist);
  watchOrder(table, orderings, logger, flusher ?? dnsdist, deps.failovers);
  // Client-dependent answers are cached only in front of PowerDNS (they carry a scope).
  if (dnsdist) orderings.on('clientChanged', (names) => void dnsdist.flush(names));
  const connectorDeps: ConnectorDeps = {
    handleLine: (l) => handler.handleLine(l),
    handle: (r) => handler.handle(r),
    logger,
    metrics,
    maxRequestBytes: config.backend['max-request-bytes'],
  };
  const connectors: Connector[] = [
    new UnixConnector(resolvePath(loaded, deps.socket ?? config.backend.socket), connectorDeps),
  ];
  if (config.backend.http)
    connectors.push(new HttpConnector(config.backend.http.host, config.backend.http.port, connectorDeps));
  const control = controlServer(loaded, deps);
  return {
    handler,
    ...(flusher ? { flusher } : {}),
    connectors,
    zones: zones.length,
    async start() {
      for (const c of connectors) await c.start();
      await control.start();
    },
    async stop() {
      await Promise.allSettled([...connectors.map((c) => c.stop()), control.stop()]);
    },
    async stopFlusher() {
      await flusher?.stop();
      await dnsdist?.stop();
    },
  };
}

/** `multisite site drain|undrain|status` and `multisite explain`. */
function controlServer(loaded: LoadedConfig, deps: BackendDeps): ControlServer {
  const { balanced, table, orderings, logger } = deps;
  const byName = new Map(balanced.map((b) => [b.name, b]));
  return new ControlServer(resolvePath(loaded, loaded.config.backend.control), {
    site: loaded.config.site,
    table,
    saveDrains: (d) => deps.saveDrains(d),
    logger,
    ...(deps.drainEverywhere ? { drainEverywhere: deps.drainEverywhere } : {}),
    explain: (name, client) => {
      const b = byName.get(name.toLowerCase().endsWith('.') ? name.toLowerCase() : `${name.toLowerCase()}.`);
      if (!b) return undefined;
      const e = explain(b, orderings, table, client);
      logger.debug({ explain: e }, 'explain');
      return e;
    },
  });
}

/**
 * Flush exactly the names whose cacheable answer changed (site states, a load-based order past its
 * hysteresis, a decision from another site). Client-dependent names are never in this list: they
 * carry a scope and PowerDNS does not cache them (dnsdist does: see 'clientChanged' above).
 */
function watchOrder(
  table: SiteStateTable,
  orderings: Orderings,
  logger: Logger,
  flusher?: Flusher,
  failovers?: FailoverLog,
): void {
  const flush = flusher && ((names: readonly string[]) => () => flusher.flush(names));
  orderings.on('changed', (names) =>
    failovers ? failovers.recomputed(names, flush?.(names)) : void flusher?.flush(names),
  );
  // Registered after the orderings' own listener: lastChanged is this change's.
  table.on('change', ({ sites }) => {
    logger.info(
      { sites, states: sites.map((s) => table.get(s)?.reason), ...changedNames(orderings.lastChanged) },
      'site state changed',
    );
  });
  orderings.metrics.on('change', () => {
    if (orderings.lastChanged.length > 0)
      logger.info(changedNames(orderings.lastChanged), 'order changed by site figures');
  });
}

/**
 * The changed names for a log line: their count and the first few. Listing all of them made one
 * line of 200 KB at 10,000 names, serialised and written while the failover was in progress.
 */
function changedNames(names: readonly string[]): { changed: number; names: string[] } {
  return { changed: names.length, names: names.slice(0, 10) };
}

function createFlusher(
  loaded: LoadedConfig,
  logger: Logger,
  metrics: BackendMetrics,
  zones: string[],
  next?: Flusher,
): Flusher | undefined {
  const api = loaded.config.pdns;
  if (!api) {
    logger.warn(
      'no pdns: section: answers change at once in the backend, but PowerDNS caches keep old answers until their TTL',
    );
    return undefined;
  }
  const apiKey = apiKeyOf(loaded, 'pdns', api['api-key-file'], api['api-key-env']);
  return new Flusher(
    {
      url: api.url,
      serverId: api['server-id'],
      apiKey,
      timeoutMs: api['timeout-ms'],
      retries: api.retries,
      zones,
      ...(next ? { next } : {}),
    },
    logger,
    metrics,
  );
}

/** dnsdist's cache (the `dnsdist:` section), flushed after PowerDNS's and for client-dependent names. */
function createDnsdistFlusher(
  loaded: LoadedConfig,
  logger: Logger,
  metrics: BackendMetrics,
  zones: string[],
): Flusher | undefined {
  const d = loaded.config.dnsdist;
  if (!d) return undefined;
  const apiKey = apiKeyOf(loaded, 'dnsdist', d['api-key-file'], d['api-key-env']);
  return new Flusher(
    { url: d.url, target: 'dnsdist', serverId: '', apiKey, timeoutMs: d['timeout-ms'], retries: d.retries, zones },
    logger,
    metrics,
  );
}

/** Secrets come from a file or the environment, never from the config file or logs (src/shared/secrets.ts). */
function apiKeyOf(loaded: LoadedConfig, section: 'pdns' | 'dnsdist', file?: string, env?: string): string {
  if (!file && !env)
    throw new Error(`${section}: give api-key-file or api-key-env (its API key) so the backend can flush caches`);
  try {
    return readSecret(file ? { file: resolvePath(loaded, file) } : { env }, { text: true }).toString('utf8');
  } catch (err) {
    throw new Error(`${section}.${file ? 'api-key-file' : 'api-key-env'}: ${(err as Error).message}`);
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
