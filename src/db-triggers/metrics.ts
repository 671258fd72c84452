import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Prometheus metrics of one replicator (prefix multisite_replication_). */
export class ReplicationMetrics {
  private readonly lagSeconds: Gauge;
  private readonly lagChanges: Gauge;
  private readonly applyLag: Gauge;
  private readonly changes: Counter;
  private readonly rows: Counter;
  private readonly conflicts: Counter;
  private readonly errors: Counter;
  private readonly rate: Gauge;
  private readonly batchSeconds: Histogram;
  private readonly trimmed: Counter;
  private readonly tombstones: Counter;
  private readonly peerUp: Gauge;
  private readonly stalled: Gauge;
  private readonly stalls: Counter;
  private readonly batchLimit: Gauge;
  private readonly window: { t: number; n: number }[] = [];

  constructor(registry: Registry) {
    const registers = [registry];
    const p = 'multisite_replication_';
    this.lagSeconds = new Gauge({
      name: `${p}lag_seconds`,
      help: 'Age of the oldest change of the peer not yet applied here (0: caught up)',
      labelNames: ['peer'],
      registers,
    });
    this.lagChanges = new Gauge({
      name: `${p}lag_changes`,
      help: 'Changes of the peer not yet applied here',
      labelNames: ['peer'],
      registers,
    });
    this.applyLag = new Gauge({
      name: `${p}last_batch_lag_seconds`,
      help: 'Capture-to-commit time of the oldest change in the last applied batch',
      labelNames: ['peer'],
      registers,
    });
    this.changes = new Counter({
      name: `${p}changes_total`,
      help: 'Peer changes consumed (before consolidation)',
      labelNames: ['peer'],
      registers,
    });
    this.rows = new Counter({
      name: `${p}rows_applied_total`,
      help: 'Consolidated row changes applied',
      labelNames: ['peer'],
      registers,
    });
    this.conflicts = new Counter({
      name: `${p}conflicts_total`,
      help: 'Conflicts written to the conflict log',
      labelNames: ['peer'],
      registers,
    });
    this.errors = new Counter({
      name: `${p}apply_errors_total`,
      help: 'Rows that could not apply (in the conflict log as apply-error)',
      labelNames: ['peer'],
      registers,
    });
    this.rate = new Gauge({
      name: `${p}applied_per_second`,
      help: 'Peer changes consumed per second over the last 10 s',
      registers,
    });
    this.batchSeconds = new Histogram({
      name: `${p}batch_seconds`,
      help: 'Apply transaction duration',
      labelNames: ['peer'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.trimmed = new Counter({ name: `${p}trimmed_total`, help: 'Acknowledged local changes trimmed', registers });
    this.tombstones = new Counter({
      name: `${p}tombstones_trimmed_total`,
      help: 'Row clocks of deleted rows trimmed after tombstone-retention-days',
      registers,
    });
    this.stalled = new Gauge({
      name: `${p}stalled`,
      help: '1 while no progress is made with the peer although its changes are pending',
      labelNames: ['peer'],
      registers,
    });
    this.stalls = new Counter({
      name: `${p}stalls_total`,
      help: 'Times replication from the peer stalled (and recovery started)',
      labelNames: ['peer'],
      registers,
    });
    this.batchLimit = new Gauge({
      name: `${p}batch_limit`,
      help: 'Changes the next read may take (grows with the backlog)',
      labelNames: ['peer'],
      registers,
    });
    this.peerUp = new Gauge({
      name: `${p}peer_up`,
      help: '1 when the last sync with the peer succeeded',
      labelNames: ['peer'],
      registers,
    });
  }

  observeBatch(
    peer: string,
    r: { changes: number; rows: number; conflicts: number; errors: number },
    ms: number,
    lagSeconds: number,
    batchLagSeconds: number,
    remaining: number,
    limit: number,
  ): void {
    this.batchLimit.set({ peer }, limit);
    this.changes.inc({ peer }, r.changes);
    this.rows.inc({ peer }, r.rows);
    if (r.conflicts) this.conflicts.inc({ peer }, r.conflicts);
    if (r.errors) this.errors.inc({ peer }, r.errors);
    this.batchSeconds.observe({ peer }, ms / 1000);
    this.lagSeconds.set({ peer }, lagSeconds);
    this.lagChanges.set({ peer }, remaining);
    this.applyLag.set({ peer }, batchLagSeconds);
    this.tick(r.changes);
  }

  observeIdle(peer: string): void {
    this.lagSeconds.set({ peer }, 0);
    this.lagChanges.set({ peer }, 0);
    this.tick(0);
  }

  observeTrim(n: number): void {
    if (n) this.trimmed.inc(n);
  }

  observeTombstones(n: number): void {
    if (n) this.tombstones.inc(n);
  }

  setStalled(peer: string, stalled: boolean): void {
    if (stalled) this.stalls.inc({ peer });
    this.stalled.set({ peer }, stalled ? 1 : 0);
  }

  setUp(peer: string, up: boolean): void {
    this.peerUp.set({ peer }, up ? 1 : 0);
  }

  private tick(n: number): void {
    const now = Date.now();
    this.window.push({ t: now, n });
    while (this.window.length && this.window[0]!.t < now - 10_000) this.window.shift();
    const total = this.window.reduce((a, b) => a + b.n, 0);
    this.rate.set(total / 10);
  }
}
