import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import type { SiteFigures } from '../pdns-backend/policies.js';

/**
 * Load reports (version 1): one UDP datagram per web server, from its site's agent to the site's
 * backends, big-endian, HMAC-SHA256 like heartbeats.
 *
 *   0  'M' 'L'            magic
 *   2  u8 version         1
 *   3  str site           u8 length + ASCII
 *      str sender         the agent's node name
 *      str server         "BACKEND/SERVER"
 *      u48 boot           sender's wall-clock ms at start
 *      u32 seq            per boot, +1 per datagram (replay protection)
 *      u48 time           wall-clock ms when sent (skew bound)
 *      u8 up              1 if the agent answers HAProxy up/ready for it
 *      u16 load ×100      the load check's value (all-ones = unknown)
 *      u32 connections    (all-ones = unknown)
 *      u32 response µs    the message (or keyword) check's last duration (all-ones = unknown)
 *      32 bytes           HMAC-SHA256(key, every byte before it)
 */

export const LOAD_REPORT_VERSION = 1;
const MAGIC = 0x4d4c;
const MAC = 32;
const MAX = 511;
const U16_NONE = 0xffff;
const U32_NONE = 0xffffffff;

export interface LoadReport {
  site: string;
  sender: string;
  server: string;
  boot: number;
  seq: number;
  time: number;
  up: boolean;
  load?: number;
  connections?: number;
  responseMs?: number;
}

export type LoadRejectReason = 'malformed' | 'version' | 'bad-mac' | 'replay' | 'skew' | 'other-site';

export function encodeLoadReport(r: LoadReport, key: Buffer): Buffer {
  const buf = Buffer.alloc(MAX);
  let at = 0;
  const str = (s: string) => {
    const b = Buffer.from(s, 'ascii');
    if (b.length > 128 || !/^[\x21-\x7e]+$/.test(s)) throw new RangeError(`not a short printable name: ${s}`);
    at = buf.writeUInt8(b.length, at);
    at += b.copy(buf, at);
  };
  const clamp = (v: number, hi: number) => Math.max(0, Math.min(hi, Math.round(v)));
  at = buf.writeUInt16BE(MAGIC, at);
  at = buf.writeUInt8(LOAD_REPORT_VERSION, at);
  str(r.site);
  str(r.sender);
  str(r.server);
  at = buf.writeUIntBE(clamp(r.boot, 2 ** 48 - 1), at, 6);
  at = buf.writeUInt32BE(clamp(r.seq, U32_NONE - 1), at);
  at = buf.writeUIntBE(clamp(r.time, 2 ** 48 - 1), at, 6);
  at = buf.writeUInt8(r.up ? 1 : 0, at);
  at = buf.writeUInt16BE(r.load === undefined ? U16_NONE : clamp(r.load * 100, U16_NONE - 1), at);
  at = buf.writeUInt32BE(r.connections === undefined ? U32_NONE : clamp(r.connections, U32_NONE - 1), at);
  at = buf.writeUInt32BE(r.responseMs === undefined ? U32_NONE : clamp(r.responseMs * 1000, U32_NONE - 1), at);
  const body = buf.subarray(0, at);
  return Buffer.concat([body, createHmac('sha256', key).update(body).digest()]);
}

export function decodeLoadReport(buf: Buffer, key: Buffer): { ok: true; report: LoadReport } | { ok: false; reason: LoadRejectReason; detail: string } {
  const fail = (reason: LoadRejectReason, detail: string) => ({ ok: false as const, reason, detail });
  if (buf.length > MAX || buf.length < 3 + MAC + 30) return fail('malformed', `${buf.length} bytes`);
  if (buf.readUInt16BE(0) !== MAGIC) return fail('malformed', 'bad magic');
  if (buf[2] !== LOAD_REPORT_VERSION) return fail('version', `version ${buf[2]}`);
  const body = buf.subarray(0, buf.length - MAC);
  const mac = createHmac('sha256', key).update(body).digest();
  if (!timingSafeEqual(mac, buf.subarray(buf.length - MAC))) return fail('bad-mac', 'MAC does not match the key');
  let at = 3;
  const need = (n: number) => {
    if (at + n > body.length) throw new RangeError('truncated');
  };
  const str = () => {
    need(1);
    const n = body.readUInt8(at++);
    need(n);
    const s = body.toString('ascii', at, at + n);
    at += n;
    if (!/^[\x21-\x7e]+$/.test(s)) throw new RangeError('bad name');
    return s;
  };
  try {
    const site = str();
    const sender = str();
    const server = str();
    need(6 + 4 + 6 + 1 + 2 + 4 + 4);
    const boot = body.readUIntBE(at, 6);
    const seq = body.readUInt32BE(at + 6);
    const time = body.readUIntBE(at + 10, 6);
    const up = body.readUInt8(at + 16) === 1;
    const load = body.readUInt16BE(at + 17);
    const conns = body.readUInt32BE(at + 19);
    const resp = body.readUInt32BE(at + 23);
    at += 27;
    if (at !== body.length) throw new RangeError('trailing bytes');
    const report: LoadReport = { site, sender, server, boot, seq, time, up };
    if (load !== U16_NONE) report.load = load / 100;
    if (conns !== U32_NONE) report.connections = conns;
    if (resp !== U32_NONE) report.responseMs = resp / 1000;
    return { ok: true, report };
  } catch (err) {
    return fail('malformed', (err as Error).message);
  }
}

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
  private readonly lastSeq = new Map<string, { boot: number; seq: number }>();
  private readonly lastLog = new Map<string, number>();
  private timer: unknown;
  private stopped = true;
  readonly accepted: Counter;
  readonly rejected: Counter<'reason'>;

  constructor(private readonly o: LoadAggregatorOptions) {
    const registers = o.registry ? [o.registry] : [];
    this.accepted = new Counter({ name: 'multisite_load_reports_accepted_total', help: 'Load reports accepted', registers });
    this.rejected = new Counter({ name: 'multisite_load_reports_rejected_total', help: 'Load reports refused, by reason', labelNames: ['reason'], registers });
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
    if (Math.abs(this.o.wallNow() - r.time) > this.o.maxSkewMs) return this.reject('skew', `time differs by ${this.o.wallNow() - r.time} ms`, from);
    const last = this.lastSeq.get(r.sender);
    if (last && (r.boot < last.boot || (r.boot === last.boot && r.seq <= last.seq))) return this.reject('replay', `seq ${r.seq} after ${last.seq}`, from);
    this.lastSeq.set(r.sender, { boot: r.boot, seq: r.seq });
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
      if (e.report.load !== undefined) (loadSum += e.report.load), loadN++;
      if (e.report.responseMs !== undefined) (respSum += e.report.responseMs), respN++;
      if (e.report.connections !== undefined) (conns += e.report.connections), connsN++;
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
    this.o.logger?.warn({ reason, detail, from }, 'load report refused (further ones of this reason are counted, logged at most every 10 s)');
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
