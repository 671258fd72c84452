import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay that adds a one-way delay in each direction: a WAN link between two sites of the
 * lab when `tc netem` is not available (it needs the kernel's sch_netem). Each chunk is held
 * `delayMs` before it is written on, so a request/response pair gains 2 × delayMs plus one more
 * 2 × delayMs for the connection set-up (the relay's SYN/ACK is immediate, but the first bytes
 * wait). The upstream connection is made from the client's own address, so the far side sees
 * the sender it would see without the relay (HAProxy's `src` ACLs keep working).
 */
export interface TcpDelay {
  host: string;
  port: number;
  stop(): Promise<void>;
}

export async function startTcpDelay(listen: { host: string; port: number }, target: { host: string; port: number }, delayMs: number): Promise<TcpDelay> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: target.host, port: target.port, localAddress: client.remoteAddress });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    relay(client, upstream, delayMs);
    relay(upstream, client, delayMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, resolve);
  });
  return {
    ...listen,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Chunks keep their order: timers of equal delay fire in the order they were set. */
function relay(from: Socket, to: Socket, delayMs: number): void {
  from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
  from.on('end', () => setTimeout(() => to.destroyed || to.end(), delayMs));
  from.on('close', (hadError) => hadError && setTimeout(() => to.destroy(), delayMs));
}
