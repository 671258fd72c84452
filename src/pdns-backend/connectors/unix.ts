import { mkdirSync, lstatSync, unlinkSync, chmodSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { failure } from '../handler.js';
import type { Connector, ConnectorDeps } from './connector.js';

/** How long a connection may sit on half a request line before it is closed. */
const PARTIAL_LINE_TIMEOUT_MS = 5000;

/**
 * PowerDNS's unix connector: newline-delimited JSON over persistent connections, one request in
 * flight per connection (PowerDNS opens one per distributor thread, plus TCP and API ones).
 */
export class UnixConnector implements Connector {
  readonly name = 'unix';
  private server?: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly address: string,
    private readonly deps: ConnectorDeps,
  ) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.address), { recursive: true });
    await removeStaleSocket(this.address);
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.address, () => resolve());
    });
    server.on('error', (err) => this.deps.logger.error({ err }, 'unix connector error'));
    // PowerDNS usually runs as its own user; the data here is public DNS data, read-only.
    chmodSync(this.address, 0o666);
    this.server = server;
  }

  private serve(socket: Socket): void {
    const { deps } = this;
    deps.metrics?.connections.inc({ connector: 'unix' });
    this.sockets.add(socket);
    socket.setEncoding('utf8');
    let pending = '';
    socket.on('data', (chunk: string) => {
      const hadPartial = pending.length > 0;
      pending = hadPartial ? pending + chunk : chunk;
      let nl = pending.indexOf('\n');
      let out = '';
      let start = 0;
      while (nl >= 0) {
        const line = pending.slice(start, nl);
        if (line.length > deps.maxRequestBytes) return this.reject(socket, `request longer than ${deps.maxRequestBytes} bytes`);
        if (line.trim() !== '') out += `${deps.handleLine(line)}\n`;
        start = nl + 1;
        nl = pending.indexOf('\n', start);
      }
      pending = start === pending.length ? '' : pending.slice(start);
      if (pending.length > deps.maxRequestBytes) return this.reject(socket, `request longer than ${deps.maxRequestBytes} bytes`);
      // The idle timer only runs while half a line waits; PowerDNS's idle connections stay open.
      if (hadPartial !== pending.length > 0) socket.setTimeout(pending.length > 0 ? PARTIAL_LINE_TIMEOUT_MS : 0);
      if (out && !socket.write(out)) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
    socket.on('timeout', () => {
      deps.logger.warn({ bytes: pending.length }, 'closing unix connection: incomplete request line');
      deps.metrics?.errors.inc({ kind: 'partial' });
      socket.destroy();
    });
    socket.on('end', () => {
      if (pending.trim() !== '') {
        deps.logger.warn({ bytes: pending.length }, 'unix connection closed mid-request');
        deps.metrics?.errors.inc({ kind: 'partial' });
      }
      socket.end();
    });
    socket.on('error', (err) => deps.logger.debug({ err }, 'unix connection error'));
    socket.on('close', () => this.sockets.delete(socket));
  }

  private reject(socket: Socket, why: string): void {
    this.deps.logger.warn({ why }, 'closing unix connection');
    this.deps.metrics?.errors.inc({ kind: 'oversized' });
    socket.end(`${failure(why)}\n`);
    socket.destroySoon();
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.end();
    const deadline = setTimeout(() => this.sockets.forEach((s) => s.destroy()), 1000);
    await closed;
    clearTimeout(deadline);
    try {
      unlinkSync(this.address);
    } catch {
      /* already gone */
    }
  }
}

/** A socket file left by a dead process is removed; one a live process listens on is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another process is already listening on ${path}`);
  unlinkSync(path);
}
