import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import { field, readStateFile, writeStateFile } from '../shared/state-file.js';
import type { SiteStateTable } from '../site-health/index.js';
import {
  evaluate,
  failback,
  initialOwnership,
  newer,
  type AutoFailback,
  type Change,
  type Ownership,
  type PartitionRule,
  type SiteView,
} from './ownership.js';

/**
 * Runs the ownership rules at one site: evaluates them on every site-state change (and on a
 * timer, for auto failback's hold-down), applies a change where it acts (HAProxy Runtime API,
 * the partition's DNS name, the local database's epoch table), announces it to the peers, and
 * adopts newer records peers announce or serve. Effects are injected: unit tests run it in
 * virtual time with fakes, the backend with the real ones (./index.ts).
 */

export interface ManagerEffects {
  /**
   * Sets this site's load balancers for one partition now active at `active`. `serveHere`: the
   * local pool may serve it (false until ownership is synced with the peers: forward or refuse).
   */
  haproxy(o: Ownership, serveHere: boolean): Promise<void>;
  /** Reorders the partition's DNS name (active site first) and flushes it from PowerDNS. */
  dns(o: Ownership): void;
  /** Writes the ownership into this site's database (the epoch the capture stamps). */
  db?(o: Ownership): Promise<void>;
  /** Sends this site's records to every peer. */
  announce(records: Ownership[]): Promise<void>;
  /** Reads every peer's records it can reach (recovery: announcements missed while down). */
  pull?(): Promise<PeerRecords[]>;
  /** The replication lag of a site's replica (ms); undefined: unknown (auto failback waits). */
  lagMs(site: string): Promise<number | undefined>;
}

/** The records one peer served. */
export interface PeerRecords {
  site: string;
  records: Ownership[];
}

export interface ManagerOptions {
  site: string;
  /**
   * The peers whose records must be read (or which must be verified down) before the local pool
   * serves any partition: a site restarted after a whole-site failure may no longer own what its
   * state file says. Empty or absent: nothing to wait for.
   */
  peers?: string[];
  rules: PartitionRule[];
  auto: AutoFailback;
  table: SiteStateTable;
  effects: ManagerEffects;
  timers: Timers;
  /** Wall-clock ms (epochs' `since`). */
  wallNow(): number;
  logger: Logger;
  /** Re-apply HAProxy states, pull peers, re-evaluate hold-downs this often. */
  reconcileMs: number;
  /**
   * No failure transfers this long after start (default 0): a site started before its peer
   * must not take the peer's partitions merely because it has not heard from it yet. Peers'
   * records are still adopted; the first reconcile after the grace evaluates normally.
   */
  startGraceMs?: number;
  stateFile?: string;
}

export interface TransferEvent {
  change: Change;
  /** Monotonic ms when applied here. */
  at: number;
}

export class PartitionManager {
  private owned: Map<string, Ownership>;
  private readonly rules: Map<string, PartitionRule>;
  private readonly lags = new Map<string, number | undefined>();
  /** Local wall-clock ms each partition's current record was taken up here (auto failback's hold-down). */
  private readonly heldSince = new Map<string, number>();
  private timer: unknown;
  private stopped = true;
  private startedAt = 0;
  /** Every change applied here, for tests, metrics and `multisite status`. */
  readonly history: TransferEvent[] = [];
  /** Reconciles completed (a test waits for one instead of sleeping through a period). */
  reconciles = 0;
  private readonly listeners: ((e: TransferEvent) => void)[] = [];
  private chain: Promise<void> = Promise.resolve();
  /** Peers whose records were read since start. */
  private readonly heardFrom = new Set<string>();
  /** True once every peer was read or is verified down: the local pool may serve partitions. */
  synced = false;
  private readonly onTableChange = () => {
    if (!this.synced && this.checkSynced()) this.chain = this.chain.then(() => this.applyAll());
    this.evaluateNow();
  };

