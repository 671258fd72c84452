import { EventEmitter } from 'node:events';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Route } from '../shared/metrics.js';
import { refuseMethod } from '../shared/peer-http.js';
import { sharedWallClock } from '../shared/timers.js';
import type { PoolCause, SiteStateTable, StateChange } from '../site-health/index.js';

/**
 * Each failover and recovery of a site, with the time of every stage the backend can observe
 * (docs/status-page.md "Timeline" says which clock each uses). A stage nobody observed is absent,
 * never estimated: a peer's change starts at `state`, a change the poll found (no event) has no
 * HAProxy stages, an agent's push to HAProxy logs no check duration so it has no `check`, and the
 * agent's `verdict` is known only when the agent runs in this process (`multisite run`).
 */

/** An agent's verdict older than this when HAProxy's event arrives did not cause it (a rise/fall takes well under). */
const VERDICT_WINDOW_MS = 30_000;

/** The stages in the order a failover passes them. */
export const STAGES = ['verdict', 'check', 'haproxy', 'informed', 'state', 'orderings', 'flushed'] as const;
export type Stage = (typeof STAGES)[number];

export interface StageTime {
  stage: Stage;
  /** Epoch ms, with sub-millisecond digits where the clock has them. */
  at: number;
  /** Whose clock: HAProxy's log timestamp, or this backend's. */
  clock: 'haproxy' | 'backend';
}

export interface FailoverRecord {
  id: number;
  site: string;
  /** failover: the site stopped being usable; recovery: usable again. */
  kind: 'failover' | 'recovery';
  /** The site table's reason for the new state. */
  reason: string;
  /** HAProxy's message of the event the deciding pool read followed, and how many it followed. */
  trigger?: string;
  events?: number;
  /** Observed stages, in STAGES order. */
  stages: StageTime[];
  /** Balanced names whose cacheable answer changed (undefined until recomputed). */
  names?: number;
  /** none: nothing to flush; off: no `pdns:` section; pending until PowerDNS answered every flush. */
  flush: 'none' | 'off' | 'pending' | 'done' | 'failed';
}

export interface FailoverLogOptions {
  /** Records kept, newest first (the oldest goes). */
  size?: number;
  /** This backend's clock (epoch ms): the same one the pool watcher stamps events with. */
  clock?: () => number;
  registry?: Registry;
}

export const FAILOVERS_PATH = '/failovers';

/**
 * The last failovers and recoveries, in memory (a restart starts empty; the logs keep the rest),
 * `multisite_backend_failovers_total{kind}`, and `multisite_backend_failover_stage_seconds{stage,
 * from,kind}`: each stage's time after the record's first observed stage (`from`), observed once
 * the record is complete. Emits 'change'
 * whenever a record is added or gains a stage.
 */
export class FailoverLog extends EventEmitter<{ change: [] }> {
  private readonly records: FailoverRecord[] = [];
  private readonly causes = new Map<string, PoolCause>();
  /** The agent's last verdict change per `backend/server` (bounded by the configured servers). */
  private readonly verdicts = new Map<string, { up: boolean; at: number }>();
  /** Records of the table change being handled (between the first and last 'change' listener). */
  private current: FailoverRecord[] = [];
  private nextId = 1;
  private readonly size: number;
  private readonly clock: () => number;
  private readonly histogram?: Histogram<'stage' | 'from' | 'kind'>;
  private readonly counter?: Counter<'kind'>;

