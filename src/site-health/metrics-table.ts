import { EventEmitter } from 'node:events';
import { setNewest } from '../shared/bounded-map.js';
/** A site's aggregate as its agents report it (and its backends carry in heartbeats). */
export interface SiteFigures {
  /** CPU load (or the configured load source), mean over the site's servers. */
  load?: number;
  /** Mean response time of the site's checks, ms. */
  responseMs?: number;
  /** Active connections, summed over the site's servers. */
  connections?: number;
}

/** What a probe from one site to a client's network measured. */
export interface ProbeFigures {
  rttMs: number;
  /** Replies / probes sent, 0..1. */
  completion: number;
  /** Hops from the site to the client (from the reply TTL), when known. */
  hops?: number;
  /** When it was measured (ms, the caller's clock). */
  at: number;
  method: 'icmp' | 'tcp';
}

export interface MetricsChange {
  /** figures: a site's load/response time; probe: a probe result for a client network. */
  kind: 'figures' | 'probe';
  site: string;
  /** For probes: the network ("192.0.2.0/24"). */
  key?: string;
}

/**
 * Per-site figures the policies read besides usability: each site's aggregate load and response
 * time (ours from our agents' load reports, the peers' from their heartbeats) and probe results
 * from each site to client networks. Plain maps read on the lookup path; writers emit 'change'
 * and the orderings decide whether an order (and a cache) changes — with hysteresis, so noise
 * in the figures does not flush.
 */
export class MetricsTable extends EventEmitter<{ change: [MetricsChange] }> {
  private readonly siteFigures = new Map<string, SiteFigures & { at: number }>();
  private readonly probes = new Map<string, Map<string, ProbeFigures>>();
  private readonly staleSites = new Set<string>();

  constructor(
    readonly sites: readonly string[],
    private readonly clock: () => number = Date.now,
    private readonly maxProbeEntries = 100_000,
  ) {
    super();
    for (const s of sites) this.probes.set(s, new Map());
  }

  figures(site: string): SiteFigures | undefined {
    return this.siteFigures.get(site);
  }

  figuresAge(site: string): number | undefined {
    const f = this.siteFigures.get(site);
    return f ? this.clock() - f.at : undefined;
  }

  setFigures(site: string, f: SiteFigures): void {
    if (!this.probes.has(site)) return;
    const prev = this.siteFigures.get(site);
    const next = { ...f, at: this.clock() };
    this.siteFigures.set(site, next);
    if (prev && prev.load === f.load && prev.responseMs === f.responseMs && prev.connections === f.connections) return;
    this.emit('change', { kind: 'figures', site });
  }

  clearFigures(site: string): void {
    if (this.siteFigures.delete(site)) this.emit('change', { kind: 'figures', site });
  }

  /** The site's replica lags beyond `replication.max-lag-seconds` (its heartbeats say so, or ours). */
  isStale(site: string): boolean {
    return this.staleSites.has(site);
  }

  /** Emits 'change' only when the site's staleness flips: a lag that moves within a side changes no answer. */
  setStale(site: string, stale: boolean): void {
    if (!this.probes.has(site) || this.staleSites.has(site) === stale) return;
    if (stale) this.staleSites.add(site);
    else this.staleSites.delete(site);
    this.emit('change', { kind: 'figures', site });
  }

  probe(site: string, key: string): ProbeFigures | undefined {
    return this.probes.get(site)?.get(key);
  }

  setProbe(site: string, key: string, p: ProbeFigures): void {
    this.setProbes(site, [[key, p]]);
  }

  /** Several results of one site (a peer's heartbeat brings up to 16): one 'change' for all. */
  setProbes(site: string, entries: [string, ProbeFigures][]): void {
    const m = this.probes.get(site);
    if (!m || entries.length === 0) return;
    for (const [key, p] of entries) setNewest(m, key, p, this.maxProbeEntries);
    this.emit('change', { kind: 'probe', site, ...(entries.length === 1 ? { key: entries[0]![0] } : {}) });
  }

  /** Every probe result of one site (for sharing with peers and `explain`). */
  probesOf(site: string): [string, ProbeFigures][] {
    return [...(this.probes.get(site) ?? [])];
  }
}
