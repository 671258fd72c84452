import { createConnection, createServer, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDb } from '../../../src/db/index.js';
import { migrate } from '../../../src/db-triggers/index.js';
import { createDatabases, dbUrl, dropDatabases } from '../support/pg.js';

/** Sends one line, resolves with the first line answered (or the error). */
export function exchange(to: { path: string } | { host: string; port: number }, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(to);
    let buf = '';
    c.setTimeout(5000, () => c.destroy(new Error('no answer in 5 s')));
    c.on('connect', () => c.write(`${line}\n`));
    c.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      resolve(buf.slice(0, nl));
      c.destroy();
    });
    c.on('error', reject);
    c.on('close', () => reject(new Error(`closed after '${buf}'`)));
  });
}

export const connectable = (to: { path: string } | { host: string; port: number }) =>
  new Promise<boolean>((r) => {
    const c = createConnection(to);
    c.once('connect', () => (c.destroy(), r(true)));
    c.once('error', () => r(false));
  });

/** The lookup line PowerDNS sends for NAME/A; the addresses answered, in order. */
export async function lookup(socket: string, qname: string): Promise<string[]> {
  const parameters = { local: '0.0.0.0', qname, qtype: 'A', 'real-remote': '127.0.0.1/32', remote: '127.0.0.1' };
  const reply = await exchange(
    { path: socket },
    JSON.stringify({ method: 'lookup', parameters: { ...parameters, 'zone-id': -1 } }),
  );
  const result = (JSON.parse(reply) as { result: { qtype: string; content: string }[] | false }).result;
  return result ? result.filter((r) => r.qtype === 'A').map((r) => r.content) : [];
}

/** A TCP listener standing in for a web server (the agent's tcp check connects to it). */
export async function tcpListener(host = '127.0.0.1', port = 0): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((res, rej) => (server.once('error', rej), server.listen(port, host, () => res())));
  return { server, port: (server.address() as { port: number }).port };
}

/** Two migrated databases (sites a and b) with one replicated table, `items`. */
export async function replicatedPair(): Promise<{ urls: Record<'a' | 'b', string>; drop(): Promise<void> }> {
  const names = await createDatabases('run', 2);
  const urls = { a: dbUrl(names[0]!), b: dbUrl(names[1]!) };
  try {
    for (const site of ['a', 'b'] as const) {
      const db = await openDb(urls[site]);
      try {
        await db.exec('CREATE TABLE items (id int PRIMARY KEY, v text)');
        await migrate(db, { site, tables: ['items'] });
      } finally {
        await db.close();
      }
    }
  } catch (err) {
    await dropDatabases(names);
    throw err;
  }
  return { urls, drop: () => dropDatabases(names) };
}

export interface RunConfig {
  dir: string;
  agentPort: number;
  webPort: number;
  /** The sites' databases; without them, no replication section. */
  urls?: Record<'a' | 'b', string>;
}

/** Site a's config with every part: backend (one balanced name), agent (one server), replication. */
export function writeRunConfig(c: RunConfig, name = 'site-a.yaml'): string {
  const D = c.dir;
  const file = join(D, name);
  writeFileSync(
    file,
    `site: a
sites: [{ name: a }, { name: b }]
backend:
  socket: ${D}/backend.sock
  control: ${D}/control.sock
  state-file: ${D}/state.json
zones:
  - name: example.com
    records:
      - "@ SOA ns1 hostmaster 1 3600 600 86400 60"
      - "@ NS ns1"
      - "ns1 A 192.0.2.53"
balanced:
  - name: www.example.com
    addresses: { a: [192.0.2.10], b: [198.51.100.10] }
agent:
  listen: 127.0.0.1:${c.agentPort}
  control: ${D}/agent.sock
  state-file: ${D}/agent-state.json
  haproxy: { runtime-api: [] }
  servers: [{ name: web/w1, address: "127.0.0.1:${c.webPort}", checks: { message: { type: tcp } } }]
${c.urls ? replication(c.urls) : ''}`,
  );
  return file;
}

function replication(urls: Record<'a' | 'b', string>): string {
  return `replication:
  tables: [items]
  poll-interval-ms: 100
  sites:
    a: { db: "${urls.a}" }
    b: { db: "${urls.b}" }
`;
}

/**
 * A systemd-like notify socket: a unix datagram listener (python3; Node has none) printing each
 * message it receives on one line (newlines shown as '|'). On READY=1 it connects at once, before
 * reading anything else, to the unix socket and the HOST:PORT given, and prints whether each
 * accepted: what PowerDNS, started by systemd on READY=1, would find.
 */
export const NOTIFY_LISTENER = `
import socket, sys
def accepts(family, addr):
    c = socket.socket(family, socket.SOCK_STREAM)
    try:
        c.connect(addr)
        return "accepted"
    except OSError as e:
        return "refused(%s)" % e.strerror
    finally:
        c.close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
host, port = sys.argv[3].rsplit(":", 1)
print("listening", flush=True)
while True:
    msg = s.recv(4096).decode()
    line = msg.replace("\\n", "|")
    if "READY=1" in msg.split("\\n"):
        line += " unix:" + accepts(socket.AF_UNIX, sys.argv[2])
        line += " tcp:" + accepts(socket.AF_INET, (host, int(port)))
    print(line, flush=True)
`;
