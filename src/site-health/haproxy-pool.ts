import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { isUsable, type HaproxyEvent, type RuntimeClient, type StatRow } from '../haproxy/index.js';
import { sharedWallClock, type Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';

export interface PoolWatcherOptions {
  /** HAProxy backend (pool) name. */
  backend: string;
  /** One Runtime API client per load balancer of the site. */
  clients: Pick<RuntimeClient, 'socket' | 'showStat'>[];
  /** Read interval while some load balancer's event stream is not open (or without `follow`). */
  intervalMs: number;
  /**
   * Read interval while every event stream is open: only a safety net, since each state change
   * HAProxy logs triggers a read at once.
   */
  safetyIntervalMs?: number;
  /** Follows one load balancer's state-change events (an EventStream on its `ring`). */
  follow?: (socket: string, handlers: StreamHandlers) => FollowedStream;
  minServers: number;
  timers: Timers;
  logger: Logger;
  registry?: Registry;
  /**
   * Stamps an event's arrival for `PoolCause.receivedAt` (epoch ms; the recorder of failover stages
   * uses the same clock). Default: the monotonic clock anchored at the wall clock (sharedWallClock).
   */
  wallClock?: () => number;
  /**
   * Called when the verdict (up, and the reason when down) changes; first call after the first read.
   * `cause`: the first HAProxy event the changing read followed, when an event triggered it.
   */
  onChange(up: boolean, reason: string, cause?: PoolCause): void;
  /** Called when any server's row changed (state, weight, the agent's or HAProxy's last check), verdict or not. */
  onServersChange?(): void;
}

/** The HAProxy state-change event behind a verdict change, and when each clock saw it. */
export interface PoolCause {
  /** HAProxy's message ("Server web/w1 is DOWN, reason: ..."). */
  message: string;
  /** `backend/server` when the event is a server's ("web/w1"). */
  server?: string;
  /** HAProxy's clock when it logged the change (rfc5424 rings only). */
  loggedAt?: number;
  /** The duration HAProxy logged for the check that changed the state (its own or agent check). */
  checkMs?: number;
  /** Our clock (wallClock) when the line arrived. */
  receivedAt: number;
  /** Events the same read followed (the first is described here). */
  events: number;
}

/** Events kept between reads at most; only the earliest becomes the cause, the rest are counted. */
const MAX_PENDING = 64;

export interface StreamHandlers {
  onOpen(): void;
  onEvent(event: HaproxyEvent): void;
  onClose(why: string): void;
}

export interface FollowedStream {
  readonly open: boolean;
  start(): void;
  stop(): void;
}

export interface LoadBalancerView {
  socket: string;
  usable: number;
  total: number;
  /** Set when the load balancer could not be read. */
  error?: string;
  /** Servers that are not usable, with HAProxy's words for why. */
  unusable: string[];
  /** Every server as HAProxy reported it (for the status page's Pools section). */
  servers?: PoolServer[];
}

/** One server's row: HAProxy's state beside the agent's last verdict. */
export interface PoolServer {
  name: string;
  /** HAProxy's status ("UP", "DOWN", "DRAIN", "MAINT", ...). */
  status: string;
  weight: number;
  usable: boolean;
  /** The agent's last reply as HAProxy recorded it (`last_agt`); empty when no agent-check. */
  agent: string;
  /** HAProxy's own last health check (`last_chk`). */
  check: string;
}

/** The verdict from one round of reads: up while some load balancer has `minServers` usable servers. */
export function poolVerdict(
  backend: string,
  views: LoadBalancerView[],
  minServers: number,
): { up: boolean; reason: string } {
  const best = views.reduce((a, v) => (v.usable > a.usable ? v : a), views[0]!);
  if (best && best.usable >= minServers)
    return { up: true, reason: `pool ${backend}: ${best.usable} of ${best.total} servers usable` };
  const parts = views.map((v) =>
    v.error
      ? `${v.socket}: ${v.error}`
      : `${v.socket}: ${v.usable} of ${v.total} usable${v.unusable.length ? ` (${v.unusable.slice(0, 3).join('; ')}${v.unusable.length > 3 ? '; ...' : ''})` : ''}`,
  );
  return {
    up: false,
    reason: `pool ${backend}: fewer than ${minServers} usable servers on every load balancer: ${parts.join(' | ')}`,
  };
}

/** What one server's row says about why it takes no traffic. */
function whyUnusable(row: StatRow): string {
  const detail = row.lastAgent || row.lastCheck;
  return `${row.name} ${row.status}${row.weight === 0 && row.status.startsWith('UP') ? ' weight 0' : ''}${detail ? ` (${detail})` : ''}`;
}

/**
 * Reads the site's load balancers through the Runtime API (`show stat B 4 -1`, parsed by header),
 * never overlapping reads, and reports each change of the pool's verdict. With `follow`, each
 * load balancer's state-change events trigger a read at once (a read is one command, so the
 * verdict is always HAProxy's full state, never a replay of log lines); every (re)connect of a
 * stream reads too, so nothing that happened while it was cut is missed; the timer falls back to
 * `intervalMs` whenever a stream is not open, and is only a `safetyIntervalMs` net otherwise.
 */
export class PoolWatcher {
  private timer: unknown;
  private stopped = true;
  private last?: string;
  private lastRows = '';
  private reading = false;
  private dirty = false;
  private readonly streams: FollowedStream[] = [];
  private readonly closeWhy = new Map<string, string>();
  /** Events received since the last read started (that read could not have seen them). */
  private pending: Omit<PoolCause, 'events'>[] = [];
  private pendingCount = 0;
  private readonly wallClock: () => number;
  views: LoadBalancerView[] = [];
  private readonly usableGauge?: Gauge<'lb'>;
  private readonly upGauge?: Gauge;
  private readonly readSeconds?: Histogram;
  private readonly events?: Counter<'kind'>;
  private readonly reads?: Counter<'why'>;

  constructor(private readonly opts: PoolWatcherOptions) {
    this.wallClock = opts.wallClock ?? sharedWallClock;
    if (opts.registry) {
      const registers = [opts.registry];
      this.usableGauge = new Gauge({
        name: 'multisite_backend_pool_usable_servers',
        help: 'Usable servers of the local pool, per load balancer',
        labelNames: ['lb'],
        registers,
      });
      this.upGauge = new Gauge({
        name: 'multisite_backend_pool_up',
        help: 'The local site is up by its pool (1) or not (0)',
        registers,
      });
      this.readSeconds = new Histogram({
        name: 'multisite_backend_pool_read_seconds',
        help: 'Time to read every load balancer once',
        buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
        registers,
      });
      this.events = new Counter({
        name: 'multisite_backend_pool_events_total',
        help: "HAProxy state-change events of the local pool's backend, by kind",
        labelNames: ['kind'],
        registers,
      });
      this.reads = new Counter({
        name: 'multisite_backend_pool_reads_total',
        help: 'Reads of the load balancers, by what triggered them (event, stream-open, timer)',
        labelNames: ['why'],
        registers,
      });
    }
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const c of this.opts.clients) {
      const stream = this.opts.follow?.(c.socket, {
        onOpen: () => this.streamOpened(c.socket),
        onEvent: (ev) => this.event(ev),
        onClose: (why) => this.streamClosed(c.socket, why),
      });
      if (stream) this.streams.push(stream);
    }
    for (const s of this.streams) s.start();
    this.refresh('timer');
  }

  stop(): void {
    this.stopped = true;
    this.opts.timers.clearTimeout(this.timer);
    for (const s of this.streams.splice(0)) s.stop();
  }

  /** One round: every load balancer in parallel. Public so tests drive it step by step. */
  async readOnce(): Promise<{ up: boolean; reason: string }> {
    const { backend, clients, minServers } = this.opts;
    this.views = await Promise.all(
      clients.map(async (c): Promise<LoadBalancerView> => {
        try {
          const rows = (await c.showStat({ proxy: backend, serversOnly: true })).filter(
            (r) => r.type === 'server' && r.proxy === backend,
          );
          const usable = rows.filter(isUsable);
          if (rows.length === 0)
            return { socket: c.socket, usable: 0, total: 0, error: `no servers in backend '${backend}'`, unusable: [] };
          return {
            socket: c.socket,
            usable: usable.length,
            total: rows.length,
            unusable: rows.filter((r) => !isUsable(r)).map(whyUnusable),
            servers: rows.map((r) => ({
              name: r.name,
              status: r.status,
              weight: r.weight,
              usable: isUsable(r),
              agent: r.lastAgent,
              check: r.lastCheck,
            })),
          };
        } catch (err) {
          return { socket: c.socket, usable: 0, total: 0, error: (err as Error).message, unusable: [] };
        }
      }),
    );
    for (const v of this.views) this.usableGauge?.set({ lb: v.socket }, v.usable);
    return poolVerdict(backend, this.views, minServers);
  }

  private event(ev: HaproxyEvent): void {
    if (ev.type === 'text' || ev.backend !== this.opts.backend) return;
    this.events?.inc({ kind: ev.type === 'server' ? ev.kind : 'backend-empty' });
    this.opts.logger.debug({ event: ev.message }, 'HAProxy state-change event');
    this.pendingCount++;
    if (this.pending.length < MAX_PENDING) {
      const { message, loggedAt } = ev;
      const checkMs = ev.type === 'server' ? ev.checkMs : undefined;
      this.pending.push({
        message,
        ...(ev.type === 'server' ? { server: `${ev.backend}/${ev.server}` } : {}),
        receivedAt: this.wallClock(),
        ...(loggedAt !== undefined ? { loggedAt } : {}),
        ...(checkMs !== undefined ? { checkMs } : {}),
      });
    }
    this.refresh('event');
  }

  private streamOpened(socket: string): void {
    if (this.closeWhy.delete(socket))
      this.opts.logger.info({ lb: socket }, 'following HAProxy state-change events again');
    this.refresh('stream-open');
  }

  /** Logged once per reason, not per reconnect attempt; until it reopens, the short interval applies. */
  private streamClosed(socket: string, why: string): void {
    if (this.closeWhy.get(socket) !== why && !why.startsWith('HAProxy ended the stream')) {
      this.opts.logger.warn(
        { lb: socket, why, pollMs: this.opts.intervalMs },
        'not following HAProxy state-change events; polling the pool meanwhile',
      );
    }
    this.closeWhy.set(socket, why);
    if (!this.reading && !this.stopped) this.schedule(this.opts.timers.now());
  }

  /** Reads now, or right after the read in progress: events never wait for a timer. */
  private refresh(why: 'event' | 'stream-open' | 'timer'): void {
    if (this.stopped) return;
    this.reads?.inc({ why });
    if (this.reading) {
      this.dirty = true;
      return;
    }
    void this.poll();
  }

  private interval(): number {
    const following = this.streams.length > 0 && this.streams.every((s) => s.open);
    return following ? (this.opts.safetyIntervalMs ?? this.opts.intervalMs) : this.opts.intervalMs;
  }

  private schedule(from: number): void {
    this.opts.timers.clearTimeout(this.timer);
    this.timer = this.opts.timers.setTimeout(
      () => this.refresh('timer'),
      Math.max(0, from + this.interval() - this.opts.timers.now()),
    );
  }

  private async poll(): Promise<void> {
    const { timers } = this.opts;
    this.opts.timers.clearTimeout(this.timer);
    this.reading = true;
    let started = timers.now();
    try {
      do {
        this.dirty = false;
        started = timers.now();
        await this.readRound(started);
      } while (this.dirty && !this.stopped);
    } finally {
      this.reading = false;
    }
    if (!this.stopped) this.schedule(started);
  }

  /** A server going down while the site stays up changes no verdict; a status page still shows it at once. */
  private serversChanged(): void {
    if (!this.opts.onServersChange) return;
    const rows = JSON.stringify(this.views);
    if (rows === this.lastRows || this.stopped) return;
    this.lastRows = rows;
    this.opts.onServersChange();
  }

  /** The events this read follows: those received before it started. */
  private takeCause(): PoolCause | undefined {
    const first = this.pending[0];
    const cause = first && { ...first, events: this.pendingCount };
    this.pending = [];
    this.pendingCount = 0;
    return cause;
  }

  private async readRound(started: number): Promise<void> {
    const cause = this.takeCause();
    try {
      const verdict = await this.readOnce();
      this.readSeconds?.observe((this.opts.timers.now() - started) / 1000);
      this.upGauge?.set(verdict.up ? 1 : 0);
      this.serversChanged();
      // While up, the counts may move without a change of verdict: report only up/down and the reason when down.
      const key = verdict.up ? 'up' : `down|${verdict.reason}`;
      if (!this.stopped && key !== this.last) {
        const first = this.last === undefined;
        this.last = key;
        if (!first || !verdict.up)
          this.opts.logger.info({ up: verdict.up, reason: verdict.reason }, 'local pool verdict changed');
        this.opts.onChange(verdict.up, verdict.reason, cause);
      }
    } catch (err) {
      this.opts.logger.error({ err }, 'pool read failed');
    }
  }
}
