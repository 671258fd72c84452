import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay that adds a one-way delay in each direction: a WAN link between two sites of the
 * lab when `tc netem` is not available (it needs the kernel's sch_netem). Each chunk is held
 * `delayMs` before it is written on, so a request/response pair gains 2 × delayMs; the first
 * bytes of each new connection wait 2 × delayMs more, the round trip a real TCP handshake costs
 * (the relay accepts locally at once). The upstream connection is made from the client's own
 * address, so the far side sees the sender it would see without the relay (HAProxy's `src` ACLs
 * keep working).
 */
export interface TcpDelay {
  host: string;
  port: number;
  stop(): Promise<void>;
}

export async function startTcpDelay(
  listen: { host: string; port: number },
  target: { host: string; port: number },
  delayMs: number,
): Promise<TcpDelay> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: target.host, port: target.port, localAddress: client.remoteAddress });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    relay(client, upstream, delayMs, 2 * delayMs);
    relay(upstream, client, delayMs, 0);
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

/**
 * One queue per direction, drained in order by one timer: each chunk leaves `delayMs` after it
 * came (the first ones of the connection not before the handshake's round trip is over), and
 * never before the chunk ahead of it. The end of the stream follows the last chunk.
 */
function relay(from: Socket, to: Socket, delayMs: number, handshakeMs: number): void {
  const opened = performance.now();
  const queue: { due: number; chunk: Buffer | 'end' }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now + 0.5) {
      const { chunk } = queue.shift()!;
      if (to.destroyed) continue;
      if (chunk === 'end') to.end();
      else to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - now);
  };
  const push = (chunk: Buffer | 'end') => {
    const now = performance.now();
    const last = queue.at(-1)?.due ?? 0;
    queue.push({ due: Math.max(now + delayMs, opened + delayMs + handshakeMs, last), chunk });
    if (!timer) timer = setTimeout(drain, queue[0]!.due - now);
  };
  from.on('data', (chunk: Buffer) => push(chunk));
  from.on('end', () => push('end'));
  from.on('close', (hadError) => {
    if (hadError) setTimeout(() => to.destroy(), delayMs);
  });
}
