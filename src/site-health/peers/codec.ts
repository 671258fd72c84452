import { KEY_MIN_BYTES } from '../../shared/secrets.js';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { formatV6, parseClient, probeKey } from '../client.js';

/**
 * The heartbeat wire format (version 1): one UDP datagram, big-endian, at most 511 bytes.
 *
 *   0  'M' 'S'            magic
 *   2  u8 version         1
 *   3  u8 type            1 heartbeat, 2 announce
 *   4  str site           u8 length + ASCII (the sender's site)
 *      str sender         u8 length + ASCII (which backend of that site)
 *      u48 boot           sender's wall-clock ms when it started (orders its restarts)
 *      u32 seq            per boot, +1 per message (replay protection)
 *      u48 time           sender's wall-clock ms when sent (clock-skew bound)
 *      body               heartbeat: u8 pool (0 unknown, 1 up, 2 down), u16 usable, u16 servers,
 *                           u16 load ×100, u32 response µs, u32 replication lag ms (all-ones = unknown)
 *                         announce: str subject, u8 state (0 down, 1 up), str reason (UTF-8, ≤ 200 bytes)
 *                         probes: u8 count (≤ 16), then per entry: u8 family (4, 6), the client
 *                           network's prefix (3 bytes of a /24, 6 of a /48), u32 rtt µs, u16
 *                           completion ×10000, u8 hops (255 unknown), u8 method (0 icmp, 1 tcp),
 *                           u32 age ms (how long before sending it was measured)
 *      32 bytes           HMAC-SHA256(key, every byte before it)
 *
 * decode() checks size, magic, version and the MAC before it reads a single field, and refuses
 * trailing bytes: a message is trusted whole or not at all.
 */

export const WIRE_VERSION = 1;
export const MAX_DATAGRAM = 511;
const MAGIC = 0x4d53;
const MAC_BYTES = 32;
const HEADER_MIN = 4 + 1 + 1 + 6 + 4 + 6;
const MAX_NAME = 63;
const MAX_REASON = 200;
const U16_NONE = 0xffff;
const U32_NONE = 0xffffffff;
const U48_MAX = 2 ** 48 - 1;

export type PoolFlag = 'unknown' | 'up' | 'down';

/** What a site tells its peers about itself. Missing numbers are unknown. */
export interface SiteSummary {
  pool: PoolFlag;
  usable?: number;
  servers?: number;
  /** Load, e.g. CPU load average or percent (0..655.34). */
  load?: number;
  /** Mean response time in ms (µs resolution). */
  responseMs?: number;
  replicationLagMs?: number;
}

interface Envelope {
  site: string;
  sender: string;
  boot: number;
  seq: number;
  time: number;
}

export interface Heartbeat extends Envelope {
  type: 'heartbeat';
  summary: SiteSummary;
}

export interface Announce extends Envelope {
  type: 'announce';
  subject: string;
  state: 'down' | 'up';
  reason: string;
}

/** A site's probe result for one client network, as shared with its peers. */
export interface SharedProbe {
  /** The client network as probes are keyed: "a.b.c.0/24" or "x:y:z::/48". */
  key: string;
  rttMs: number;
  completion: number;
  hops?: number;
  method: 'icmp' | 'tcp';
  /** ms between the measurement and sending. */
  ageMs: number;
}

export interface Probes extends Envelope {
  type: 'probes';
  entries: SharedProbe[];
}

/** Probe entries per datagram: fits 511 bytes even with 63-byte site and sender names. */
export const MAX_PROBES = 16;

export type Message = Heartbeat | Announce | Probes;

/** Why a datagram was not trusted (also the `reason` label of the rejected-heartbeats counter). */
export type RejectReason = 'malformed' | 'version' | 'bad-mac' | 'replay' | 'skew' | 'unknown-site' | 'own-site';

export type Decoded = { ok: true; msg: Message } | { ok: false; reason: RejectReason; detail: string };

const TYPES = { heartbeat: 1, announce: 2, probes: 3 } as const;
const METHODS = ['icmp', 'tcp'] as const;
const U8_NONE = 0xff;
const POOL: PoolFlag[] = ['unknown', 'up', 'down'];