  constructor(opts: FailoverLogOptions = {}) {
    super();
    this.size = opts.size ?? 50;
    this.clock = opts.clock ?? sharedWallClock;
    if (opts.registry)
      this.histogram = new Histogram({
        name: 'multisite_backend_failover_stage_seconds',
        help: "Failovers and recoveries: each stage's time after the first observed stage (label from), by kind",
        labelNames: ['stage', 'from', 'kind'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [opts.registry],
      });
    if (opts.registry)
      this.counter = new Counter({
        name: 'multisite_backend_failovers_total',
        help: 'Failovers (a site no longer usable) and recoveries this backend recorded, by kind',
        labelNames: ['kind'],
        registers: [opts.registry],
      });
  }

  /**
   * Follows the site table: its first listener stamps `state` before the orderings recompute (they
   * listen too), its last closes the change. Call once.
   */
  attach(table: SiteStateTable): void {
    table.prependListener('change', (c) => this.stateChanged(c, table));
    table.on('change', () => this.closeChange());
  }

  /** The agent in this process changed a server's verdict (`server` as HAProxy names it: backend/server). */
  agentVerdict(server: string, up: boolean): void {
    this.verdicts.set(server, { up, at: this.clock() });
  }

  /** Runs `apply` (a pool verdict set in the table) with the HAProxy event behind it known. */
  withCause(site: string, cause: PoolCause | undefined, apply: () => void): void {
    if (cause) this.causes.set(site, cause);
    try {
      apply();
    } finally {
      this.causes.delete(site);
    }
  }

  /**
   * The orderings changed these names' answers: the backend calls it from 'changed' with its flush
   * (started here, after the time is taken; true once PowerDNS acknowledged every target). Changes
   * no site state change started (figures, partitions, decided-by) are not failovers: only flushed.
   */
  recomputed(names: readonly string[], flush?: () => Promise<boolean>): void {
    const records = this.current;
    if (records.length === 0) {
      void flush?.();
      return;
    }
    const at = this.clock();
    const flushed = flush?.();
    for (const r of records) {
      r.stages.push({ stage: 'orderings', at, clock: 'backend' });
      r.names = names.length;
      r.flush = flushed ? 'pending' : 'off';
    }
    void flushed?.then(
      (ok) => this.flushed(records, ok),
      () => this.flushed(records, false),
    );
  }

  /** Newest first, copies. */
  list(): FailoverRecord[] {
    return this.records.map((r) => ({ ...r, stages: r.stages.map((s) => ({ ...s })) }));
  }

  /** GET /failovers: the records as JSON (`multisite status` reads it). */
  route(): Route {
    return (req, res) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== FAILOVERS_PATH) return false;
      if (req.method !== 'GET') refuseMethod(req, res, 'GET');
      else {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(`${JSON.stringify({ failovers: this.list() })}\n`);
      }
      return true;
    };
  }

  private stateChanged(c: StateChange, table: SiteStateTable): void {
    const at = this.clock();
    // One left open (a listener threw before closeChange) is closed: this change's recompute is not its.
    this.closeChange();
    for (const site of c.sites) {
      const state = table.get(site);
      if (!state) continue;
      const cause = this.causes.get(site);
      const r: FailoverRecord = {
        id: this.nextId++,
        site,
        kind: state.usable ? 'recovery' : 'failover',
        reason: state.reason,
        ...(cause ? { trigger: cause.message, events: cause.events } : {}),
        stages: [
          ...this.verdictStage(cause, state.usable),
          ...causeStages(cause),
          { stage: 'state', at, clock: 'backend' },
        ],
        flush: 'none',
      };
      this.current.push(r);
      this.counter?.inc({ kind: r.kind });
      this.records.unshift(r);
      if (this.records.length > this.size) this.records.length = this.size;
    }
  }

  /**
   * The agent's verdict on the server HAProxy's event names, when it says what the site now is (a
   * server down for a failover, up for a recovery) and came before the event arrived: the push that
   * made HAProxy change. A verdict after the event (HAProxy's own check was first) is not a stage.
   */
  private verdictStage(cause: PoolCause | undefined, up: boolean): StageTime[] {
    const v = cause?.server === undefined ? undefined : this.verdicts.get(cause.server);
    if (!v || v.up !== up || v.at > cause!.receivedAt || cause!.receivedAt - v.at > VERDICT_WINDOW_MS) return [];
    return [{ stage: 'verdict', at: v.at, clock: 'backend' }];
  }

  private closeChange(): void {
    const records = this.current;
    if (records.length === 0) return;
    this.current = [];
    for (const r of records) {
      r.names ??= 0;
      if (r.flush !== 'pending') this.complete(r);
    }
    this.emit('change');
  }

  private flushed(records: FailoverRecord[], ok: boolean): void {
    const at = this.clock();
    for (const r of records) {
      if (ok) r.stages.push({ stage: 'flushed', at, clock: 'backend' });
      r.flush = ok ? 'done' : 'failed';
      this.complete(r);
    }
    this.emit('change');
  }

  private complete(r: FailoverRecord): void {
    const [first, ...rest] = r.stages;
    if (!first || !this.histogram) return;
    // Across clocks (HAProxy's → ours) a skew can make a later stage read earlier: counted as 0.
    for (const s of rest)
      this.histogram.observe({ stage: s.stage, from: first.stage, kind: r.kind }, Math.max(0, s.at - first.at) / 1000);
  }
}

/** The stages the HAProxy event gives: its check's start and its log time (HAProxy's clock), its arrival (ours). */
function causeStages(c: PoolCause | undefined): StageTime[] {
  if (!c) return [];
  const out: StageTime[] = [];
  if (c.loggedAt !== undefined) {
    if (c.checkMs !== undefined) out.push({ stage: 'check', at: c.loggedAt - c.checkMs, clock: 'haproxy' });
    out.push({ stage: 'haproxy', at: c.loggedAt, clock: 'haproxy' });
  }
  out.push({ stage: 'informed', at: c.receivedAt, clock: 'backend' });
  return out;
}