  constructor(private readonly o: ManagerOptions) {
    this.rules = new Map(o.rules.map((r) => [r.partition, r]));
    this.owned = initialOwnership(o.rules, o.wallNow());
    for (const rec of this.readState())
      if (this.rules.has(rec.partition) && newer(this.owned.get(rec.partition), rec, this.rules.get(rec.partition)!))
        this.owned.set(rec.partition, rec);
  }

  records(): Ownership[] {
    return [...this.owned.values()].map((o) => ({ ...o }));
  }

  get(partition: string): Ownership | undefined {
    const o = this.owned.get(partition);
    return o && { ...o };
  }

  onChange(fn: (e: TransferEvent) => void): void {
    this.listeners.push(fn);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.startedAt = this.o.timers.now();
    this.o.table.on('change', this.onTableChange);
    await this.pullPeers();
    this.checkSynced();
    await this.applyAll();
    this.evaluateNow();
    this.schedule();
  }

  /** Reads the peers' records and adopts newer ones. */
  private async pullPeers(): Promise<void> {
    if (!this.o.effects.pull) return;
    const all = await this.o.effects.pull().catch(() => [] as PeerRecords[]);
    for (const { site, records } of all) {
      this.heardFrom.add(site);
      await this.merge(records, site);
    }
  }

  /** Synced once every peer was heard from or is not usable (verified down, drained). */
  private checkSynced(): boolean {
    if (this.synced) return true;
    const unheard = (this.o.peers ?? []).filter((p) => !this.heardFrom.has(p));
    if (unheard.some((p) => this.o.table.isUsable(p))) return false;
    this.synced = true;
    this.o.logger.info(
      { heard: [...this.heardFrom], down: unheard },
      'partition ownership synced with peers: the local pool serves the partitions active here',
    );
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.table.off('change', this.onTableChange);
    this.o.timers.clearTimeout(this.timer);
    await this.chain.catch(() => undefined);
  }

  /** Operator failback; announced like any change. */
  async failback(
    partition: string,
  ): Promise<{ ok: true; record: Ownership; changed: boolean } | { ok: false; error: string }> {
    const rule = this.rules.get(partition);
    const cur = this.owned.get(partition);
    if (!rule || !cur)
      return {
        ok: false,
        error: `unknown partition '${partition}' (partitions: ${[...this.rules.keys()].join(', ')})`,
      };
    const r = failback(rule, cur, this.view(), this.o.wallNow());
    if (!r.ok) return r;
    if (!r.change) return { ok: true, record: { ...cur }, changed: false };
    await this.commit([r.change], true);
    return { ok: true, record: { ...r.change.after }, changed: true };
  }

  /** Records a peer announced or served: newer ones are adopted and applied here. */
  async merge(records: Ownership[], from: string): Promise<number> {
    const changes: Change[] = [];
    for (const rec of records) {
      const rule = this.rules.get(rec.partition);
      if (!rule || !rule.order.includes(rec.active) || !Number.isSafeInteger(rec.epoch) || rec.epoch < 1) continue;
      const cur = this.owned.get(rec.partition);
      if (newer(cur, rec, rule))
        changes.push({
          before: cur!,
          after: { ...rec, home: rule.home, reason: `${rec.reason} (announced by ${from})` },
        });
    }
    if (changes.length) await this.commit(changes, false);
    return changes.length;
  }

  /** Re-applies every partition's state (HAProxy restarted, a socket came back). */
  async applyAll(): Promise<void> {
    for (const o of this.owned.values()) await this.applyOne(o, false);
  }

  private view(): SiteView {
    const t = this.o.table;
    return {
      usable: (s) => t.isUsable(s),
      // The table and wallNow share one clock (Date.now in the backend, a virtual one in tests).
      usableSince: (s) => {
        const st = t.get(s);
        return st?.usable ? st.since : undefined;
      },
      lagMs: (s) => this.lags.get(s),
    };
  }

  private evaluateNow(): void {
    if (this.stopped) return;
    const inGrace = this.o.timers.now() - this.startedAt < (this.o.startGraceMs ?? 0);
    const changes = evaluate([...this.rules.values()], this.owned, this.view(), this.o.wallNow(), this.o.auto, {
      heldSince: (o) => this.heldSince.get(o.partition) ?? o.since,
      // Before the peers' records are read, our own may be stale: decide nothing from them.
      transfers: !inGrace && this.synced,
    });
    if (changes.length) void this.commit(changes, true);
  }

