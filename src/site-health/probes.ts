import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, isIPv4 } from 'node:net';
import type { ProbesConfig } from '../config/index.js';
import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import type { ProbeFigures } from './metrics-table.js';

/** One measurement of the way to an address: `count` echo requests (or connects). */
export interface ProbeMethod {
  readonly name: 'icmp' | 'tcp';
  measure(target: string, count: number, timeoutMs: number): Promise<Omit<ProbeFigures, 'at'>>;
}

// ---------------------------------------------------------------- TCP connect (always available)

/** Connect time to target:port; a refused connection still measures a round trip (the RST). */
export class TcpProbe implements ProbeMethod {
  readonly name = 'tcp' as const;
  constructor(private readonly port: number) {}

  async measure(target: string, count: number, timeoutMs: number): Promise<Omit<ProbeFigures, 'at'>> {
    const per = Math.max(10, Math.floor(timeoutMs / count));
    const rtts: number[] = [];
    for (let i = 0; i < count; i++) {
      const ms = await tcpOnce(target, this.port, per);
      if (ms !== undefined) rtts.push(ms);
    }
    return summarise(rtts, count, undefined, 'tcp');
  }
}

function tcpOnce(host: string, port: number, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = performance.now();
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok ? performance.now() - started : undefined);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'));
  });
}

// ---------------------------------------------------------------- ICMP echo through libc (koffi)

const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_DGRAM = 2;
const IPPROTO_ICMP = 1;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

interface Libc {
  socket(domain: number, type: number, proto: number): number;
  setsockopt(fd: number, level: number, name: number, val: Buffer, len: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  recvAsync(fd: number, buf: Buffer, len: number, flags: number, cb: (err: unknown, n: number) => void): void;
  close(fd: number): number;
  errno(): number;
}

let libc: Libc | undefined | null;
let libcError = '';

/** libc through koffi, or null when koffi cannot load (its native part missing) — with the reason. */
export function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    const recv = lib.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)');
    libc = {
      socket: lib.func('int socket(int, int, int)') as Libc['socket'],
      setsockopt: lib.func('int setsockopt(int, int, int, const uint8_t *, uint32_t)') as Libc['setsockopt'],
      sendto: lib.func('long sendto(int, const uint8_t *, size_t, int, const uint8_t *, uint32_t)') as Libc['sendto'],
      recvAsync: (fd, buf, len, flags, cb) => recv.async(fd, buf, len, flags, cb),
      close: lib.func('int close(int)') as Libc['close'],
      errno: () => koffi.errno(),
    };
  } catch (err) {
    libcError = (err as Error).message;
    libc = null;
  }
  return libc;
}

export interface IcmpAvailability {
  ok: boolean;
  /** 'dgram' (unprivileged ping socket), 'raw' (root / CAP_NET_RAW). */
  kind?: 'dgram' | 'raw';
  why?: string;
}

/**
 * Whether ICMP echo can be sent here: a SOCK_DGRAM/IPPROTO_ICMP socket where
 * net.ipv4.ping_group_range allows, else a raw socket (root or CAP_NET_RAW).
 */
export function icmpAvailable(): IcmpAvailability {
  const c = loadLibc();
  if (!c) return { ok: false, why: `koffi cannot load: ${libcError}` };
  for (const [kind, type] of [
    ['dgram', SOCK_DGRAM],
    ['raw', SOCK_RAW],
  ] as const) {
    const fd = c.socket(AF_INET, type, IPPROTO_ICMP);
    if (fd >= 0) {
      c.close(fd);
      return { ok: true, kind };
    }
  }
  return {
    ok: false,
    why: `socket(AF_INET, SOCK_DGRAM|SOCK_RAW, IPPROTO_ICMP) failed with errno ${c.errno()} (ping_group_range excludes us, and no CAP_NET_RAW)`,
  };
}

/** ICMP echo (IPv4): rtt per reply, completion, hops from the reply's TTL (raw sockets only). */
export class IcmpProbe implements ProbeMethod {
  readonly name = 'icmp' as const;
  private readonly ident = randomInt(1, 0xffff);
  private seq = 0;

