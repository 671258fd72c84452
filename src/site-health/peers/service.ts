import type { Timers } from '../../shared/timers.js';
import { setNewest } from '../../shared/bounded-map.js';
import type { Logger } from '../../shared/log.js';
import type { SiteStateTable } from '../state-table.js';
import {
  decode,
  encode,
  MAX_PROBES,
  type Message,
  type RejectReason,
  type SharedProbe,
  type SiteSummary,
} from './codec.js';
import { ReplayGuard } from './guard.js';
import { PeerMachine, type PeerEffect, type PeerSnapshot, type PeerState } from './machine.js';
import { PeerMetrics } from './metrics.js';
import type { ProbeResult, ProbeTarget } from './probe.js';
import type { Address, Transport } from './transport.js';

/** Health sources this service reports in the site-state table. */
export const PEER_SOURCE = 'peer';
export const PEER_POOL_SOURCE = 'peer-pool';

export interface PeerSite extends ProbeTarget {
  /** Its backends' heartbeat addresses. */
  heartbeat: Address[];
}

export interface PeerServiceOptions {
  site: string;
  node: string;
  key: Buffer;
  peers: PeerSite[];
  periodMs: number;
  suspectAfterMs: number;
  recoverPeriods: number;
  maxSkewMs: number;
  /** Upper bound of one whole verification (the machine's probe deadline). */
  probeBudgetMs: number;
  transport: Transport;
  probe(target: ProbeTarget): Promise<ProbeResult>;
  /** This site's summary, put in every heartbeat. */
  summary(): SiteSummary;
  table: SiteStateTable;
  timers: Timers;
  /** Wall-clock ms (message times, skew), separate from the monotonic timers. */
  wallNow(): number;
  logger: Logger;
  metrics?: PeerMetrics;
  /** Every authenticated heartbeat's summary (load, response time), for the balancing policies. */
  onSummary?(site: string, sender: string, summary: SiteSummary): void;
  /** Probe results a peer shared (policy `closest`). */
  onProbes?(site: string, entries: SharedProbe[]): void;
  /** Heartbeats sent by heartbeatNow() are at least this far apart (default 50 ms). */
  minGapMs?: number;
}

/** Probe results waiting for the next heartbeat; beyond this many the oldest are dropped. */
const MAX_QUEUED_PROBES = 256;

export interface PeerStatus extends Omit<PeerSnapshot, 'since' | 'lastHeartbeat' | 'recoveringSince'> {
  /** Wall-clock ms. */
  since: number;
  lastHeartbeat?: number;
  recoveringSince?: number;
  summary?: SiteSummary;
}

/**
 * Sends heartbeats every period, accepts only authenticated fresh ones, drives one PeerMachine
 * per peer site, probes suspects, announces verified failures to the other peers and reports
 * each peer in the site-state table (`peer`: reachability; `peer-pool`: the pool the site reports).
 */
export class PeerService {
  private readonly machines = new Map<string, PeerMachine>();
  private readonly summaries = new Map<string, Map<string, { at: number; summary: SiteSummary }>>();
  private readonly guard: ReplayGuard;
  private readonly metrics: PeerMetrics;
  private readonly boot: number;
  private seq = 0;
  private sendTimer: unknown;
  private urgentTimer: unknown;
  /** When heartbeatNow last sent (periodic heartbeats do not count: they must not delay a change). */
  private lastUrgent = -Infinity;
  private tickTimer: unknown;
  private stopped = true;
  private readonly lastLog = new Map<string, number>();
  /** Our probe results not yet sent, by client network (the latest result of each). */
  private readonly probeQueue = new Map<string, { probe: Omit<SharedProbe, 'ageMs'>; at: number }>();

  constructor(private readonly o: PeerServiceOptions) {
    this.metrics = o.metrics ?? new PeerMetrics();
    this.guard = new ReplayGuard({ site: o.site, peers: new Set(o.peers.map((p) => p.site)), maxSkewMs: o.maxSkewMs });
    this.boot = o.wallNow();
    const now = o.timers.now();
    for (const p of o.peers) {
      this.machines.set(
        p.site,
        new PeerMachine(
          p.site,
          {
            periodMs: o.periodMs,
            suspectAfterMs: o.suspectAfterMs,
            recoverPeriods: o.recoverPeriods,
            probeDeadlineMs: o.probeBudgetMs,
          },
          now,
        ),
      );
      this.summaries.set(p.site, new Map());
      this.metrics.setState(p.site, 'up');
    }
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    await this.o.transport.start((buf, from) => this.receive(buf, from));
    this.stopped = false;
    this.sendAll();
    this.reschedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.timers.clearTimeout(this.sendTimer);
    this.o.timers.clearTimeout(this.urgentTimer);
    this.o.timers.clearTimeout(this.tickTimer);
    await this.o.transport.stop();
  }

