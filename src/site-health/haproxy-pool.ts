import { Gauge, Histogram, type Registry } from 'prom-client';
import { isUsable, type RuntimeClient, type StatRow } from '../haproxy/index.js';
import type { Timers } from '../haproxy-agent/timers.js';
import type { Logger } from '../log.js';

export interface PoolWatcherOptions {
  /** HAProxy backend (pool) name. */
  backend: string;
  /** One Runtime API client per load balancer of the site. */
  clients: Pick<RuntimeClient, 'socket' | 'showStat'>[];
  intervalMs: number;
  minServers: number;
  timers: Timers;
  logger: Logger;
  registry?: Registry;
  /** Called when the verdict (up, and the reason when down) changes; first call after the first read. */
  onChange(up: boolean, reason: string): void;
}

export interface LoadBalancerView {
  socket: string;
  usable: number;
  total: number;
  /** Set when the load balancer could not be read. */
  error?: string;
  /** Servers that are not usable, with HAProxy's words for why. */
  unusable: string[];
}

/** The verdict from one round of reads: up while some load balancer has `minServers` usable servers. */
export function poolVerdict(backend: string, views: LoadBalancerView[], minServers: number): { up: boolean; reason: string } {
  const best = views.reduce((a, v) => (v.usable > a.usable ? v : a), views[0]!);
  if (best && best.usable >= minServers) return { up: true, reason: `pool ${backend}: ${best.usable} of ${best.total} servers usable` };
  const parts = views.map((v) =>
    v.error ? `${v.socket}: ${v.error}` : `${v.socket}: ${v.usable} of ${v.total} usable${v.unusable.length ? ` (${v.unusable.slice(0, 3).join('; ')}${v.unusable.length > 3 ? '; ...' : ''})` : ''}`,
  );
  return { up: false, reason: `pool ${backend}: fewer than ${minServers} usable servers on every load balancer: ${parts.join(' | ')}` };
}

/** What one server's row says about why it takes no traffic. */
function whyUnusable(row: StatRow): string {
  const detail = row.lastAgent || row.lastCheck;
  return `${row.name} ${row.status}${row.weight === 0 && row.status.startsWith('UP') ? ' weight 0' : ''}${detail ? ` (${detail})` : ''}`;
}

/**
 * Reads the site's load balancers through the Runtime API on a short interval (`show stat B 4 -1`,
 * parsed by header), never overlapping reads, and reports each change of the pool's verdict.
 */
export class PoolWatcher {
  private timer: unknown;
  private stopped = true;
  private last?: string;
  views: LoadBalancerView[] = [];
  private readonly usableGauge?: Gauge<'lb'>;
  private readonly upGauge?: Gauge;
  private readonly readSeconds?: Histogram;

  constructor(private readonly opts: PoolWatcherOptions) {
    if (opts.registry) {
      const registers = [opts.registry];
      this.usableGauge = new Gauge({ name: 'multisite_backend_pool_usable_servers', help: 'Usable servers of the local pool, per load balancer', labelNames: ['lb'], registers });
      this.upGauge = new Gauge({ name: 'multisite_backend_pool_up', help: 'The local site is up by its pool (1) or not (0)', registers });
      this.readSeconds = new Histogram({ name: 'multisite_backend_pool_read_seconds', help: 'Time to read every load balancer once', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers });
    }
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    this.opts.timers.clearTimeout(this.timer);
  }

  /** One round: every load balancer in parallel. Public so tests drive it step by step. */
  async readOnce(): Promise<{ up: boolean; reason: string }> {
    const { backend, clients, minServers } = this.opts;
    this.views = await Promise.all(
      clients.map(async (c): Promise<LoadBalancerView> => {
        try {
          const rows = (await c.showStat({ proxy: backend, serversOnly: true })).filter((r) => r.type === 'server' && r.proxy === backend);
          const usable = rows.filter(isUsable);
          if (rows.length === 0) return { socket: c.socket, usable: 0, total: 0, error: `no servers in backend '${backend}'`, unusable: [] };
          return { socket: c.socket, usable: usable.length, total: rows.length, unusable: rows.filter((r) => !isUsable(r)).map(whyUnusable) };
        } catch (err) {
          return { socket: c.socket, usable: 0, total: 0, error: (err as Error).message, unusable: [] };
        }
      }),
    );
    for (const v of this.views) this.usableGauge?.set({ lb: v.socket }, v.usable);
    return poolVerdict(backend, this.views, minServers);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    const { timers } = this.opts;
    const started = timers.now();
    try {
      const verdict = await this.readOnce();
      this.readSeconds?.observe((timers.now() - started) / 1000);
      this.upGauge?.set(verdict.up ? 1 : 0);
      // While up, the counts may move without a change of verdict: report only up/down and the reason when down.
      const key = verdict.up ? 'up' : `down|${verdict.reason}`;
      if (!this.stopped && key !== this.last) {
        const first = this.last === undefined;
        this.last = key;
        if (!first || !verdict.up) this.opts.logger.info({ up: verdict.up, reason: verdict.reason }, 'local pool verdict changed');
        this.opts.onChange(verdict.up, verdict.reason);
      }
    } catch (err) {
      this.opts.logger.error({ err }, 'pool read failed');
    }
    if (this.stopped) return;
    this.timer = timers.setTimeout(() => void this.poll(), Math.max(0, started + this.opts.intervalMs - timers.now()));
  }
}
