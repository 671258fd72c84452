import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../shared/log.js';
import { type AgentMetrics, type Refusal, replyWord } from './metrics.js';
import { formatReply } from './reply.js';
import type { ServerHealth } from './server-health.js';

export interface ServiceOptions {
  host: string;
  port: number;
  clientTimeoutMs: number;
  maxLineBytes: number;
  maxConnections: number;
}

/**
 * The TCP service HAProxy's agent-check connects to. HAProxy sends `agent-send` ("web/w1\n"); the
 * reply is the server's prepared line, written at once, and the connection is closed. Nothing here
 * waits for a check. Every connection gets at most one line back. A request the agent cannot serve
 * (an unknown name, junk, an overlong line) is answered `down #why`, so that HAProxy logs why (it
 * logs a description only with a health word; see docs/agent.md); a connection that sends nothing
 * complete within the client timeout is closed unanswered. A client that half-closes after a name
 * without a line end gets the answer for that name.
 */
export class AgentService {
  private server?: Server;
  /** Open connections and when they were accepted (performance.now()). */
  private readonly sockets = new Map<Socket, number>();
  private sweeper?: NodeJS.Timeout;
  /** Reply labels per server, computed when the reply changes, not per connection. */
  private readonly words = new Map<ServerHealth, { text: string; word: string }>();
  /** The configured names, for the reply to an unknown one (cut to the reply's 200 characters). */
  private readonly known: string;
  private readonly overlongReply: string;

  constructor(
    private readonly servers: Map<string, ServerHealth>,
    private readonly opts: ServiceOptions,
    private readonly metrics: AgentMetrics,
    private readonly logger: Logger,
  ) {
    this.known = [...servers.keys()].join(', ');
    this.overlongReply = formatReply({
      up: false,
      reason: `request longer than ${opts.maxLineBytes} bytes (max-line-bytes)`,
    });
  }

  get address(): { host: string; port: number } {
    const a = this.server?.address();
    return a && typeof a === 'object'
      ? { host: a.address, port: a.port }
      : { host: this.opts.host, port: this.opts.port };
  }

  async start(): Promise<void> {
    // No per-socket timers on the hot path: a connection costs an accept, a read, a write.
    // noDelay: without it the reply and the FIN wait for a delayed ACK (40 ms on Linux loopback).
    // allowHalfOpen: a client that half-closes after its request can still read the answer.
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.serve(s));
    server.maxConnections = this.opts.maxConnections;
    server.on('drop', () => this.refuse('too-many'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.opts.host, port: this.opts.port, backlog: 4096 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err }, 'agent listener error'));
    this.server = server;
    // One sweep closes silent clients, instead of a timer per connection.
    const every = Math.max(5, Math.floor(this.opts.clientTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  private sweep(): void {
    const cutoff = performance.now() - this.opts.clientTimeoutMs;
    for (const [socket, since] of this.sockets) if (since <= cutoff) this.refuse('timeout', socket);
  }

  /** Open connections (a gauge read when scraped). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Counts a request not served; answers it `down #why` when given, else closes it unanswered. */
  private refuse(why: Refusal, socket?: Socket, detail?: string, reply?: string): void {
    this.metrics.refuse(why);
    if (detail !== undefined)
      this.logger.debug({ why, detail, peer: socket?.remoteAddress }, 'agent request not served');
    if (reply !== undefined) socket?.end(reply);
    else socket?.destroy();
  }

  private serve(socket: Socket): void {
    this.sockets.set(socket, performance.now());
    let buf = '';
    let answered = false;
    const answer = (line: string) => {
      answered = true;
      this.answer(socket, line);
    };
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      // Usually the whole "web/w1\n" arrives at once.
      const nl = chunk.indexOf(10);
      const cr = chunk.indexOf(13);
      const end = cr >= 0 && (nl < 0 || cr < nl) ? cr : nl;
      if (end < 0) {
        buf += chunk.toString('latin1');
        if (buf.length > this.opts.maxLineBytes) this.overlong(socket, buf.length, () => (answered = true));
        return;
      }
      const line = buf + chunk.toString('latin1', 0, end);
      if (line.length > this.opts.maxLineBytes) return this.overlong(socket, line.length, () => (answered = true));
      answer(line);
    });
    // The client will send no more: a name without a line end is still a request; nothing is none.
    socket.on('end', () => {
      if (answered) return;
      if (buf !== '') answer(buf);
      else socket.destroy();
    });
  }

  private overlong(socket: Socket, length: number, mark: () => void): void {
    mark();
    this.refuse('overlong', socket, `${length} bytes`, this.overlongReply);
  }

  private answer(socket: Socket, line: string): void {
    const name = line.trim();
    const health = this.servers.get(name);
    if (health) {
      socket.end(health.reply);
      this.metrics.reply(name, this.word(health));
      return;
    }
    const shown = name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
    if (name !== '' && /^[\x21-\x7e]+$/.test(name)) {
      return this.refuse(
        'unknown-server',
        socket,
        shown,
        formatReply({
          up: false,
          reason: `unknown server '${shown}' (agent-send must name one of agent.servers: ${this.known})`,
        }),
      );
    }
    const why = name === '' ? 'empty request: agent-send must name a server' : `not a server name: '${shown}'`;
    this.refuse('junk', socket, shown, formatReply({ up: false, reason: why }));
  }

  private word(h: ServerHealth): string {
    let w = this.words.get(h);
    if (!w || w.text !== h.replyText) {
      w = { text: h.replyText, word: replyWord(h.replyText) };
      this.words.set(h, w);
    }
    return w.word;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    clearInterval(this.sweeper);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets.keys()) s.destroy();
    await closed;
  }
}
