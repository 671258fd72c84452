import type { Registry } from 'prom-client';
import { probesSchema, readKey, type LoadedConfig } from '../config/index.js';
import { ReplicaLagReporter } from '../db-triggers/index.js';
import type { BalancedName } from '../pdns-backend/index.js';
import type { Logger } from '../shared/log.js';
import { realTimers } from '../shared/timers.js';
import {
  contains,
  LoadAggregator,
  LoadReportListener,
  MetricsTable,
  parseClient,
  probeTarget,
  Prober,
  type ClientNet,
  type HealthSources,
  type SummaryHooks,
} from '../site-health/index.js';

/**
 * The figures policies order by, and where they come from: agents' load reports, probes to
 * clients' networks, our replica's lag, and the same figures peers carry in their heartbeats.
 * A site whose replica lags beyond max-lag-seconds is demoted in every answer (DESIGN: stale
 * data); an unknown lag (embedded databases) demotes nobody.
 */
export class SiteFigures {
  readonly table: MetricsTable;
  readonly prober?: Prober;
  readonly lagReporter?: ReplicaLagReporter;
  readonly loadListener?: LoadReportListener;
  /** The heartbeat service, once site health started: shares our probe results with peers. */
  health?: HealthSources;
  private readonly site: string;
  private readonly maxLagMs: number;

  constructor(loaded: LoadedConfig, balanced: BalancedName[], logger: Logger, registry: Registry) {
    const { config } = loaded;
    this.site = config.site;
    this.table = new MetricsTable(config.sites.map((s) => s.name));
    this.maxLagMs = (config.replication?.['max-lag-seconds'] ?? Infinity) * 1000;
    if (balanced.some((b) => b.policy === 'closest')) this.prober = this.createProber(loaded, logger);
    if (ReplicaLagReporter.applies(loaded)) {
      this.lagReporter = new ReplicaLagReporter(loaded, {
        timers: realTimers,
        logger,
        onReading: (lag) => this.markStale(config.site, lag),
      });
    }
    this.loadListener = this.createLoadListener(loaded, logger, registry);
  }

  /** Asks for a probe of a client's network the first time a `closest` answer needs it. */
  onUnprobed(loaded: LoadedConfig): (client: ClientNet, key: string) => void {
    const probeNets = (loaded.config.probes ?? probesSchema.parse({})).networks.map((n) => parseClient(n)!);
    return (client, key) => {
      if (probeNets.some((n) => contains(n, client))) this.prober?.request(key, probeTarget(client));
    };
  }

  /** Our figures in every heartbeat; each peer's heartbeat brings its site's. */
  heartbeatHooks(): SummaryHooks {
    return {
      own: () => {
        const f = this.table.figures(this.site);
        const lag = this.lagReporter?.lagMs;
        return {
          ...(f?.load !== undefined ? { load: f.load } : {}),
          ...(f?.responseMs !== undefined ? { responseMs: f.responseMs } : {}),
          ...(lag !== undefined ? { replicationLagMs: lag } : {}),
        };
      },
      received: (site, _sender, s) => {
        this.markStale(site, s.replicationLagMs);
        if (s.load === undefined && s.responseMs === undefined) this.table.clearFigures(site);
        else
          this.table.setFigures(site, {
            ...(s.load !== undefined ? { load: s.load } : {}),
            ...(s.responseMs !== undefined ? { responseMs: s.responseMs } : {}),
          });
      },
      probes: (site, entries) => {
        const now = Date.now();
        this.table.setProbes(
          site,
          entries.map((e) => [
            e.key,
            {
              rttMs: e.rttMs,
              completion: e.completion,
              ...(e.hops !== undefined ? { hops: e.hops } : {}),
              method: e.method,
              at: now - e.ageMs,
            },
          ]),
        );
      },
    };
  }

  /** Starts what runs on its own timers; returns where load reports are received. */
  async start(): Promise<{ host: string; port: number } | undefined> {
    const bound = await this.loadListener?.start();
    this.lagReporter?.start();
    return bound;
  }

  async stop(): Promise<void> {
    this.prober?.stop();
    await this.lagReporter?.stop();
  }

  private markStale(site: string, lag: number | undefined): void {
    this.table.setStale(site, lag !== undefined && lag > this.maxLagMs);
  }

  private createProber(loaded: LoadedConfig, logger: Logger): Prober {
    const { config } = loaded;
    return new Prober({
      config: config.probes ?? probesSchema.parse({}),
      timers: realTimers,
      clock: Date.now,
      logger,
      onResult: (key, f) => {
        this.table.setProbe(config.site, key, f);
        // Sites share probe results in heartbeats: each site's closest answer weighs every site's figures.
        const shared = {
          key,
          rttMs: f.rttMs,
          completion: f.completion,
          ...(f.hops !== undefined ? { hops: f.hops } : {}),
          method: f.method,
        };
        this.health?.service?.shareProbe(shared, f.at);
      },
    });
  }

  private createLoadListener(loaded: LoadedConfig, logger: Logger, registry: Registry): LoadReportListener | undefined {
    const { config } = loaded;
    const lr = config['load-reports'];
    if (!lr) return undefined;
    const aggregator = new LoadAggregator({
      site: config.site,
      key: readKey(loaded, 'load-reports', lr),
      staleAfterMs: lr['stale-after-ms'],
      maxSkewMs: lr['max-skew-ms'],
      timers: realTimers,
      wallNow: Date.now,
      logger,
      registry,
      onAggregate: (f) => (f ? this.table.setFigures(config.site, f) : this.table.clearFigures(config.site)),
    });
    return new LoadReportListener(lr.listen, aggregator);
  }
}
