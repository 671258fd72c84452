import { mkdirSync, lstatSync, unlinkSync, chmodSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { LineSplitter, OVERSIZED_LINE } from '../../shared/line-splitter.js';
import { failure } from '../handler.js';
import type { Connector, ConnectorDeps } from './connector.js';

/** How long a connection may sit on half a request line before it is closed. */
const PARTIAL_LINE_TIMEOUT_MS = 5000;
/** Replies are written in batches of about this much (one write per chunk of requests, bounded). */
const WRITE_BATCH = 64 * 1024;

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
    this.deps.metrics?.connections.inc({ connector: 'unix' });
    this.sockets.add(socket);
    new LineConnection(socket, this.deps);
    socket.on('close', () => this.sockets.delete(socket));
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

/**
 * One connection's framing (LineSplitter): every request line gets exactly one reply line, in order.
 *
 * PowerDNS reads a reply until what it has parses as JSON (unixconnector.cc recv_message), so a
 * second reply for one request would be glued to the next and put every later reply out of step.
 * An over-long line is therefore answered once, with an error, when its newline finally arrives;
 * the connection stays open, in step. Closing without a reply instead would cost PowerDNS its
 * timeout (2 s) first. Blank lines are not requests and get no reply; bytes after the last newline
 * when the client closes are an unfinished request: logged and counted, not answered.
 */
class LineConnection {
  private readonly lines: LineSplitter;
  /** The socket's buffer is full: stop answering (and reading) until it drains. */
  private blocked = false;
  private timerOn = false;

  constructor(
    private readonly socket: Socket,
    private readonly deps: ConnectorDeps,
  ) {
    this.lines = new LineSplitter(deps.maxRequestBytes, () =>
      deps.logger.warn(
        { limit: deps.maxRequestBytes },
        'unix request line over the limit: dropping it until its newline',
      ),
    );
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.lines.push(chunk);
      this.answer();
    });
    socket.on('drain', () => {
      this.blocked = false;
      this.answer();
      if (!this.blocked) socket.resume();
    });
    socket.on('timeout', () => {
      deps.logger.warn({ bytes: this.lines.unfinishedBytes }, 'closing unix connection: incomplete request line');
      deps.metrics?.errors.inc({ kind: 'partial' });
      socket.destroy();
    });
    socket.on('end', () => {
      if (this.lines.unfinishedRequest) {
        deps.logger.warn({ bytes: this.lines.unfinishedBytes }, 'unix connection closed mid-request');
        deps.metrics?.errors.inc({ kind: 'partial' });
      }
      socket.end();
    });
    socket.on('error', (err) => deps.logger.debug({ err }, 'unix connection error'));
  }

  private answer(): void {
    let out = '';
    let line: string | typeof OVERSIZED_LINE | undefined;
    while (!this.blocked && (line = this.lines.next()) !== undefined) {
      if (line === OVERSIZED_LINE) out += `${this.oversized()}\n`;
      else if (line.trim() !== '') out += `${this.deps.handleLine(line)}\n`;
      if (out.length >= WRITE_BATCH) {
        this.write(out);
        out = '';
      }
    }
    if (out) this.write(out);
    // The idle timer only runs while half a line waits; PowerDNS's idle connections stay open.
    const midLine = this.lines.midLine;
    if (midLine !== this.timerOn) {
      this.timerOn = midLine;
      this.socket.setTimeout(midLine ? PARTIAL_LINE_TIMEOUT_MS : 0);
    }
  }

  private oversized(): string {
    this.deps.metrics?.errors.inc({ kind: 'oversized' });
    return failure(`request longer than ${this.deps.maxRequestBytes} bytes`);
  }

  /** A full socket buffer pauses reading: a client that does not read its replies costs us one batch. */
  private write(out: string): void {
    if (!this.socket.write(out)) {
      this.blocked = true;
      this.socket.pause();
    }
  }
}
