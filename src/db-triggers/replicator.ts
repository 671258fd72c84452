import type { Db } from '../db/index.js';
import { REPLICATION_DEFAULTS } from '../config/index.js';
import { realTimers, type Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import { sameWatermark } from './apply.js';
import type { ReplicationMetrics } from './metrics.js';
import { dbSource, type ReadBatch, type Source } from './reader.js';
import { dbSink, RETRYABLE, type Sink } from './sink.js';
import type { Policy } from './types.js';
import type { Watermark } from './watermark.js';

export interface Peer {
  name: string;
  db: Db;
}

export interface ReplicatorOptions {
  site: string;
  /** This site's database (or `sink`) and the peers' (or `sources`). */
  local?: Db;
  peers?: Peer[];
  sink?: Sink;
  sources?: Source[];
  policy?: Policy;
  /** Peer changes read per batch at first; the limit doubles while a backlog remains (up to 16×). */
  batchSize?: number;
  /** Ceiling of the idle poll: an idle replicator polls at 2× steps up to this. */
  pollIntervalMs?: number;
  /** Delay after a batch that found changes (lets the next batch gather more). */
  busyPollMs?: number;
  /** How often this site's acknowledged changes are trimmed. */
  trimIntervalMs?: number;
  /** Conflict-log rows older than this are deleted (0 keeps them forever). */
  conflictRetentionDays?: number;
  /** Tombstones (row clocks of deleted rows) older than this are deleted (0 keeps them; default 7). */
  tombstoneRetentionDays?: number;
  /** No progress with a peer for this long while its changes are pending: logged, counted, recovered. */
  stallMs?: number;
  timers?: Timers;
  logger?: Logger;
  metrics?: ReplicationMetrics;
}

export interface SyncResult {
  /** Raw peer changes consumed. */
  changes: number;
  /** Consolidated rows applied. */
  rows: number;
  conflicts: number;
  errors: number;
  /** More changes are waiting (the batch was full). */
  more: boolean;
}

/** Per-peer state of the loop: the adaptive batch limit and progress tracking. */
interface PeerState {
  limit: number;
  /** Since when syncs of this peer have failed without a success (undefined: the last one worked). */
  failingSince?: number;
  failures: number;
  stalled: boolean;
  /** The next batch, read while the previous one applied (a backlog only). */
  ahead?: ReadAhead;
}

/** A read started early: used only if the watermark is still the one it was read from. */
interface ReadAhead {
  from: Watermark;
  limit: number;
  /** undefined: the read failed (readBatch then reads again). */
  batch: Promise<ReadBatch | undefined>;
}

const IDLE_FLOOR_MS = 25;
const MAX_LIMIT_FACTOR = 16;

/**
 * The per-site replicator: for each peer, read its new changes (gap-free), then hand them to the
 * sink, which plans (pure: consolidate, resolve) and applies them with the watermark in one
 * transaction; acknowledge to the peer; trim this site's acknowledged changes. No NOTIFY: it polls,
 * fast while there is work, backing off to `pollIntervalMs` when idle.
 */
export class Replicator {
  readonly site: string;
  private readonly sink: Sink;
  private readonly sources: Source[];
  private readonly o: Required<
    Pick<
      ReplicatorOptions,
      | 'batchSize'
      | 'pollIntervalMs'
      | 'busyPollMs'
      | 'trimIntervalMs'
      | 'conflictRetentionDays'
      | 'tombstoneRetentionDays'
      | 'stallMs'
    >
  >;
  private readonly timers: Timers;
  private readonly log?: Logger;
  private readonly metrics?: ReplicationMetrics;
  private readonly state = new Map<string, PeerState>();
  private readonly lastAck = new Map<string, bigint>();
  private stopping = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private lastTrim = -Infinity;

  constructor(opts: ReplicatorOptions) {
    this.site = opts.site;
    this.log = opts.logger;
    this.metrics = opts.metrics;
    this.timers = opts.timers ?? realTimers;
    const policy = opts.policy ?? { kind: 'latest' };
    this.sink =
      opts.sink ??
      dbSink(required(opts.local, 'local'), opts.site, policy, (peer, err) =>
        this.log?.warn({ peer, err: err.message }, 'batch failed; applying row by row'),
      );
    this.sources = opts.sources ?? required(opts.peers, 'peers').map((p) => dbSource(p.name, p.db));
    this.o = {
      batchSize: opts.batchSize ?? REPLICATION_DEFAULTS['batch-size'],
      pollIntervalMs: opts.pollIntervalMs ?? REPLICATION_DEFAULTS['poll-interval-ms'],
      busyPollMs: opts.busyPollMs ?? 200,
      trimIntervalMs: opts.trimIntervalMs ?? REPLICATION_DEFAULTS['trim-interval-ms'],
      conflictRetentionDays: opts.conflictRetentionDays ?? REPLICATION_DEFAULTS['conflict-retention-days'],
      tombstoneRetentionDays: opts.tombstoneRetentionDays ?? REPLICATION_DEFAULTS['tombstone-retention-days'],
      stallMs: opts.stallMs ?? 30_000,
    };
  }

  private peerState(name: string): PeerState {
    let s = this.state.get(name);
    if (!s) this.state.set(name, (s = { limit: this.o.batchSize, failures: 0, stalled: false }));
    return s;
  }

  /** Reads one batch from a peer (by name) and applies it (retrying lock conflicts). */
  async syncPeer(which: { name: string }): Promise<SyncResult> {
    const peer = this.sources.find((s) => s.name === which.name);
    if (!peer) throw new Error(`unknown peer ${which.name} (peers: ${this.sources.map((s) => s.name).join(', ')})`);
    const st = this.peerState(peer.name);
    // row by row (safe) after an error that may come back (a bug, a lost connection, ...) or in a
    // stall; not after a transient one: a read's serialization failure, a deadlock, a moved
    // watermark (common under a busy hot row: each sent the next apply row by row, ~5× slower,
    // holding the rows' locks that much longer)
    let safe = st.stalled;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.syncOnce(peer, st, safe || st.stalled);
        this.progress(peer.name, st, r);
        return r;
      } catch (err) {
        const code = (err as { code?: string }).code;
        const transient = code !== undefined && (RETRYABLE.has(code) || code === 'RETRY');
        safe ||= !transient;
        if (attempt < 5 && (code === undefined || transient)) {
          this.log?.debug({ peer: peer.name, attempt, code, err: (err as Error).message }, 'batch retried');
          continue;
        }
        this.failed(peer.name, st, err as Error);
        throw err;
      }
    }
  }

  private async syncOnce(peer: Source, st: PeerState, safe: boolean): Promise<SyncResult> {
    const from = await this.sink.readWatermark(peer.name);
    const batch = await this.readBatch(peer, st, from);
    if (batch.changes.length === 0 && sameWatermark(batch.next, from)) {
      this.metrics?.observeIdle(peer.name);
      // nothing new, but the peer may not know what we applied: a restart after a kill between
      // the apply's commit and its ack, or a failed ack (else it keeps those changes forever)
      await this.ack(peer, from.xmin);
      return { changes: 0, rows: 0, conflicts: 0, errors: 0, more: false };
    }
    // batches grow with the backlog, and shrink back when it is gone
    if (batch.limited) st.limit = Math.min(st.limit * 2, this.o.batchSize * MAX_LIMIT_FACTOR);
    else if (batch.changes.length < st.limit / 4) st.limit = Math.max(this.o.batchSize, Math.floor(st.limit / 2));
    // a backlog: the peer reads the next batch while this site applies this one (two databases,
    // two cores), instead of each waiting for the other
    if (batch.limited && !safe) st.ahead = readAhead(peer, batch.next, st.limit);
    const t0 = this.timers.now();
    const out = await this.sink.apply(peer.name, from, batch, safe);
    const res: SyncResult = {
      changes: batch.changes.length,
      rows: out.rows,
      conflicts: out.conflicts,
      errors: out.errors,
      more: batch.limited,
    };
    if (res.changes > 0) {
      const ms = this.timers.now() - t0;
      // lag after this batch: 0 when nothing was left unread, else the age of the newest change applied
      const lagS = batch.limited ? Math.max(0, Date.now() - out.newest) / 1000 : 0;
      this.metrics?.observeBatch(peer.name, res, ms, lagS, (out.lagMs ?? 0) / 1000, batch.remaining, st.limit);
      this.log?.debug({ peer: peer.name, ...res, ms, limit: st.limit }, 'batch applied');
      if (res.conflicts > 0)
        this.log?.info({ peer: peer.name, conflicts: res.conflicts, errors: res.errors }, 'conflicts logged');
    }
    await this.ack(peer, batch.next.xmin);
    return res;
  }

  /** Tells the peer what this site has applied, unless it was told already (a failure is retried next sync). */
  private async ack(peer: Source, xmin: bigint): Promise<void> {
    if (this.lastAck.get(peer.name) === xmin) return;
    await peer.ack(this.site, xmin).then(
      () => this.lastAck.set(peer.name, xmin),
      (err: Error) => this.log?.warn({ peer: peer.name, err: err.message }, 'ack failed; will retry'),
    );
  }

  /** The read-ahead batch if it was read from this watermark (and did not fail), else a new read. */
  private async readBatch(peer: Source, st: PeerState, from: Watermark): Promise<ReadBatch> {
    const ahead = st.ahead;
    st.ahead = undefined;
    if (ahead && ahead.limit === st.limit && sameWatermark(ahead.from, from)) {
      const b = await ahead.batch;
      if (b) return b;
    }
    return peer.read(from, st.limit);
  }

  private progress(peer: string, st: PeerState, r: SyncResult): void {
    if (st.stalled) {
      this.log?.warn({ peer, changes: r.changes }, 'replication progressing again');
      // back to full batches: a limit cut down while stalled would otherwise crawl from 1 upwards
      st.limit = Math.max(st.limit, this.o.batchSize);
    }
    st.failingSince = undefined;
    st.failures = 0;
    st.stalled = false;
    this.metrics?.setStalled(peer, false);
    this.metrics?.setUp(peer, true);
  }

  /**
   * A failed sync. One that keeps failing for `stallMs` is a stall (changes are pending, nothing
   * is consumed): said loudly, counted, and recovered from by itself: smaller batches applied row
   * by row, so one oversized or poisoned batch cannot block the rest.
   */
  private failed(peer: string, st: PeerState, err: Error): void {
    const now = this.timers.now();
    st.failingSince ??= now;
    st.failures++;
    this.metrics?.setUp(peer, false);
    if (st.failures === 1 || st.failures % 30 === 0)
      this.log?.error({ peer, err: err.message, failures: st.failures }, 'sync failed; will retry');
    if (now - st.failingSince >= this.o.stallMs) {
      st.stalled = true;
      st.limit = Math.max(1, Math.floor(st.limit / 4));
      st.failingSince = now;
      this.metrics?.setStalled(peer, true);
      this.log?.error(
        { peer, err: err.message, failures: st.failures, limit: st.limit },
        'replication stalled: no progress while changes are pending; retrying with smaller batches, row by row',
      );
    }
  }

  /** Deletes this site's changes that every peer has acknowledged; old conflict-log rows and tombstones. */
  async trim(): Promise<number> {
    const n = await this.sink.trim(
      this.sources.map((p) => p.name),
      this.o.conflictRetentionDays,
    );
    if (this.o.tombstoneRetentionDays > 0) await this.trimTombstones(this.o.tombstoneRetentionDays * 86_400_000);
    this.lastTrim = this.timers.now();
    if (n > 0) this.log?.debug({ trimmed: n }, 'trimmed acknowledged changes');
    this.metrics?.observeTrim(n);
    return n;
  }

  /** Deletes the row clocks of rows deleted longer than `olderThanMs` ago (by the delete's stamp). */
  async trimTombstones(olderThanMs: number): Promise<number> {
    const n = await this.sink.trimTombstones(olderThanMs);
    this.metrics?.observeTombstones(n);
    if (n > 0) this.log?.debug({ tombstones: n }, 'trimmed old tombstones');
    return n;
  }

  /** Syncs every peer until none has anything left (tests, one-shot runs). */
  async syncAll(): Promise<number> {
    let total = 0;
    for (;;) {
      let any = false;
      for (const p of this.sources) {
        const r = await this.syncPeer(p);
        total += r.changes;
        if (r.changes > 0 || r.more) any = true;
      }
      if (!any) return total;
    }
  }

  /** Runs until stop(): polls every peer, fast while there is work, slower when idle. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return Promise.resolve();
  }

  /**
   * Settles when the loop ends: resolves after stop(), rejects if the loop itself failed (sync
   * errors are retried inside it; this is for what escaped), so a supervisor can restart it.
   */
  finished(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  private async run(): Promise<void> {
    let idleMs = 0;
    while (!this.stopping) {
      // nothing may end this loop but stop(): an unexpected error (a bug, a metrics failure) is
      // logged and the loop goes on, instead of a daemon that runs on and replicates nothing
      let round: Round = { found: false, more: false, failed: true, hot: false };
      try {
        round = await this.round();
        if (!this.stopping && this.timers.now() - this.lastTrim >= this.o.trimIntervalMs) {
          await this.trim().catch((err: Error) => this.log?.warn({ err: err.message }, 'trim failed'));
        }
      } catch (err) {
        this.log?.error({ err: (err as Error).message }, 'replication loop error; going on');
      }
      if (this.stopping || round.more) continue;
      idleMs = nextDelay(round, idleMs, this.o);
      await this.sleep(idleMs);
    }
  }

  private async round(): Promise<Round> {
    const r: Round = { found: false, more: false, failed: false, hot: false };
    // this site's own new changes stamped off the peers' reads and off this site's apply
    // transactions (which would stamp them while holding the rows' locks the writers wait for)
    await this.sink.stampOwn().catch((err: Error) => this.log?.warn({ err: err.message }, 'stamping failed'));
    for (const p of this.sources) {
      if (this.stopping) break;
      // a sync that hangs is a stall too: said (log + metric) while it lasts; every query of a
      // sync is bounded (statement and lock timeouts, the pool's connect timeout), so it ends in
      // an error, and failed() retries with smaller batches
      const watchdog = this.timers.setTimeout(() => {
        const st = this.peerState(p.name);
        st.stalled = true;
        this.metrics?.setStalled(p.name, true);
        this.log?.error(
          { peer: p.name, ms: this.o.stallMs },
          'replication stalled: no progress while changes are pending (a sync has not finished)',
        );
      }, this.o.stallMs);
      try {
        const s = await this.syncPeer(p);
        r.found ||= s.changes > 0;
        r.more ||= s.more;
        r.hot ||= isHot(s);
      } catch {
        r.failed = true; // logged by failed()
      } finally {
        this.timers.clearTimeout(watchdog);
      }
    }
    return r;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.timers.clearTimeout(t);
        this.wake = null;
        resolve();
      };
      const t = this.timers.setTimeout(done, ms);
      this.wake = done;
    });
  }

  /** Finishes the current batch (or lets its transaction roll back). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    // a read started ahead finishes before the caller closes the pools
    await Promise.all([...this.state.values()].map((st) => st.ahead?.batch));
  }
}

interface Round {
  found: boolean;
  more: boolean;
  failed: boolean;
  /** A batch was mostly rewrites of a few rows (see isHot). */
  hot?: boolean;
}

