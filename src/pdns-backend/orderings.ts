import { EventEmitter } from 'node:events';
import { MetricsTable, type SiteStateTable, parseClient, probeKey, type ClientNet } from '../site-health/index.js';
import { decide, type BalancedName, type Decision } from './balanced.js';
import { smoothSchedule, type PolicyInputs } from './policies.js';
import { setNewest } from '../shared/bounded-map.js';
import { realTimers, type Timers } from '../shared/timers.js';

/** A decision made by another site's backend (`decided-by`), kept for the name's TTL. */
export interface RemoteDecision {
  sites: string[];
  scope: number;
  /** Clock ms after which it is no longer used. */
  until: number;
}

export interface OrderingsOptions {
  clock?: () => number;
  /**
   * Schedules the re-decision when a load-based name's hold-ms ends (default: real timers,
   * unref'd). Figures that moved during the hold change no answer then; without it they would
   * wait for the next figure that differs, which steady figures never send.
   */
  timers?: Pick<Timers, 'setTimeout' | 'clearTimeout'>;
  /** Client-dependent decisions kept per name (per real-remote), then the oldest are dropped. */
  maxClientEntries?: number;
  /** closest: called (at most once per network and version) when no site has probed a client network. */
  onUnprobed?(client: ClientNet, key: string): void;
  /** decided-by: called when a decision for (name, client key) should be fetched from the deciding site. */
  onRemoteMiss?(name: BalancedName, client: ClientNet | undefined, key: string): void;
}

/** What an answer is built from: the decision, and the ECS scope to return with it. */
export interface ClientDecision {
  decision: Decision;
  scope: number;
}

/**
 * The live order of every balanced name, answered from memory. Client-independent names
 * (`none`, `metrics`) have one decision per `version`; load-based ones keep their order until
 * figures move a site by more than the hysteresis margin, so noise neither changes an answer nor
 * flushes a cache. `version` bumps whenever any cached answer may have changed: the site table,
 * an order of a load-based name, a probe result, a decision from another site.
 * Emits 'changed' with the names whose cacheable (scopeMask 0) answer changed: exactly those
 * are flushed from PowerDNS.
 */
export class Orderings extends EventEmitter<{ changed: [string[]]; clientChanged: [string[]] }> {
  version = 0;
  /** Names whose cacheable answer the latest recompute changed. */
  lastChanged: string[] = [];
  /**
   * Per client-dependent name: what its answers are decided from, besides the client (the usable
   * sites in preference order, the stale ones). A change of it may change any client's answer.
   */
  private readonly clientInputs = new Map<string, string>();
  private readonly clock: () => number;
  private readonly shared = new Map<string, { decision: Decision; key: string; since: number }>();
  private readonly perQuery = new Map<string, { version: number; decisions: Decision[]; counter: number }>();
  private readonly clientCache = new Map<string, { version: number; map: Map<string, ClientDecision> }>();
  private readonly remote = new Map<string, Map<string, RemoteDecision>>();
  private readonly unprobedAsked = new Set<string>();
  private readonly usable: (s: string) => boolean;
  private readonly stale: (s: string) => boolean;
  private readonly maxClientEntries: number;
  private lastTableVersion: number;
  private readonly timers: Pick<Timers, 'setTimeout' | 'clearTimeout'>;
  /** The pending re-decision at the end of a hold: its clock time and timer. */
  private holdEnd?: { at: number; handle: unknown };
  /**
   * Per name (index in `names`): the id of its decision's inputs when they are its configuration
   * alone (dependence none, no decided-by), else undefined. Names with the same id decide alike, so
   * a recompute decides each shape once: 10,000 failover names sharing one config are one decision.
   */
  private readonly shapes: (number | undefined)[];

  constructor(
    readonly names: readonly BalancedName[],
    readonly table: SiteStateTable,
    readonly metrics: MetricsTable = new MetricsTable(table.sites),
    private readonly opts: OrderingsOptions = {},
  ) {
    super();
    this.clock = opts.clock ?? Date.now;
    this.timers = opts.timers ?? realTimers;
    this.maxClientEntries = opts.maxClientEntries ?? 10_000;
    this.usable = (s) => table.isUsable(s);
    this.stale = (s) => this.metrics.isStale(s);
    this.lastTableVersion = table.version;
    this.shapes = shapeIds(names);
    for (const b of names) {
      if (b.dependence === 'none' || b.dependence === 'metrics') {
        const d = this.decideShared(b, undefined, true);
        // No change yet: hold (hysteresis) counts from the first change.
        this.shared.set(b.name, { decision: d, key: keyOf(d), since: -Infinity });
      }
      if (b.decidedBy) this.remote.set(b.name, new Map());
      if (b.dependence === 'client') this.clientInputs.set(b.name, this.clientInputsKey(b));
    }
    table.on('change', () => this.recompute('sites'));
    this.metrics.on('change', (c) => this.recompute(c.kind));
  }