  constructor(private readonly kind: 'dgram' | 'raw') {}

  async measure(target: string, count: number, timeoutMs: number): Promise<Omit<ProbeFigures, 'at'>> {
    if (!isIPv4(target)) throw new Error('ICMP probes are IPv4 only here; IPv6 uses TCP connect');
    const c = loadLibc();
    if (!c) throw new Error(`koffi cannot load: ${libcError}`);
    const fd = c.socket(AF_INET, this.kind === 'raw' ? SOCK_RAW : SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0) throw new Error(`ICMP socket failed (errno ${c.errno()})`);
    try {
      const per = Math.max(10, Math.floor(timeoutMs / count));
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(BigInt(Math.floor(per / 1000)), 0);
      tv.writeBigInt64LE(BigInt((per % 1000) * 1000), 8);
      c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
      const addr = sockaddrIn(target);
      const rtts: number[] = [];
      let ttl: number | undefined;
      for (let i = 0; i < count; i++) {
        const seq = (this.seq = (this.seq + 1) & 0xffff);
        const pkt = echoRequest(this.ident, seq);
        const started = performance.now();
        if (c.sendto(fd, pkt, pkt.length, 0, addr, addr.length) < 0) continue;
        const deadline = started + per;
        for (;;) {
          const buf = Buffer.alloc(1500);
          const n = await new Promise<number>((r) =>
            c.recvAsync(fd, buf, buf.length, 0, (err, got) => r(err ? -1 : got)),
          );
          if (n <= 0) break; // timeout (SO_RCVTIMEO) or error
          const reply = parseReply(buf.subarray(0, n), this.kind, target);
          if (reply && reply.seq === seq && (this.kind === 'dgram' || reply.ident === this.ident)) {
            rtts.push(performance.now() - started);
            if (reply.ttl !== undefined) ttl = reply.ttl;
            break;
          }
          if (performance.now() > deadline) break;
        }
      }
      return summarise(rtts, count, ttl === undefined ? undefined : hopsFromTtl(ttl), 'icmp');
    } finally {
      c.close(fd);
    }
  }
}

function sockaddrIn(ip: string): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(0, 2);
  ip.split('.').forEach((p, i) => b.writeUInt8(Number(p), 4 + i));
  return b;
}

export function echoRequest(ident: number, seq: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(8, 0);
  b.writeUInt16BE(ident, 4);
  b.writeUInt16BE(seq, 6);
  b.writeDoubleBE(Date.now(), 8);
  b.writeUInt16BE(checksum(b), 2);
  return b;
}

export function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An echo reply: raw sockets include the IP header (TTL at byte 8, source at 12). */
export function parseReply(
  b: Buffer,
  kind: 'dgram' | 'raw',
  from: string,
): { ident: number; seq: number; ttl?: number } | undefined {
  let icmp = b;
  let ttl: number | undefined;
  if (kind === 'raw') {
    if (b.length < 20) return undefined;
    const ihl = (b[0]! & 0x0f) * 4;
    const src = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
    if (src !== from) return undefined;
    ttl = b[8];
    icmp = b.subarray(ihl);
  }
  if (icmp.length < 8 || icmp[0] !== 0) return undefined;
  return { ident: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6), ...(ttl !== undefined ? { ttl } : {}) };
}

/** Hops from a received TTL: senders start at 64, 128 or 255. */
export function hopsFromTtl(ttl: number): number {
  const start = ttl <= 64 ? 64 : ttl <= 128 ? 128 : 255;
  return start - ttl;
}

function summarise(
  rtts: number[],
  count: number,
  hops: number | undefined,
  method: 'icmp' | 'tcp',
): Omit<ProbeFigures, 'at'> {
  const rttMs = rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : Infinity;
  return {
    rttMs: Math.round(rttMs * 1000) / 1000,
    completion: rtts.length / count,
    ...(hops !== undefined ? { hops } : {}),
    method,
  };
}

// ---------------------------------------------------------------- scheduling