class Writer {
  private readonly buf = Buffer.alloc(MAX_DATAGRAM);
  private at = 0;
  u8(v: number): this {
    this.at = this.buf.writeUInt8(v, this.at);
    return this;
  }
  u16(v: number | undefined): this {
    this.at = this.buf.writeUInt16BE(v === undefined ? U16_NONE : clampInt(v, 0, U16_NONE - 1), this.at);
    return this;
  }
  u32(v: number | undefined): this {
    this.at = this.buf.writeUInt32BE(v === undefined ? U32_NONE : clampInt(v, 0, U32_NONE - 1), this.at);
    return this;
  }
  u48(v: number): this {
    this.at = this.buf.writeUIntBE(clampInt(v, 0, U48_MAX), this.at, 6);
    return this;
  }
  str(s: string, max: number, what: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.length > max) throw new RangeError(`${what} is ${b.length} bytes; at most ${max}`);
    this.u8(b.length);
    this.at += b.copy(this.buf, this.at);
    return this;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

function writeProbe(w: Writer, e: SharedProbe): void {
  const net = parseClient(e.key);
  if (!net || probeKey(net) !== e.key) throw new RangeError(`probe key '${e.key}' is not a /24 or /48 network`);
  w.u8(net.family);
  if (net.family === 4)
    w.u8(net.v4 >>> 24)
      .u8((net.v4 >>> 16) & 255)
      .u8((net.v4 >>> 8) & 255);
  else for (let i = 0; i < 6; i++) w.u8(Number((net.v6 >> BigInt(120 - i * 8)) & 0xffn));
  w.u32(e.rttMs * 1000)
    .u16(e.completion * 10_000)
    .u8(e.hops === undefined ? U8_NONE : clampInt(e.hops, 0, U8_NONE - 1))
    .u8(METHODS.indexOf(e.method))
    .u32(e.ageMs);
}

function readProbe(r: Reader): SharedProbe {
  const family = r.u8();
  let key: string;
  if (family === 4) key = `${r.u8()}.${r.u8()}.${r.u8()}.0/24`;
  else if (family === 6) {
    let v6 = 0n;
    for (let i = 0; i < 6; i++) v6 = (v6 << 8n) | BigInt(r.u8());
    key = `${formatV6(v6 << 80n)}/48`;
  } else throw new Malformed(`bad probe family ${family}`);
  const rtt = r.u32();
  const completion = r.u16();
  const hops = r.u8();
  const method = METHODS[r.u8()];
  const age = r.u32();
  if (rtt === undefined || completion === undefined || completion > 10_000 || !method || age === undefined)
    throw new Malformed('bad probe entry');
  return {
    key,
    rttMs: rtt / 1000,
    completion: completion / 10_000,
    ...(hops !== U8_NONE ? { hops } : {}),
    method,
    ageMs: age,
  };
}

class Reader {
  at = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new Malformed(`truncated at byte ${this.at}`);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.at++);
  }
  u16(): number | undefined {
    this.need(2);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v === U16_NONE ? undefined : v;
  }
  u32(): number | undefined {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v === U32_NONE ? undefined : v;
  }
  u48(): number {
    this.need(6);
    const v = this.buf.readUIntBE(this.at, 6);
    this.at += 6;
    return v;
  }
  name(what: string): string {
    const s = this.text(MAX_NAME, what);
    if (!/^[\x21-\x7e]+$/.test(s)) throw new Malformed(`${what} is not printable ASCII`);
    return s;
  }
  text(max: number, what: string): string {
    const n = this.u8();
    if (n > max) throw new Malformed(`${what} is ${n} bytes; at most ${max}`);
    this.need(n);
    const s = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  end(): void {
    if (this.at !== this.buf.length) throw new Malformed(`${this.buf.length - this.at} trailing bytes`);
  }
}

class Malformed extends Error {}

function clampInt(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(v)));
}

/** The shared key must be long enough to resist guessing: at least 16 bytes. */
export function checkKey(key: Buffer): Buffer {
  if (key.length < KEY_MIN_BYTES)
    throw new Error(`the heartbeat key must be at least ${KEY_MIN_BYTES} bytes (has ${key.length})`);
  return key;
}