  /** The decision for a client-independent name (dependence none or metrics). */
  sharedDecision(b: BalancedName): Decision {
    this.sync();
    return this.shared.get(b.name)?.decision ?? decide(b, this.usable);
  }

  /**
   * The decision for a client (per-query and client-dependent names). `realRemote` is PowerDNS's
   * real-remote ("192.0.2.0/24"). Per-query names advance their counter.
   */
  forClient(b: BalancedName, realRemote: string): ClientDecision {
    this.sync();
    if (b.dependence === 'per-query') return this.nextPerQuery(b, realRemote);
    let c = this.clientCache.get(b.name);
    if (!c || c.version !== this.version) {
      c = { version: this.version, map: new Map() };
      this.clientCache.set(b.name, c);
    }
    let hit = c.map.get(realRemote);
    if (hit === undefined) {
      hit = this.decideClient(b, realRemote);
      if (c.map.size >= this.maxClientEntries) c.map.delete(c.map.keys().next().value!);
      c.map.set(realRemote, hit);
    }
    return hit;
  }

  /** A full decision with its trace (explain, debug log); no caches touched, no counters moved. */
  explain(
    b: BalancedName,
    realRemote?: string,
  ): { decision: Decision; scope: number; trace: string[]; remote?: RemoteDecision } {
    const trace: string[] = [];
    const client = realRemote ? parseClient(realRemote) : undefined;
    if (realRemote && !client) trace.push(`client ${realRemote} is not an address; deciding without it`);
    const remote = b.decidedBy ? this.remoteFor(b, client) : undefined;
    if (b.decidedBy)
      trace.push(
        remote
          ? `decided by site ${b.decidedBy}: [${remote.sites.join(', ')}] (valid ${remote.until - this.clock()} ms more)`
          : `decided-by ${b.decidedBy}: no fresh answer from it; our own decision stands`,
      );
    const shared = this.shared.get(b.name);
    const inputs = this.inputs(b, client, trace);
    if (b.dependence === 'metrics' && shared) {
      inputs.previous = shared.decision.sites;
      inputs.previousSince = shared.since;
    }
    if (b.dependence === 'per-query') inputs.counter = this.perQuery.get(b.name)?.counter ?? 0;
    const decision = decide(b, this.usable, inputs);
    if (remote) return { decision: { kind: 'sites', sites: remote.sites }, scope: remote.scope, trace, remote };
    if (b.dependence === 'metrics' && shared)
      trace.push(
        `served now: [${shared.decision.sites.join(', ')}]${Number.isFinite(shared.since) ? ` since ${shared.since}` : ' since start'}`,
      );
    return { decision, scope: decision.scope ?? 0, trace };
  }

  /**
   * Stores a decision from the deciding site (decided-by) and makes answers use it; recomputes
   * only when it changes what is served (a new or expired entry, or another order or scope).
   */
  setRemote(name: string, key: string, d: RemoteDecision): void {
    const m = this.remote.get(name);
    if (!m) return;
    const prev = m.get(key);
    setNewest(m, key, d, this.maxClientEntries);
    if (!prev || prev.until <= this.clock() || prev.sites.join() !== d.sites.join() || prev.scope !== d.scope)
      this.recompute('remote');
  }

  /**
   * Drops decided-by decisions past their time (answers fall back to ours until a fresh one
   * comes) and returns the client-independent decided-by names whose decision is missing or
   * expires within `withinMs`: the decider fetches those ahead of time, so a shared answer never
   * waits for a query to notice.
   */
  sweepRemote(withinMs: number): BalancedName[] {
    const now = this.clock();
    let dropped = false;
    for (const m of this.remote.values()) {
      for (const [key, d] of m) {
        if (d.until > now) continue;
        m.delete(key);
        dropped = true;
      }
    }
    if (dropped) this.recompute('remote expired');
    return this.names.filter((b) => {
      if (!b.decidedBy || b.dependence === 'client') return false;
      const d = this.remote.get(b.name)?.get('');
      return !d || d.until - now <= withinMs;
    });
  }

