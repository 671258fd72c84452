import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

export interface Address {
  host: string;
  port: number;
}

/** How the peer service sends and receives datagrams: UDP in the daemon, a fake network in unit tests. */
export interface Transport {
  start(onMessage: (buf: Buffer, from: Address) => void): Promise<void>;
  send(buf: Buffer, to: Address): void;
  stop(): Promise<void>;
}

/** One UDP socket bound to the configured address only; send errors (no route, refused) are counted, not thrown. */
export class UdpTransport implements Transport {
  private socket?: Socket;
  sendErrors = 0;

  constructor(readonly listen: Address) {}

  async start(onMessage: (buf: Buffer, from: Address) => void): Promise<void> {
    const socket = createSocket({ type: isIPv6(this.listen.host) ? 'udp6' : 'udp4' });
    socket.on('message', (buf, rinfo) => onMessage(buf, { host: rinfo.address, port: rinfo.port }));
    // ICMP port-unreachable of an earlier send surfaces here on some systems: not fatal.
    socket.on('error', () => this.sendErrors++);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.listen.port, this.listen.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
  }

  send(buf: Buffer, to: Address): void {
    this.socket?.send(buf, to.port, to.host, (err) => {
      if (err) this.sendErrors++;
    });
  }

  async stop(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