/** Changes per applied row from which a batch counts as hot rows being rewritten. */
const HOT_CHANGES_PER_ROW = 8;
const HOT_MIN_CHANGES = 64;

/**
 * A batch whose changes consolidated into few rows (a hot row or counter rewritten over and
 * over): each batch ships such a row's latest state once, so the rows shipped are the batches
 * taken. Waiting longer before the next batch ships fewer versions of the same rows.
 */
export function isHot(r: { changes: number; rows: number }): boolean {
  return r.changes >= HOT_MIN_CHANGES && r.changes >= HOT_CHANGES_PER_ROW * Math.max(1, r.rows);
}

/**
 * The adaptive poll: after a round that found changes wait `busyPollMs` (the next batch gathers
 * what arrives meanwhile), or 4× that, up to `pollIntervalMs`, when the round was hot (a row
 * rewritten many times ships one version per batch: fewer batches, fewer versions; the lag
 * stays below the wait plus one apply); when idle double the wait up to `pollIntervalMs`; after
 * a failure back off.
 */
export function nextDelay(r: Round, prevMs: number, o: { busyPollMs: number; pollIntervalMs: number }): number {
  if (r.failed) return Math.min(o.pollIntervalMs * 5, 5000);
  if (r.found && r.hot) return Math.min(o.pollIntervalMs, o.busyPollMs * 4);
  if (r.found) return o.busyPollMs;
  return Math.min(o.pollIntervalMs, Math.max(IDLE_FLOOR_MS, prevMs * 2));
}

/** Starts a read now; a failure becomes undefined (readBatch then reads again), never unhandled. */
function readAhead(peer: Source, from: Watermark, limit: number): ReadAhead {
  return { from, limit, batch: peer.read(from, limit).catch(() => undefined) };
}

function required<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`Replicator: give ${what} or its injected counterpart`);
  return v;
}