  /**
   * Re-decides every shared name; names whose answer changed are emitted for flushing ('changed').
   * Client-dependent names whose answers may have changed for some client are emitted as
   * 'clientChanged': PowerDNS does not cache them (they carry a scope), a cache keyed on the
   * client subnet in front of it (dnsdist) does.
   */
  recompute(why: string): void {
    this.recomputeShared();
    const clientChanged = this.clientNamesChanged(why);
    if (clientChanged.length > 0) this.emit('clientChanged', clientChanged);
  }

  /**
   * Client-dependent names whose answer may differ now: their usable or stale sites changed, or
   * what else they read moved (a probe for closest, a decision from the deciding site). Coarse on
   * purpose: flushing a name whose answers did not change costs a cache miss per client network;
   * missing one would serve an old order for the TTL.
   */
  private clientNamesChanged(why: string): string[] {
    const out: string[] = [];
    for (const b of this.names) {
      if (b.dependence !== 'client') continue;
      const key = this.clientInputsKey(b);
      const moved = this.clientInputs.get(b.name) !== key;
      if (moved) this.clientInputs.set(b.name, key);
      if (moved || (why === 'probe' && b.policy === 'closest') || (b.decidedBy && why.startsWith('remote')))
        out.push(b.name);
    }
    return out;
  }

  private clientInputsKey(b: BalancedName): string {
    return `${b.preference.filter(this.usable).join(',')}|${b.preference.filter(this.stale).join(',')}`;
  }

  private recomputeShared(): void {
    this.lastTableVersion = this.table.version;
    this.version++;
    this.unprobedAsked.clear();
    const changed: string[] = [];
    const now = this.clock();
    const byShape = new Map<string, { d: Decision; key: string }>();
    let holdEnd = Infinity;
    for (let i = 0; i < this.names.length; i++) {
      const b = this.names[i]!;
      const cur = this.shared.get(b.name);
      if (!cur) continue;
      // `preference` is not fixed: partitions reorder a name at run time, so it is part of the key.
      const shape = this.shapes[i] === undefined ? undefined : `${this.shapes[i]}|${b.preference.join(',')}`;
      let hit = shape === undefined ? undefined : byShape.get(shape);
      if (!hit) {
        const d = this.decideShared(b, cur, false);
        hit = { d, key: keyOf(d) };
        if (shape !== undefined) byShape.set(shape, hit);
      }
      const { d, key } = hit;
      const since = key !== cur.key ? now : cur.since;
      if (key !== cur.key) {
        this.shared.set(b.name, { decision: d, key, since });
        changed.push(b.name);
      }
      const end = since + b.hysteresis.holdMs;
      if (b.dependence === 'metrics' && end > now) holdEnd = Math.min(holdEnd, end);
    }
    this.lastChanged = changed;
    this.scheduleHoldEnd(holdEnd, now);
    if (changed.length > 0) this.emit('changed', changed);
  }

  /** Stops the pending re-decision (the site is stopping). */
  close(): void {
    if (this.holdEnd) this.timers.clearTimeout(this.holdEnd.handle);
    this.holdEnd = undefined;
  }

  /**
   * One timer at `at`, the earliest end of a running hold: figures that moved during a hold are
   * decided on when it ends (each recompute schedules the next end).
   */
  private scheduleHoldEnd(at: number, now: number): void {
    if (at === Infinity || (this.holdEnd && this.holdEnd.at <= at)) return;
    this.close();
    const handle = this.timers.setTimeout(() => {
      this.holdEnd = undefined;
      this.recompute('hold ended');
    }, at - now);
    this.holdEnd = { at, handle };
  }

  /** The table may be changed by code that did not go through 'change' listeners yet (same tick). */
  private sync(): void {
    if (this.table.version !== this.lastTableVersion) this.recompute('sites');
  }

  private decideShared(
    b: BalancedName,
    cur: { decision: Decision; since: number } | undefined,
    first: boolean,
  ): Decision {
    const remote = b.decidedBy ? this.remoteFor(b, undefined) : undefined;
    if (remote) {
      const sites = remote.sites.filter(this.usable);
      if (sites.length > 0) return { kind: 'sites', sites };
    }
    const inputs = this.inputs(b, undefined);
    if (b.dependence === 'metrics' && cur && !first) {
      inputs.previous = cur.decision.sites;
      inputs.previousSince = cur.since;
    }
    return decide(b, this.usable, inputs);
  }

