import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import { decodeLoadReport, type LoadRejectReason, type LoadReport } from '../shared/load-report.js';
import { followsSequence, type SequenceMark } from '../shared/sequence.js';
import type { SiteFigures } from './metrics-table.js';

export {
  encodeLoadReport,
  decodeLoadReport,
  LOAD_REPORT_VERSION,
  type LoadReport,
  type LoadRejectReason,
} from '../shared/load-report.js';

interface ServerEntry {
  at: number;
  report: LoadReport;
}

export interface LoadAggregatorOptions {
  site: string;
  key: Buffer;
  staleAfterMs: number;
  maxSkewMs: number;
  timers: Timers;
  wallNow(): number;
  /** Called with the site aggregate every aggregation (undefined figures: no fresh report). */
  onAggregate(f: SiteFigures | undefined): void;
  /** How often the aggregate is recomputed (default 1000 ms). */
  aggregateEveryMs?: number;
  logger?: Logger;
  registry?: Registry;
}

/**
 * Receives the site's agents' load reports, trusts only authenticated fresh ones (bad ones are
 * counted by reason, logged at most every 10 s, never used) and aggregates them per site: mean
 * load and response time of the servers reported up, connections summed.
 */
export class LoadAggregator {
  private readonly servers = new Map<string, ServerEntry>();
  private readonly lastSeq = new Map<string, SequenceMark>();
  private readonly lastLog = new Map<string, number>();
  private timer: unknown;
  private stopped = true;
  readonly accepted: Counter;
  readonly rejected: Counter<'reason'>;

  constructor(private readonly o: LoadAggregatorOptions) {
    const registers = o.registry ? [o.registry] : [];
    this.accepted = new Counter({
      name: 'multisite_load_reports_accepted_total',
      help: 'Load reports accepted',
      registers,
    });
    this.rejected = new Counter({
      name: 'multisite_load_reports_rejected_total',
      help: 'Load reports refused, by reason',
      labelNames: ['reason'],
      registers,
    });
  }

  start(): void {
    this.stopped = false;
    const every = this.o.aggregateEveryMs ?? 1000;
    const tick = () => {
      if (this.stopped) return;
      this.o.onAggregate(this.aggregate());
      this.timer = this.o.timers.setTimeout(tick, every);
    };
    this.timer = this.o.timers.setTimeout(tick, every);
  }

  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
  }

  /** One datagram (public for tests). */
  receive(buf: Buffer, from = '?'): void {
    const d = decodeLoadReport(buf, this.o.key);
    if (!d.ok) return this.reject(d.reason, d.detail, from);
    const r = d.report;
    if (r.site !== this.o.site) return this.reject('other-site', `report for site ${r.site}`, from);
    if (Math.abs(this.o.wallNow() - r.time) > this.o.maxSkewMs)
      return this.reject('skew', `time differs by ${this.o.wallNow() - r.time} ms`, from);
    const last = this.lastSeq.get(r.sender);
    const now = this.o.timers.now();
    // A sender restarted after its clock went back is taken once its old boot fell silent.
    if (!followsSequence(last, r.boot, r.seq, now, 2 * this.o.maxSkewMs))
      return this.reject('replay', `seq ${r.boot}/${r.seq} not after ${last!.boot}/${last!.seq}`, from);
    this.lastSeq.set(r.sender, { boot: r.boot, seq: r.seq, at: now });
    this.accepted.inc();
    this.servers.set(r.server, { at: this.o.timers.now(), report: r });
  }

  /** The site aggregate from fresh reports of servers that are up. */
  aggregate(): SiteFigures | undefined {
    const now = this.o.timers.now();
    let n = 0;
    let loadSum = 0;
    let loadN = 0;
    let respSum = 0;
    let respN = 0;
    let conns = 0;
    let connsN = 0;
    for (const [name, e] of this.servers) {
      if (now - e.at > this.o.staleAfterMs) {
        this.servers.delete(name);
        continue;
      }
      if (!e.report.up) continue;
      n++;
      if (e.report.load !== undefined) {
        loadSum += e.report.load;
        loadN++;
      }
      if (e.report.responseMs !== undefined) {
        respSum += e.report.responseMs;
        respN++;
      }
      if (e.report.connections !== undefined) {
        conns += e.report.connections;
        connsN++;
      }
    }
    if (n === 0) return undefined;
    const f: SiteFigures = {};
    if (loadN) f.load = round(loadSum / loadN);
    if (respN) f.responseMs = round(respSum / respN);
    if (connsN) f.connections = conns;
    return f;
  }

  private reject(reason: LoadRejectReason, detail: string, from: string): void {
    this.rejected.inc({ reason });
    const now = this.o.timers.now();
    if ((this.lastLog.get(reason) ?? -Infinity) + 10_000 > now) return;
    this.lastLog.set(reason, now);
    this.o.logger?.warn(
      { reason, detail, from },
      'load report refused (further ones of this reason are counted, logged at most every 10 s)',
    );
  }
}

/** The UDP socket of `load-reports.listen`. */
export class LoadReportListener {
  private socket?: Socket;
  constructor(
    readonly listen: { host: string; port: number },
    private readonly aggregator: LoadAggregator,
  ) {}

  async start(): Promise<{ host: string; port: number }> {
    const s = createSocket({ type: isIPv6(this.listen.host) ? 'udp6' : 'udp4' });
    s.on('message', (buf, r) => this.aggregator.receive(buf, `${r.address}:${r.port}`));
    s.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(this.listen.port, this.listen.host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    this.socket = s;
    this.aggregator.start();
    const a = s.address();
    return { host: a.address, port: a.port };
  }

  async stop(): Promise<void> {
    this.aggregator.stop();
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
