import type { LoadedConfig } from '../config/index.js';
import type { Db } from '../db/index.js';
import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import { openSiteDb } from './site-config.js';
import { lagMsOf, replicationStatus, type ReplicationStatus } from './status.js';

/**
 * This site's replica lag, read every `intervalMs` for the heartbeats (every peer then knows how
 * far behind each site's database is). Reads this site's watermarks and each peer's change table
 * over one connection per database. Embedded (PGlite) databases belong to the replicator's
 * process, so with any of them the lag stays unknown rather than opening them twice.
 */
export class ReplicaLagReporter {
  private value: number | undefined;
  private last: ReplicationStatus | undefined;
  private timer: unknown;
  private stopped = true;
  private lastWarn = -Infinity;
  private readonly dbs = new Map<string, Promise<Db>>();

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly o: {
      timers: Timers;
      logger: Logger;
      intervalMs?: number;
      open?: (site: string) => Promise<Db>;
      /** Every reading (undefined: unknown), e.g. to demote this site in DNS when it lags. */
      onReading?: (lagMs: number | undefined) => void;
    },
  ) {}

  /** The last reading in ms; undefined until one succeeded, or when the last one failed. */
  get lagMs(): number | undefined {
    return this.value;
  }

  /**
   * The whole status of the last reading (pending changes per peer, the 10 newest conflicts), for
   * the status page: read in the same queries as the lag, so showing it costs nothing more.
   */
  get status(): ReplicationStatus | undefined {
    return this.last;
  }

  /** Whether this config can be read from the backend (replication configured, no embedded databases). */
  static applies(loaded: LoadedConfig): boolean {
    const r = loaded.config.replication;
    if (!r || !r.sites[loaded.config.site]) return false;
    return Object.values(r.sites).every((s) => /^postgres(ql)?:\/\//.test(s.db));
  }

  start(): void {
    this.stopped = false;
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
    await Promise.allSettled([...this.dbs.values()].map(async (d) => (await d).close()));
  }

  /** One reading (public for tests). */
  async read(): Promise<number | undefined> {
    const me = this.loaded.config.site;
    const sites = Object.keys(this.loaded.config.replication!.sites).filter((s) => s !== me);
    try {
      const peers = await Promise.all(sites.map(async (name) => ({ name, db: await this.db(name).catch(() => null) })));
      this.last = await replicationStatus(await this.db(me), peers, { conflicts: 10 });
      this.value = lagMsOf(this.last);
      this.o.onReading?.(this.value);
    } catch (err) {
      this.o.onReading?.(undefined);
      this.value = this.last = undefined;
      const now = this.o.timers.now();
      if (now - this.lastWarn > 30_000) {
        this.lastWarn = now;
        this.o.logger.warn(
          { err: (err as Error).message },
          'replica lag unknown (heartbeats say so); retried every interval',
        );
      }
    }
    return this.value;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.read();
    if (!this.stopped) this.timer = this.o.timers.setTimeout(() => void this.tick(), this.o.intervalMs ?? 1000);
  }

  private db(site: string): Promise<Db> {
    let d = this.dbs.get(site);
    if (!d) {
      d = (this.o.open ?? ((s) => openSiteDb(this.loaded, s, { applicationName: 'multisite-lag', max: 1 })))(site);
      // A failed open is retried at the next reading.
      d.catch(() => this.dbs.delete(site));
      this.dbs.set(site, d);
    }
    return d;
  }
}
