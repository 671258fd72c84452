import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram } from '../shared/fast-metrics.js';

/** What an operator graphs: calls by method, their latency, flushes and errors. */
export class BackendMetrics {
  /** Calls are the histogram's _count: one series, one increment per call. */
  readonly latency: FastHistogram;
  readonly errors: Counter<'kind'>;
  readonly flushes: Counter<'result'>;
  readonly dnsdistFlushes: Counter<'result'>;
  readonly connections: Counter<'connector'>;
  /** Zone problems found at start (loadZones): records left out, zones not served. */
  readonly skippedRecords: Counter<'zone'>;
  readonly refusedZones: Gauge<'zone'>;
  private readonly children = new Map<string, (seconds: number) => void>();

  constructor(registry: Registry) {
    this.latency = new FastHistogram(
      'multisite_backend_call_seconds',
      'Time to answer one remote backend call, by method (its _count counts the calls)',
      'method',
      [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2],
      registry,
    );
    this.errors = new Counter({
      name: 'multisite_backend_errors_total',
      help: 'Rejected requests and connection errors, by kind',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.flushes = new Counter({
      name: 'multisite_backend_cache_flushes_total',
      help: 'PowerDNS cache flushes, by result',
      labelNames: ['result'],
      registers: [registry],
    });
    this.dnsdistFlushes = new Counter({
      name: 'multisite_backend_dnsdist_cache_flushes_total',
      help: 'dnsdist cache flushes (dnsdist: in multisite.yaml), by result',
      labelNames: ['result'],
      registers: [registry],
    });
    this.connections = new Counter({
      name: 'multisite_backend_connections_total',
      help: 'Connections accepted, by connector',
      labelNames: ['connector'],
      registers: [registry],
    });
    this.skippedRecords = new Counter({
      name: 'multisite_backend_zone_records_skipped_total',
      help: 'Zone records left out because they are outside their zone (on-error: skip-records), by zone',
      labelNames: ['zone'],
      registers: [registry],
    });
    this.refusedZones = new Gauge({
      name: 'multisite_backend_zones_refused',
      help: 'Configured zones not served because of an error in them (1 per refused zone)',
      labelNames: ['zone'],
      registers: [registry],
    });
  }

  /** Label children are bound once: a lookup pays for a bucket search, not a label hash. */
  observe(method: string, ms: number): void {
    const key = KNOWN.has(method) ? method : 'other';
    let child = this.children.get(key);
    if (!child) {
      child = this.latency.child(key);
      this.children.set(key, child);
    }
    child(ms / 1000);
  }
}

const KNOWN = new Set([
  'lookup',
  'list',
  'initialize',
  'getAllDomains',
  'getDomainInfo',
  'getAllDomainMetadata',
  'getDomainMetadata',
]);