function mac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Encodes and signs a message. Throws RangeError when a name or reason is too long. */
export function encode(msg: Message, key: Buffer): Buffer {
  const w = new Writer();
  w.u8(MAGIC >> 8)
    .u8(MAGIC & 0xff)
    .u8(WIRE_VERSION)
    .u8(TYPES[msg.type]);
  w.str(msg.site, MAX_NAME, 'site').str(msg.sender, MAX_NAME, 'sender').u48(msg.boot).u32(msg.seq).u48(msg.time);
  if (msg.type === 'heartbeat') {
    const s = msg.summary;
    w.u8(POOL.indexOf(s.pool)).u16(s.usable).u16(s.servers);
    w.u16(s.load === undefined ? undefined : s.load * 100)
      .u32(s.responseMs === undefined ? undefined : s.responseMs * 1000)
      .u32(s.replicationLagMs);
  } else if (msg.type === 'announce') {
    w.str(msg.subject, MAX_NAME, 'subject')
      .u8(msg.state === 'down' ? 0 : 1)
      .str(truncateUtf8(msg.reason, MAX_REASON), MAX_REASON, 'reason');
  } else {
    if (msg.entries.length > MAX_PROBES)
      throw new RangeError(`${msg.entries.length} probe entries; at most ${MAX_PROBES} per datagram`);
    w.u8(msg.entries.length);
    for (const e of msg.entries) writeProbe(w, e);
  }
  const body = w.bytes();
  return Buffer.concat([body, mac(key, body)]);
}

/** Verifies and decodes one datagram. Never throws. */
export function decode(buf: Buffer, key: Buffer): Decoded {
  const fail = (reason: RejectReason, detail: string): Decoded => ({ ok: false, reason, detail });
  if (buf.length > MAX_DATAGRAM) return fail('malformed', `${buf.length} bytes; at most ${MAX_DATAGRAM}`);
  if (buf.length < HEADER_MIN + MAC_BYTES) return fail('malformed', `${buf.length} bytes is too short`);
  if (buf.readUInt16BE(0) !== MAGIC) return fail('malformed', 'bad magic');
  if (buf[2] !== WIRE_VERSION) return fail('version', `version ${buf[2]}; this build speaks ${WIRE_VERSION}`);
  const body = buf.subarray(0, buf.length - MAC_BYTES);
  if (!timingSafeEqual(mac(key, body), buf.subarray(buf.length - MAC_BYTES)))
    return fail('bad-mac', 'MAC does not match the shared key');
  try {
    const r = new Reader(body);
    r.at = 3;
    const type = r.u8();
    const env: Envelope = {
      site: r.name('site'),
      sender: r.name('sender'),
      boot: r.u48(),
      seq: r.u32() ?? U32_NONE,
      time: r.u48(),
    };
    let msg: Message;
    if (type === TYPES.heartbeat) {
      const pool = POOL[r.u8()];
      if (!pool) throw new Malformed('bad pool flag');
      const summary: SiteSummary = { pool };
      const usable = r.u16();
      const servers = r.u16();
      const load = r.u16();
      const resp = r.u32();
      const lag = r.u32();
      if (usable !== undefined) summary.usable = usable;
      if (servers !== undefined) summary.servers = servers;
      if (load !== undefined) summary.load = load / 100;
      if (resp !== undefined) summary.responseMs = resp / 1000;
      if (lag !== undefined) summary.replicationLagMs = lag;
      msg = { type: 'heartbeat', ...env, summary };
    } else if (type === TYPES.announce) {
      const subject = r.name('subject');
      const state = r.u8();
      if (state > 1) throw new Malformed('bad announced state');
      msg = {
        type: 'announce',
        ...env,
        subject,
        state: state === 0 ? 'down' : 'up',
        reason: r.text(MAX_REASON, 'reason'),
      };
    } else if (type === TYPES.probes) {
      const n = r.u8();
      if (n > MAX_PROBES) throw new Malformed(`${n} probe entries; at most ${MAX_PROBES}`);
      const entries: SharedProbe[] = [];
      for (let i = 0; i < n; i++) entries.push(readProbe(r));
      msg = { type: 'probes', ...env, entries };
    } else {
      throw new Malformed(`unknown message type ${type}`);
    }
    r.end();
    return { ok: true, msg };
  } catch (err) {
    if (err instanceof Malformed) return fail('malformed', err.message);
    throw err;
  }
}

/** Cuts a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > max - 3) break;
    out += ch;
  }
  return `${out}...`;
}