export interface ProberOptions {
  config: ProbesConfig;
  timers: Timers;
  /** Clock for `at` of results (the orderings' clock). */
  clock(): number;
  onResult(key: string, figures: ProbeFigures): void;
  logger?: Logger;
  /** Override the method (tests). */
  method?: ProbeMethod;
  /** IPv6 targets (and the fallback when ICMP fails): TCP connect. */
  fallback?: ProbeMethod;
}

/**
 * Probes client networks on request, never on the lookup path: `request` only queues. At most
 * `max-per-second` probes start per second, one network is probed once at a time, results are
 * kept `expire-ms` (per /24 or /48, by key), and the queue is bounded by `max-pending`.
 */
export class Prober {
  readonly method: ProbeMethod;
  private readonly fallback: ProbeMethod;
  private readonly queue = new Map<string, string>();
  private readonly inFlight = new Set<string>();
  private readonly done = new Map<string, number>();
  private timer: unknown;
  private running = 0;
  private tokens: number;
  private lastRefill: number;
  private stopped = false;
  started = 0;
  dropped = 0;

  constructor(private readonly o: ProberOptions) {
    this.fallback = o.fallback ?? new TcpProbe(o.config['tcp-port']);
    this.method = o.method ?? chooseMethod(o.config, this.fallback, o.logger);
    this.tokens = o.config['max-per-second'];
    this.lastRefill = o.timers.now();
  }

  /** Asks for a probe of a network (key "192.0.2.0/24") at target; returns at once. */
  request(key: string, target: string): void {
    if (this.stopped || this.queue.has(key) || this.inFlight.has(key)) return;
    const at = this.done.get(key);
    if (at !== undefined && this.o.clock() - at < this.o.config['expire-ms']) return;
    if (this.queue.size >= this.o.config['max-pending']) {
      this.dropped++;
      return;
    }
    this.queue.set(key, target);
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.clear();
  }

  get pending(): number {
    return this.queue.size;
  }

  private pump(): void {
    if (this.stopped) return;
    const rate = this.o.config['max-per-second'];
    const now = this.o.timers.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.lastRefill) * rate) / 1000);
    this.lastRefill = now;
    while (this.queue.size > 0 && this.tokens >= 1 && this.running < 16) {
      const [key, target] = this.queue.entries().next().value!;
      this.queue.delete(key);
      this.tokens -= 1;
      void this.run(key, target);
    }
    if (this.queue.size > 0 && this.timer === undefined) {
      const wait = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / rate));
      this.timer = this.o.timers.setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, wait);
    }
  }

  private async run(key: string, target: string): Promise<void> {
    this.inFlight.add(key);
    this.running++;
    this.started++;
    const c = this.o.config;
    try {
      const useFallback = this.method.name === 'icmp' && !isIPv4(target);
      let r: Omit<ProbeFigures, 'at'>;
      try {
        r = await (useFallback ? this.fallback : this.method).measure(target, c.count, c['timeout-ms']);
      } catch (err) {
        this.o.logger?.debug({ key, err: (err as Error).message }, 'probe failed; trying TCP connect');
        r = await this.fallback.measure(target, c.count, c['timeout-ms']);
      }
      const at = this.o.clock();
      this.done.set(key, at);
      if (this.done.size > c['max-entries']) this.done.delete(this.done.keys().next().value!);
      if (!this.stopped) this.o.onResult(key, { ...r, at });
    } finally {
      this.inFlight.delete(key);
      this.running--;
      this.pump();
    }
  }
}

function chooseMethod(c: ProbesConfig, tcp: ProbeMethod, logger?: Logger): ProbeMethod {
  if (c.method === 'tcp') return tcp;
  const avail = icmpAvailable();
  if (avail.ok) {
    logger?.info({ socket: avail.kind }, 'probes: ICMP echo through libc (koffi)');
    return new IcmpProbe(avail.kind!);
  }
  if (c.method === 'icmp') throw new Error(`probes.method icmp: ${avail.why}`);
  logger?.warn({ why: avail.why, port: c['tcp-port'] }, 'probes: ICMP not available; using TCP connect time');
  return tcp;
}
