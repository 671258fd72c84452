import { createConnection, type Socket } from 'node:net';
import { EventLineParser, type HaproxyEvent } from './events.js';

/** The clock and timers the stream uses (real ones in the daemon, virtual in unit tests). */
export interface StreamTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface EventStreamOptions {
  /** Path of the `stats socket ... level admin`. */
  socket: string;
  /** Name of the `ring` section HAProxy logs to (docs/agent.md). */
  ring: string;
  timers: StreamTimers;
  /** First reconnect delay after a failure; doubles up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * A stream that lived at least this long and then ended was closed by HAProxy's idle `stats
   * timeout` (or a reload), not refused: it is reopened at once.
   */
  healthyAfterMs?: number;
  /** Subscribed (again): events from now on arrive, anything before must be re-read. */
  onOpen(): void;
  onEvent(event: HaproxyEvent): void;
  /** The stream ended or could not be opened; `why` says how. Followed by a reconnect. */
  onClose(why: string): void;
}

/** HAProxy's answer when the ring does not exist (src/sink.c). */
const NO_SINK = 'No such event sink';

/**
 * Follows one HAProxy's ring with `show events RING -w -n` on the Runtime API (HAProxy ≥ 2.2; the
 * Debian 12 package is 2.6): new lines arrive as HAProxy logs them. HAProxy ends the command after
 * `stats timeout` of silence, and a restart or reload cuts it: the stream reconnects (at once after
 * a long-lived stream, with doubling backoff while connecting fails), and calls onOpen on every
 * connect so its user re-reads the full state: nothing that happened while cut is missed.
 */
export class EventStream {
  private conn?: Socket;
  private timer: unknown;
  private stopped = true;
  private backoff: number;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private readonly healthyAfter: number;

  constructor(private readonly o: EventStreamOptions) {
    if (!/^[A-Za-z0-9_.-]+$/.test(o.ring)) throw new TypeError(`not a valid HAProxy ring name: '${o.ring}'`);
    this.minBackoff = o.minBackoffMs ?? 50;
    this.maxBackoff = o.maxBackoffMs ?? 2000;
    this.healthyAfter = o.healthyAfterMs ?? 1000;
    this.backoff = this.minBackoff;
  }

  /** True while subscribed. */
  get open(): boolean {
    return this.conn !== undefined && !this.conn.connecting && !this.conn.destroyed;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
    this.conn?.destroy();
    this.conn = undefined;
  }

  private connect(): void {
    if (this.stopped) return;
    const parser = new EventLineParser();
    const conn = createConnection(this.o.socket);
    this.conn = conn;
    let openedAt: number | undefined;
    let why = '';
    conn.on('connect', () => {
      openedAt = this.o.timers.now();
      // -n: from the end of the ring (the re-read in onOpen covers everything before).
      conn.write(`show events ${this.o.ring} -w -n\n`);
      this.o.onOpen();
    });
    conn.on('data', (chunk: Buffer) => {
      for (const ev of parser.push(chunk)) {
        if (ev.type === 'text' && ev.message.startsWith(NO_SINK))
          why = `HAProxy has no ring '${this.o.ring}' (add the ring section and log line of docs/agent.md)`;
        else this.o.onEvent(ev);
      }
    });
    conn.on(
      'error',
      (err: NodeJS.ErrnoException) => (why = `cannot follow ${this.o.socket}: ${err.code ?? err.message}`),
    );
    conn.on('close', () => {
      if (this.conn !== conn) return;
      this.conn = undefined;
      if (this.stopped) return;
      const lived = openedAt === undefined ? 0 : this.o.timers.now() - openedAt;
      const healthy = why === '' && lived >= this.healthyAfter;
      this.o.onClose(
        why || (openedAt === undefined ? 'not connected' : `HAProxy ended the stream after ${Math.round(lived)} ms`),
      );
      const delay = healthy ? 0 : this.backoff;
      this.backoff = healthy ? this.minBackoff : Math.min(this.backoff * 2, this.maxBackoff);
      this.timer = this.o.timers.setTimeout(() => this.connect(), delay);
    });
  }
}
