import { createSocket } from 'node:dgram';

export interface UdpProxy {
  host: string;
  port: number;
  /** Share of datagrams dropped (0: none, 1: all), decided per datagram. */
  lossRate: number;
  forwarded: number;
  dropped: number;
  /** The last datagrams seen (forwarded or dropped), newest last: for replay tests. */
  recent: Buffer[];
  stop(): Promise<void>;
}

/**
 * A one-way UDP relay on loopback that drops a chosen share of datagrams: how tests and benchmarks
 * lose heartbeats without a firewall. `random` is injectable for reproducible loss.
 */
export async function startUdpProxy(
  host: string,
  target: { host: string; port: number },
  random: () => number = Math.random,
): Promise<UdpProxy> {
  const sock = createSocket('udp4');
  const out = createSocket('udp4');
  out.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, host, () => resolve());
  });
  sock.on('error', () => {});
  const proxy: UdpProxy = {
    host,
    port: sock.address().port,
    lossRate: 0,
    forwarded: 0,
    dropped: 0,
    recent: [],
    async stop() {
      await Promise.all([
        new Promise<void>((r) => sock.close(() => r())),
        new Promise<void>((r) => out.close(() => r())),
      ]);
    },
  };
  sock.on('message', (msg) => {
    proxy.recent.push(msg);
    if (proxy.recent.length > 20) proxy.recent.shift();
    if (proxy.lossRate > 0 && random() < proxy.lossRate) {
      proxy.dropped++;
      return;
    }
    proxy.forwarded++;
    out.send(msg, target.port, target.host);
  });
  return proxy;
}
