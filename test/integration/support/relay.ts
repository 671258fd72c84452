import { createConnection, createServer, type Server, type Socket } from 'node:net';

export type Endpoint = string | { host: string; port: number };

/**
 * A relay the test can cut and switch: it forwards each connection to `target` (a unix socket
 * path or a TCP address); `pause()` stops listening (new connections are refused) and drops
 * every relayed connection; `stall()` keeps accepting but forwards nothing (a peer that hangs:
 * the client times out, where a refusal would tell it nothing is running); `resume()` listens or
 * forwards again, dropping stalled connections; `target` may change between connections (a
 * restarted HAProxy with a new socket).
 */
export async function startRelay(listen: Endpoint, target: Endpoint, tap?: (toTarget: Buffer) => void) {
  const conns = new Set<Socket>();
  const held = new Set<Socket>();
  let server: Server | undefined;
  let stalled = false;
  const relay = {
    target,
    connections: 0,
    /** Relayed connections open now. */
    get open(): number {
      return conns.size / 2;
    },
    async resume(): Promise<void> {
      stalled = false;
      for (const c of held) c.destroy();
      held.clear();
      if (server) return;
      const s = createServer((client) => {
        if (stalled) {
          held.add(client.on('error', () => {}));
          return;
        }
        relay.connections++;
        const upstream =
          typeof relay.target === 'string'
            ? createConnection(relay.target)
            : createConnection(relay.target.port, relay.target.host);
        for (const c of [client, upstream]) {
          conns.add(c);
          c.on('error', () => {});
          c.on('close', () => (conns.delete(c), client.destroy(), upstream.destroy()));
        }
        if (tap) client.on('data', tap);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        if (typeof listen === 'string') s.listen(listen, () => resolve());
        else s.listen(listen.port, listen.host, () => resolve());
      });
      server = s;
    },
    async pause(): Promise<void> {
      for (const c of held) c.destroy();
      held.clear();
      const s = server;
      server = undefined;
      for (const c of conns) c.destroy();
      if (s) await new Promise((r) => s.close(r));
    },
    /** Accepts connections and holds them without a byte forwarded, until resume(). */
    stall(): void {
      stalled = true;
      for (const c of conns) c.destroy();
    },
    /** Drops every relayed connection but keeps listening. */
    cut(): void {
      for (const c of conns) c.destroy();
    },
  };
  await relay.resume();
  return relay;
}
