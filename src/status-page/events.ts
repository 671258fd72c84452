import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Timers } from '../shared/timers.js';

export const EVENTS_PATH = '/status-page/events';

export interface LiveOptions {
  /** The sections to push (id → inner HTML), rendered once per push for every open page. */
  render(): Record<string, string>;
  coalesceMs: number;
  /** Open pages are refreshed this often even without a change event ("2 s ago" ages; a peer turns suspect). */
  refreshMs: number;
  maxClients: number;
  timers: Timers;
}

/**
 * Server-sent events to open pages. A change (site-state table, orderings, partitions) schedules
 * one push `coalesceMs` later; the changes that arrive meanwhile ride along, so a failover that
 * flips 10,000 names costs one render, not one per name. Nothing is rendered while no page is open.
 */
export class LiveUpdates {
  private readonly clients = new Set<ServerResponse>();
  private pending: unknown;
  private tick: unknown;
  private stopped = false;
  pushes = 0;

  constructor(private readonly o: LiveOptions) {}

  get open(): number {
    return this.clients.size;
  }

  changed(): void {
    if (this.stopped || this.pending !== undefined || this.clients.size === 0) return;
    this.pending = this.o.timers.setTimeout(() => {
      this.pending = undefined;
      this.push();
    }, this.o.coalesceMs);
  }

  /** GET /status-page/events. */
  serve(req: IncomingMessage, res: ServerResponse): void {
    if (this.stopped || this.clients.size >= this.o.maxClients) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10' });
      res.end(`too many open status pages (status-page.max-clients ${this.o.maxClients})\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    // retry: the browser's reconnect delay after the backend restarts.
    res.write('retry: 1000\n\n');
    this.clients.add(res);
    req.on('close', () => this.clients.delete(res));
    // The page may have been rendered just before a change: bring it up to date at once.
    this.send(res, JSON.stringify(this.o.render()));
    this.schedule();
  }

  private push(): void {
    if (this.clients.size === 0) return;
    const data = JSON.stringify(this.o.render());
    this.pushes++;
    for (const res of this.clients) this.send(res, data);
  }

  private send(res: ServerResponse, data: string): void {
    if (!res.destroyed) res.write(`data: ${data}\n\n`);
  }

  private schedule(): void {
    if (this.tick !== undefined || this.stopped) return;
    this.tick = this.o.timers.setTimeout(() => {
      this.tick = undefined;
      if (this.clients.size === 0) return;
      this.changed();
      this.schedule();
    }, this.o.refreshMs);
  }

  /** Ends every open stream (the metrics server's close waits for its connections). */
  stop(): void {
    this.stopped = true;
    this.o.timers.clearTimeout(this.pending);
    this.o.timers.clearTimeout(this.tick);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
