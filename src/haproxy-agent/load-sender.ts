import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { encodeLoadReport } from '../shared/load-report.js';
import type { ServerHealth } from './server-health.js';
import type { Timers } from '../shared/timers.js';

export interface LoadSenderOptions {
  site: string;
  /** This agent's name in reports (default: its listen address). */
  node: string;
  key: Buffer;
  to: { host: string; port: number }[];
  /** The address reports leave from (agent-schema loadReportSource: never the wildcard unless configured). */
  source: string;
  periodMs: number;
  timers: Timers;
  wallNow?(): number;
  /**
   * Active connections per server ("BACKEND/SERVER"), read once a period (HAProxy's `show stat`).
   * Reports carry the last reading; while none has succeeded, connections are unknown.
   */
  connections?(): Promise<Map<string, number>>;
  /** How datagrams leave (tests replace it). */
  send?(buf: Buffer, to: { host: string; port: number }): void;
  /** The socket failed (e.g. the source address is not on this host): logged by the caller. */
  onError?(err: Error): void;
}

/**
 * Sends one authenticated load report per web server every period to each of the site's backends
 * (docs/policies.md): up as the agent answers HAProxy, the load check's value, the message (or
 * keyword) check's last duration as response time, and (with a stats socket) HAProxy's current
 * sessions of the server as active connections. Never blocks a check or a reply.
 */
export class LoadSender {
  private readonly boot: number;
  private seq = 0;
  private timer: unknown;
  private socket?: Socket;
  private stopped = true;
  private conns?: Map<string, number>;
  sent = 0;

  constructor(
    private readonly servers: Map<string, ServerHealth>,
    private readonly o: LoadSenderOptions,
  ) {
    this.boot = (o.wallNow ?? Date.now)();
  }

  start(): void {
    if (!this.o.send) {
      this.socket = createSocket(isIP(this.o.source) === 6 ? 'udp6' : 'udp4');
      this.socket.on('error', (err) => this.o.onError?.(err));
      // Datagrams sent before the bind completes wait for it (dgram queues them).
      this.socket.bind({ address: this.o.source, port: 0 });
      this.socket.unref();
    }
    this.stopped = false;
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
    this.socket?.close();
    this.socket = undefined;
  }

  /** Where the socket is bound (undefined before it is, or with a replaced `send`). */
  localAddress(): { address: string; port: number } | undefined {
    try {
      return this.socket?.address();
    } catch {
      return undefined;
    }
  }

  /** Builds and sends the reports of every server once (public for tests). */
  sendAll(): void {
    const now = (this.o.wallNow ?? Date.now)();
    for (const h of this.servers.values()) {
      const load = h.runners.get('load')?.state;
      const resp = h.runners.get('message')?.state ?? h.runners.get('keyword')?.state;
      const reply = h.replyText;
      const report = {
        site: this.o.site,
        sender: this.o.node,
        server: h.name,
        boot: this.boot,
        seq: ++this.seq,
        time: now,
        up: /^(up|ready)/.test(reply) || /^\d+%/.test(reply),
        ...(load?.value !== undefined ? { load: load.value } : {}),
        ...(resp?.last?.ok && resp.lastDurationMs !== undefined ? { responseMs: resp.lastDurationMs } : {}),
        ...(this.conns?.has(h.name) ? { connections: this.conns.get(h.name)! } : {}),
      };
      for (const to of this.o.to) {
        // A new sequence number per datagram, like heartbeats: every backend sees them grow.
        const buf = encodeLoadReport({ ...report, seq: to === this.o.to[0] ? report.seq : ++this.seq }, this.o.key);
        if (this.o.send) this.o.send(buf, to);
        else this.socket?.send(buf, to.port, to.host);
        this.sent++;
      }
    }
  }

  private tick(): void {
    if (this.stopped) return;
    this.sendAll();
    // For the next reports: a slow or absent HAProxy never delays these.
    this.o.connections?.().then(
      (m) => (this.conns = m),
      () => (this.conns = undefined),
    );
    this.timer = this.o.timers.setTimeout(() => this.tick(), this.o.periodMs);
  }
}
