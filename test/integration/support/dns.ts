import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import * as packet from 'dns-packet';

export interface QueryOptions {
  tcp?: boolean;
  timeoutMs?: number;
  /** EDNS client subnet, e.g. "192.0.2.0/24". */
  subnet?: string;
}

let nextId = 1;

/** One DNS query over UDP or TCP to a test server; resolves to the decoded answer. */
export function query(
  host: string,
  port: number,
  name: string,
  type: string,
  opts: QueryOptions = {},
): Promise<packet.Packet> {
  const id = (nextId = (nextId + 1) & 0xffff);
  const additionals: packet.Answer[] = [];
  if (opts.subnet) {
    const [ip, bits] = opts.subnet.split('/');
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      flags: 0,
      options: [{ code: 'CLIENT_SUBNET', ip: ip!, sourcePrefixLength: Number(bits) }],
    } as unknown as packet.Answer);
  }
  const q: packet.Packet = {
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ type: type as packet.RecordType, name, class: 'IN' }],
    additionals,
  };
  return opts.tcp ? tcpQuery(host, port, q, opts.timeoutMs ?? 2000) : udpQuery(host, port, q, opts.timeoutMs ?? 2000);
}

function udpQuery(host: string, port: number, q: packet.Packet, timeoutMs: number): Promise<packet.Packet> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no DNS answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('message', (msg) => {
      const res = packet.decode(msg);
      if (res.id !== q.id) return;
      clearTimeout(timer);
      sock.close();
      resolve(res);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(packet.encode(q), port, host);
  });
}

function tcpQuery(host: string, port: number, q: packet.Packet, timeoutMs: number): Promise<packet.Packet> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, host);
    let buf = Buffer.alloc(0);
    sock.setTimeout(timeoutMs, () => {
      sock.destroy();
      reject(new Error(`no DNS answer over TCP from ${host}:${port} within ${timeoutMs} ms`));
    });
    sock.on('connect', () => sock.write(packet.streamEncode(q)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.end();
        resolve(packet.streamDecode(buf) as packet.Packet);
      }
    });
    sock.on('error', reject);
  });
}

/** Addresses (A/AAAA data) in the answer section, in order. */
export function addresses(res: packet.Packet): string[] {
  return (res.answers ?? [])
    .filter((a) => a.type === 'A' || a.type === 'AAAA')
    .map((a) => String((a as { data: unknown }).data));
}

/** The response code name (dns-packet decodes it; its types omit it). */
export function rcode(res: packet.Packet): string {
  return (res as { rcode?: string }).rcode ?? 'NOERROR';
}