  state(site: string): PeerState | undefined {
    return this.machines.get(site)?.current;
  }

  /** Every peer, times in wall-clock ms, for /status and `multisite status`. */
  status(): PeerStatus[] {
    const toWall = (t: number) => Math.round(this.o.wallNow() - (this.o.timers.now() - t));
    return [...this.machines.values()].map((m) => {
      const { since, lastHeartbeat, recoveringSince, ...rest } = m.snapshot();
      const out: PeerStatus = { ...rest, since: toWall(since) };
      if (lastHeartbeat !== undefined) out.lastHeartbeat = toWall(lastHeartbeat);
      if (recoveringSince !== undefined) out.recoveringSince = toWall(recoveringSince);
      const latest = [...(this.summaries.get(m.site)?.values() ?? [])].sort((a, b) => b.at - a.at)[0];
      if (latest) out.summary = latest.summary;
      return out;
    });
  }

  /** Handles one datagram (public so tests can inject bytes). */
  receive(buf: Buffer, from: Address): void {
    if (this.stopped) return;
    const decoded = decode(buf, this.o.key);
    if (!decoded.ok) return this.reject(decoded.reason, decoded.detail, from);
    const msg = decoded.msg;
    const verdict = this.guard.check(msg, this.o.wallNow(), this.o.timers.now());
    if (!verdict.ok) return this.reject(verdict.reason, verdict.detail, from, msg);
    const at = this.o.timers.now();
    if (msg.type === 'heartbeat') {
      this.metrics.received.inc({ site: msg.site });
      this.summaries.get(msg.site)!.set(msg.sender, { at, summary: msg.summary });
      this.o.onSummary?.(msg.site, msg.sender, msg.summary);
      this.reportPool(msg.site, at);
      this.apply(msg.site, { type: 'heartbeat', at, sender: `${msg.site}/${msg.sender}` });
    } else if (msg.type === 'probes') {
      this.o.onProbes?.(msg.site, msg.entries);
    } else {
      this.metrics.announces.inc({ direction: 'received' });
      if (msg.state !== 'down' || msg.subject === this.o.site || !this.machines.has(msg.subject)) return;
      this.o.logger.info(
        { by: msg.site, subject: msg.subject, reason: msg.reason },
        'a peer announced a site down; verifying it',
      );
      this.apply(msg.subject, { type: 'announced-down', at, by: msg.site, reason: msg.reason });
    }
  }

  private reject(reason: RejectReason, detail: string, from: Address, msg?: Message): void {
    this.metrics.rejected.inc({ reason });
    const now = this.o.timers.now();
    if ((this.lastLog.get(reason) ?? -Infinity) + 10_000 > now) return;
    this.lastLog.set(reason, now);
    this.o.logger.warn(
      { reason, detail, from: `${from.host}:${from.port}`, site: msg?.site, sender: msg?.sender },
      'heartbeat refused (further ones of this reason are counted, logged at most every 10 s)',
    );
  }

  private apply(site: string, event: Parameters<PeerMachine['handle']>[0]): void {
    const machine = this.machines.get(site);
    if (!machine) return;
    for (const effect of machine.handle(event)) this.effect(site, effect);
    this.reschedule();
  }

  private effect(site: string, e: PeerEffect): void {
    if (e.type === 'transition') {
      this.metrics.transitions.inc({ site, from: e.from, to: e.to });
      this.metrics.setState(site, e.to);
      const log = e.to === 'down' ? 'warn' : 'info';
      this.o.logger[log]({ site, from: e.from, to: e.to, reason: e.reason }, `peer site ${site} is ${e.to}`);
      this.o.table.setHealth(site, PEER_SOURCE, e.to !== 'down', e.reason);
    } else if (e.type === 'probe') {
      void this.runProbe(site, e.probe);
    } else {
      this.announce(site, e.reason);
    }
  }

  private async runProbe(site: string, probe: number): Promise<void> {
    const target = this.o.peers.find((p) => p.site === site)!;
    let result: ProbeResult;
    try {
      result = await this.o.probe(target);
    } catch (err) {
      result = { ok: false, detail: `probe error: ${(err as Error).message}`, ms: 0 };
    }
    this.metrics.probes.inc({ site, result: result.ok ? 'ok' : 'failed' });
    this.metrics.probeSeconds.observe(result.ms / 1000);
    if (this.stopped) return;
    this.apply(site, { type: 'probe-result', at: this.o.timers.now(), probe, ok: result.ok, detail: result.detail });
  }

  /** Tells every backend of every other peer site that `subject` is verified down. */
  private announce(subject: string, reason: string): void {
    for (const p of this.o.peers) {
      if (p.site === subject) continue;
      const buf = encode({ type: 'announce', ...this.envelope(), subject, state: 'down', reason }, this.o.key);
      for (const addr of p.heartbeat) this.o.transport.send(buf, addr);
      this.metrics.announces.inc({ direction: 'sent' });
    }
  }

