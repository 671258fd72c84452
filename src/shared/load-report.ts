import { mac as hmac, MAC_BYTES as MAC, macMatches } from './envelope.js';

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
  return Buffer.concat([body, hmac(key, body)]);
}

export function decodeLoadReport(
  buf: Buffer,
  key: Buffer,
): { ok: true; report: LoadReport } | { ok: false; reason: LoadRejectReason; detail: string } {
  const fail = (reason: LoadRejectReason, detail: string) => ({ ok: false as const, reason, detail });
  if (buf.length > MAX || buf.length < 3 + MAC + 30) return fail('malformed', `${buf.length} bytes`);
  if (buf.readUInt16BE(0) !== MAGIC) return fail('malformed', 'bad magic');
  if (buf[2] !== LOAD_REPORT_VERSION) return fail('version', `version ${buf[2]}`);
  const body = buf.subarray(0, buf.length - MAC);
  if (!macMatches(key, body, buf.subarray(buf.length - MAC))) return fail('bad-mac', 'MAC does not match the key');
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
