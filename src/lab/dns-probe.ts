import { createSocket } from 'node:dgram';

/**
 * A minimal DNS query over UDP: enough to tell that a server answers (readiness), without a
 * DNS library in the product's dependencies. Resolves with the response's rcode.
 */
export function query(
  host: string,
  port: number,
  name: string,
  _type: 'SOA',
  opts: { timeoutMs: number },
): Promise<number> {
  const id = Math.floor(Math.random() * 0xffff);
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  const qname = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
  const header = Buffer.from([id >> 8, id & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  const msg = Buffer.concat([header, qname, Buffer.from([0, 6, 0, 1])]);
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no answer from ${host}:${port}`));
    }, opts.timeoutMs);
    sock.on('message', (res) => {
      if (res.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      sock.close();
      resolve(res[3]! & 0x0f);
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(msg, port, host);
  });
}