  private envelope() {
    return { site: this.o.site, sender: this.o.node, boot: this.boot, seq: ++this.seq, time: this.o.wallNow() };
  }

  /**
   * Shares one of our probe results with every peer: sent with the next heartbeat, up to 16 per
   * datagram. `at` is wall-clock ms of the measurement (sent as an age, so clocks need not agree).
   */
  shareProbe(probe: Omit<SharedProbe, 'ageMs'>, at: number): void {
    setNewest(this.probeQueue, probe.key, { probe, at }, MAX_QUEUED_PROBES);
  }

  /**
   * A heartbeat now, not at the next period: our summary changed (the local pool went up or
   * down), and peers apply a heartbeat's pool at once. Rate-limited to one per `minGapMs` (a
   * flapping pool cannot flood the peers); a call within the gap sends at its end, once. The gap
   * counts from the last immediate heartbeat only: a periodic one just before a change used to
   * hold the change back up to 50 ms (2 of 45 changes in bench/failover.ts --scenario peer).
   */
  heartbeatNow(): void {
    if (this.stopped || this.urgentTimer !== undefined) return;
    const wait = this.lastUrgent + (this.o.minGapMs ?? 50) - this.o.timers.now();
    if (wait <= 0) return this.sendUrgent();
    this.urgentTimer = this.o.timers.setTimeout(() => {
      this.urgentTimer = undefined;
      this.sendUrgent();
    }, wait);
  }

  private sendUrgent(): void {
    this.lastUrgent = this.o.timers.now();
    this.sendAll();
  }

  private sendAll(): void {
    if (this.stopped) return;
    const started = this.o.timers.now();
    // The period restarts from this heartbeat (an urgent one replaces the next periodic one's wait).
    this.o.timers.clearTimeout(this.sendTimer);
    const summary = safeSummary(this.o.summary);
    const probes = this.takeProbes();
    for (const p of this.o.peers) {
      // A new sequence number per datagram: each receiver sees strictly growing numbers.
      for (const addr of p.heartbeat) {
        this.o.transport.send(encode({ type: 'heartbeat', ...this.envelope(), summary }, this.o.key), addr);
        this.metrics.sent.inc({ site: p.site });
        for (const entries of probes)
          this.o.transport.send(encode({ type: 'probes', ...this.envelope(), entries }, this.o.key), addr);
      }
    }
    this.sendTimer = this.o.timers.setTimeout(
      () => this.sendAll(),
      Math.max(0, started + this.o.periodMs - this.o.timers.now()),
    );
  }

  /** The queued probe results in datagram-sized batches, with their ages as of now. */
  private takeProbes(): SharedProbe[][] {
    const now = this.o.wallNow();
    const all = [...this.probeQueue.values()].map(({ probe, at }) => ({ ...probe, ageMs: Math.max(0, now - at) }));
    this.probeQueue.clear();
    const out: SharedProbe[][] = [];
    for (let i = 0; i < all.length; i += MAX_PROBES) out.push(all.slice(i, i + MAX_PROBES));
    return out;
  }

  /** One timer for the earliest deadline of any machine. */
  private reschedule(): void {
    if (this.stopped) return;
    this.o.timers.clearTimeout(this.tickTimer);
    const deadlines = [...this.machines.values()]
      .map((m) => m.nextDeadline())
      .filter((d): d is number => d !== undefined);
    if (deadlines.length === 0) return;
    const at = Math.min(...deadlines);
    this.tickTimer = this.o.timers.setTimeout(
      () => {
        const now = this.o.timers.now();
        for (const m of this.machines.values())
          for (const e of m.handle({ type: 'tick', at: now })) this.effect(m.site, e);
        this.reschedule();
      },
      Math.max(0, at - this.o.timers.now()),
    );
  }

  /** The site is down by its own pool only if every backend of it heard lately says so. */
  private reportPool(site: string, now: number): void {
    const fresh = [...this.summaries.get(site)!.values()].filter((s) => now - s.at <= this.o.suspectAfterMs);
    const down = fresh.length > 0 && fresh.every((s) => s.summary.pool === 'down');
    const s = fresh[0]?.summary;
    const counts =
      s?.usable !== undefined ? `: ${s.usable}${s.servers !== undefined ? ` of ${s.servers}` : ''} servers usable` : '';
    this.o.table.setHealth(
      site,
      PEER_POOL_SOURCE,
      !down,
      down ? `the site reports its pool down${counts}` : 'the site reports its pool up',
    );
  }
}

function safeSummary(summary: () => SiteSummary): SiteSummary {
  try {
    return summary();
  } catch {
    return { pool: 'unknown' };
  }
}