  /** Serialised: each batch of changes is recorded, applied and announced in order. */
  private commit(changes: Change[], announce: boolean): Promise<void> {
    const wall = this.o.wallNow();
    for (const c of changes) {
      this.owned.set(c.after.partition, c.after);
      this.heldSince.set(c.after.partition, wall);
    }
    this.writeState();
    const at = this.o.timers.now();
    for (const c of changes) {
      const e = { change: c, at };
      this.history.push(e);
      this.o.logger.warn(
        {
          partition: c.after.partition,
          from: c.before?.active,
          to: c.after.active,
          epoch: c.after.epoch,
          reason: c.after.reason,
        },
        `partition ${c.after.partition} is now active at ${c.after.active}`,
      );
      for (const l of this.listeners) l(e);
    }
    this.chain = this.chain.then(async () => {
      for (const c of changes) await this.applyOne(c.after, true);
      if (announce)
        await this.o.effects
          .announce(this.records())
          .catch((err: Error) =>
            this.o.logger.warn({ err: err.message }, 'announcing partition ownership failed; peers pull it later'),
          );
    });
    return this.chain;
  }

  private async applyOne(o: Ownership, changed: boolean): Promise<void> {
    if (changed) this.o.effects.dns(o);
    await this.o.effects
      .haproxy(o, this.synced)
      .catch((err: Error) =>
        this.o.logger.warn(
          { partition: o.partition, err: err.message },
          'setting the load balancer for a partition failed; retried at the next reconcile',
        ),
      );
    if (changed && this.o.effects.db)
      await this.o.effects
        .db(o)
        .catch((err: Error) =>
          this.o.logger.warn(
            { partition: o.partition, err: err.message },
            'writing the ownership epoch to the database failed; retried at the next reconcile',
          ),
        );
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.o.timers.setTimeout(() => {
      void this.reconcile().finally(() => this.schedule());
    }, this.o.reconcileMs);
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    // Lags only matter for a partition waiting on auto failback.
    const waiting = [...this.rules.values()].filter(
      (r) => r.failback === 'auto' && this.owned.get(r.partition)?.active !== r.home,
    );
    for (const home of new Set(waiting.map((r) => r.home)))
      this.lags.set(home, await this.o.effects.lagMs(home).catch(() => undefined));
    await this.pullPeers();
    this.checkSynced();
    await this.chain;
    for (const o of this.owned.values()) {
      await this.o.effects.haproxy(o, this.synced).catch(() => undefined);
      if (this.o.effects.db) await this.o.effects.db(o).catch(() => undefined);
    }
    this.evaluateNow();
    this.reconciles++;
  }

  /** Ownership saved by an earlier run; a damaged file is refused (StateFileError), not read as none. */
  private readState(): Ownership[] {
    if (!this.o.stateFile) return [];
    return readStateFile(this.o.stateFile, parseOwnershipState) ?? [];
  }

  private writeState(): void {
    if (!this.o.stateFile) return;
    try {
      writeStateFile(this.o.stateFile, { site: this.o.site, partitions: this.records() });
    } catch (err) {
      this.o.logger.warn({ file: this.o.stateFile, err: (err as Error).message }, 'cannot save partition ownership');
    }
  }
}

function parseOwnershipState(data: unknown): Ownership[] {
  const list = field(data, 'partitions');
  if (!Array.isArray(list)) throw new Error('"partitions" must be a list');
  return list.map((o: unknown, i) => {
    const ok =
      typeof field(o, 'partition') === 'string' &&
      typeof field(o, 'home') === 'string' &&
      typeof field(o, 'active') === 'string' &&
      Number.isInteger(field(o, 'epoch')) &&
      typeof field(o, 'since') === 'number' &&
      typeof field(o, 'reason') === 'string';
    if (!ok) throw new Error(`partitions[${i}] must have partition, home, active, epoch, since and reason`);
    return o as Ownership;
  });
}