  private decideClient(b: BalancedName, realRemote: string): ClientDecision {
    const client = parseClient(realRemote);
    const remote = b.decidedBy ? this.remoteFor(b, client) : undefined;
    if (remote) {
      const sites = remote.sites.filter(this.usable);
      if (sites.length > 0) return { decision: { kind: 'sites', sites }, scope: remote.scope };
    }
    const d = decide(b, this.usable, this.inputs(b, client));
    if (d.kind === 'sites' && d.unprobed && client && this.opts.onUnprobed) {
      const key = probeKey(client);
      if (!this.unprobedAsked.has(key)) {
        // Bounded: real-remote comes from the request; a flood of distinct networks must not grow it.
        if (this.unprobedAsked.size >= this.maxClientEntries) this.unprobedAsked.clear();
        this.unprobedAsked.add(key);
        this.opts.onUnprobed(client, key);
      }
    }
    return { decision: d, scope: d.scope || perQueryScope(realRemote) };
  }

  private nextPerQuery(b: BalancedName, realRemote: string): ClientDecision {
    let p = this.perQuery.get(b.name);
    if (!p || p.version !== this.version) {
      const base = decide(b, this.usable, { stale: this.stale });
      const all = base.kind === 'sites' ? base.sites : [];
      // Stale sites never come first: the rotation runs over the fresh ones, the stale follow.
      const fresh = all.filter((s) => !this.stale(s));
      const usable = fresh.length > 0 ? fresh : all;
      const tail = fresh.length > 0 ? all.filter(this.stale) : [];
      const rotation = (first: string[]): Decision => ({ kind: 'sites', sites: [...first, ...tail] });
      let decisions: Decision[];
      if (all.length === 0) decisions = [base];
      else if (b.policy === 'ratio') {
        const schedule = smoothSchedule(usable, b.weights);
        const byFirst = new Map(usable.map((s) => [s, rotation([s, ...usable.filter((x) => x !== s)])]));
        decisions = schedule.map((s) => byFirst.get(s)!);
      } else decisions = usable.map((_, k) => rotation([...usable.slice(k), ...usable.slice(0, k)]));
      p = { version: this.version, decisions, counter: p?.counter ?? 0 };
      this.perQuery.set(b.name, p);
    }
    const decision = p.decisions[p.counter % p.decisions.length]!;
    p.counter = (p.counter + 1) % 0x3fffffff;
    return { decision, scope: decision.kind === 'sites' ? perQueryScope(realRemote) : 0 };
  }

  private inputs(b: BalancedName, client: ClientNet | undefined, trace?: string[]): PolicyInputs {
    const m = this.metrics;
    const inputs: PolicyInputs = { now: this.clock(), figures: (s) => m.figures(s), stale: this.stale };
    if (client) {
      inputs.client = client;
      if (b.policy === 'closest') {
        const key = probeKey(client);
        inputs.probe = (s) => m.probe(s, key);
      }
    }
    if (trace) inputs.trace = trace;
    return inputs;
  }

  private remoteFor(b: BalancedName, client: ClientNet | undefined): RemoteDecision | undefined {
    const key = b.dependence === 'client' && client ? probeKey(client) : '';
    const hit = this.remote.get(b.name)?.get(key);
    if (hit && hit.until > this.clock()) return hit;
    this.opts.onRemoteMiss?.(b, client, key);
    return undefined;
  }
}

/** Fields of a name that do not change its decision (which sites, in which order). */
const NOT_DECISIVE = new Set(['name', 'ttl', 'a', 'aaaa', 'decidedByTimeoutMs']);

/** See Orderings.shapes: equal ids for client-independent, fixed names with equal decision inputs. */
function shapeIds(names: readonly BalancedName[]): (number | undefined)[] {
  const ids = new Map<string, number>();
  return names.map((b) => {
    if (b.dependence !== 'none' || b.decidedBy) return undefined;
    const text = JSON.stringify(b, (k, v: unknown) =>
      NOT_DECISIVE.has(k)
        ? undefined
        : v instanceof Map
          ? [...(v as Map<unknown, unknown>)]
          : typeof v === 'bigint'
            ? v.toString()
            : v,
    );
    let id = ids.get(text);
    if (id === undefined) ids.set(text, (id = ids.size));
    return id;
  });
}

function keyOf(d: Decision): string {
  return `${d.kind}:${d.kind === 'fallback' ? d.fallback : ''}:${d.sites.join(',')}`;
}

/** Per-query answers carry the client's source prefix length as scope, so PowerDNS does not cache them. */
function perQueryScope(realRemote: string): number {
  const slash = realRemote.lastIndexOf('/');
  const bits = slash < 0 ? 32 : Number(realRemote.slice(slash + 1));
  return Number.isInteger(bits) && bits > 0 ? bits : 32;
}
