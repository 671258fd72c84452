import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

/** A request line longer than this is refused (and the connection closed). */
const MAX_LINE = 4096;
/** A bind of a control socket that has not completed by then fails the daemon's start. */
const LISTEN_TIMEOUT_MS = 10_000;

/**
 * A daemon's local control socket (mode 0600): one JSON request per line, one JSON reply line per
 * request, from `handle` (which never throws: it answers `{ok: false, error}` instead). A stale
 * socket file is replaced; idle clients are dropped after 5 s.
 */
export class JsonLineServer {
  private server?: Server;

  constructor(
    readonly path: string,
    private readonly handle: (line: string) => object,
  ) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    removeSocket(this.path);
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      // Bounded: a bind that never completes must fail the start, not hang it.
      const timer = setTimeout(() => (server.close(), reject(new Error(`could not listen on ${this.path} within ${LISTEN_TIMEOUT_MS} ms`))), LISTEN_TIMEOUT_MS);
      server.once('error', (err) => (clearTimeout(timer), reject(err)));
      server.listen(this.path, () => (clearTimeout(timer), resolve()));
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    removeSocket(this.path);
  }

  private serve(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    let buf = '';
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) return void socket.end(`${JSON.stringify({ ok: false, error: 'request too long' })}\n`);
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        socket.write(`${JSON.stringify(this.handle(line))}\n`);
      }
    });
  }
}

function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* none there */
  }
}

/**
 * One JSON request line to a daemon's local control socket, one JSON reply line back. `who` names
 * the daemon in errors ("no backend is running on PATH").
 */
export function controlSocketRequest<Res>(path: string, req: unknown, who: string, timeoutMs = 3000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buf = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no answer from the ${who} on ${path} within ${timeoutMs} ms`));
    });
    socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        socket.end();
        resolve(JSON.parse(buf.slice(0, nl)) as Res);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `no ${who} is running on ${path} (${err.code})` : err.message)),
    );
  });
}
