import { addressesFor, decide, type BalancedName, type Decision } from './balanced.js';
import type { ClientDecision } from './orderings.js';
import type { LoadedZone } from './zones.js';
import type { ZoneRecord } from './zonefile/index.js';

/** One record as PowerDNS's remote backend reads it (modules/remotebackend: lookup/list). */
export interface WireRecord {
  qtype: string;
  qname: string;
  content: string;
  ttl: number;
  auth: 0 | 1;
  domain_id: number;
  scopeMask?: number;
}

export const NO_RESULT = '{"result":false}';
/** PowerDNS turns a backend exception into SERVFAIL; a lookup "result" it cannot read is one. */
export const SERVFAIL_RESULT =
  '{"result":[{"qtype":"A","qname":".","content":"servfail","ttl":0}],"log":["balanced name has no usable site and fallback servfail"]}';

const resultOf = (records: WireRecord[]) =>
  records.length === 0 ? NO_RESULT : `{"result":${JSON.stringify(records)}}`;

/** Where balanced names get their order from (the live Orderings, or a test's stand-in). */
export interface OrderSource {
  readonly version: number;
  sharedDecision(b: BalancedName): Decision;
  forClient(b: BalancedName, realRemote: string): ClientDecision;
}

/** Client-dependent answers kept per node (per real-remote and qtype) before the oldest go. */
const MAX_CLIENT_ANSWERS = 20_000;

/** Everything PowerDNS may ask about one owner name, answers pre-serialised per qtype. */
class NameNode {
  readonly records: WireRecord[] = [];
  private readonly answers = new Map<string, string>();
  balanced?: BalancedName;
  private balancedVersion = -1;
  private dynamic: WireRecord[] | 'servfail' = [];
  /** Client-dependent: real-remote → qtype → answer, for one version. */
  private readonly byClient = new Map<string, Map<string, string>>();
  /** Per-query: decision (interned per version) → "qtype/scope" → answer. */
  private perQuery = new WeakMap<Decision, Map<string, string>>();

  constructor(
    readonly name: string,
    readonly zone: ServedZone,
  ) {}

  answer(qtype: string, orders: OrderSource, realRemote = ''): string {
    const b = this.balanced;
    if (b && (b.dependence === 'client' || b.dependence === 'per-query'))
      return this.clientAnswer(b, qtype, orders, realRemote);
    this.refresh(orders);
    let json = this.answers.get(qtype);
    if (json === undefined) {
      json = this.dynamic === 'servfail' ? SERVFAIL_RESULT : resultOf(this.select(qtype, this.dynamic));
      if (worthKeeping(json)) this.answers.set(qtype, json);
    }
    return json;
  }

  /** The balanced addresses alone (for AXFR), as of the given state version (client-independent order). */
  dynamicRecords(orders: OrderSource): WireRecord[] {
    if (this.balanced && (this.balanced.dependence === 'client' || this.balanced.dependence === 'per-query')) {
      const recs = balancedRecords(
        this.balanced,
        this.zone.id,
        decide(this.balanced, () => true),
        0,
      );
      return recs === 'servfail' ? [] : recs;
    }
    this.refresh(orders);
    return this.dynamic === 'servfail' ? [] : this.dynamic;
  }

  /** Balanced answers are recomputed once per state version, then served from the cache. */
  private refresh(orders: OrderSource): void {
    if (!this.balanced || this.balancedVersion === orders.version) return;
    this.answers.clear();
    this.balancedVersion = orders.version;
    this.dynamic = balancedRecords(this.balanced, this.zone.id, orders.sharedDecision(this.balanced), 0);
  }

  /**
   * A client-dependent (or per-query) answer: decided per real-remote and served with the scope
   * it depends on; cached per (real-remote, qtype) for the current version, bounded.
   */
  private clientAnswer(b: BalancedName, qtype: string, orders: OrderSource, realRemote: string): string {
    if (this.balancedVersion !== orders.version) {
      this.balancedVersion = orders.version;
      this.byClient.clear();
      this.perQuery = new WeakMap();
    }
    if (b.dependence === 'per-query') {
      const { decision, scope } = orders.forClient(b, realRemote);
      let m = this.perQuery.get(decision);
      if (!m) this.perQuery.set(decision, (m = new Map()));
      const k = scope === 0 ? qtype : `${qtype}/${scope}`;
      let json = m.get(k);
      if (json === undefined) {
        json = this.build(b, qtype, decision, scope);
        if (worthKeeping(json)) m.set(k, json);
      }
      return json;
    }
    let m = this.byClient.get(realRemote);
    if (!m) {
      if (this.byClient.size >= MAX_CLIENT_ANSWERS) this.byClient.delete(this.byClient.keys().next().value!);
      this.byClient.set(realRemote, (m = new Map()));
    }
    let json = m.get(qtype);
    if (json === undefined) {
      const { decision, scope } = orders.forClient(b, realRemote);
      json = this.build(b, qtype, decision, scope);
      if (worthKeeping(json)) m.set(qtype, json);
    }
    return json;
  }

  private build(b: BalancedName, qtype: string, decision: Decision, scope: number): string {
    const recs = balancedRecords(b, this.zone.id, decision, scope);
    return recs === 'servfail' ? SERVFAIL_RESULT : resultOf(this.select(qtype, recs));
  }

  private select(qtype: string, dynamic: WireRecord[] | 'servfail'): WireRecord[] {
    const all = dynamic === 'servfail' ? this.records : [...dynamic, ...this.records];
    if (qtype === 'ANY') return all.length > 0 ? all : this.entRecord();
    return all.filter((r) => r.qtype === qtype);
  }

  /** A name with nothing left (an empty fallback) still exists: answer NOERROR, not NXDOMAIN. */
  private entRecord(): WireRecord[] {
    return [{ qtype: 'ENT', qname: this.name, content: '', ttl: 0, auth: 1, domain_id: this.zone.id }];
  }
}

/**
 * Only answers with records are cached per qtype: the constant empty and SERVFAIL answers cost
 * nothing to return, and caching them would let a flood of made-up qtypes grow the maps.
 */
function worthKeeping(json: string): boolean {
  return json !== NO_RESULT && json !== SERVFAIL_RESULT;
}

function balancedRecords(b: BalancedName, domainId: number, d: Decision, scopeMask: number): WireRecord[] | 'servfail' {
  if (d.kind === 'fallback' && d.fallback === 'servfail') return 'servfail';
  const { a, aaaa } = addressesFor(b, d.sites);
  const rec = (qtype: string, content: string): WireRecord => ({
    qtype,
    qname: b.name,
    content,
    ttl: b.ttl,
    auth: 1,
    domain_id: domainId,
    scopeMask,
  });
  return [...a.map((x) => rec('A', x)), ...aaaa.map((x) => rec('AAAA', x))];
}

/** A zone as served: nodes by lower-case name, including empty non-terminals. */
export class ServedZone {
  readonly nodes = new Map<string, NameNode>();
  readonly list: WireRecord[] = [];

  constructor(
    readonly id: number,
    readonly name: string,
    readonly serial: number,
  ) {}

  node(name: string): NameNode {
    let n = this.nodes.get(name);
    if (!n) {
      n = new NameNode(name, this);
      this.nodes.set(name, n);
    }
    return n;
  }
}

/**
 * Builds the served form of a zone the way PowerDNS's bind backend does (fixupOrderAndAuth,
 * doEmptyNonTerminals): data below a delegation and the NS at a cut are not authoritative (a DS
 * at the cut is), and every empty non-terminal gets an ENT record so it answers NOERROR.
 */
export function buildZone(zone: LoadedZone, balanced: BalancedName[]): ServedZone {
  const served = new ServedZone(zone.id, zone.name, zone.serial);
  const cuts = new Set(
    zone.records.filter((r) => r.type === 'NS' && r.name.toLowerCase() !== zone.name).map((r) => r.name.toLowerCase()),
  );
  for (const r of zone.records) {
    const key = r.name.toLowerCase();
    const below = isBelowCut(key, zone.name, cuts);
    const auth = !below && (r.type === 'DS' || !cuts.has(key)) ? 1 : 0;
    const wire = toWire(r, auth, zone.id);
    served.node(key).records.push(wire);
    served.list.push(wire);
  }
  // PowerDNS's bind backend hands a name's records back last-first; with no-shuffle that order is
  // visible, so we keep it: moving a zone from bind to multisite changes no answer.
  for (const node of served.nodes.values()) node.records.reverse();
  for (const b of balanced) served.node(b.name).balanced = b;
  addEmptyNonTerminals(served, cuts);
  return served;
}

function toWire(r: ZoneRecord, auth: 0 | 1, domainId: number): WireRecord {
  return { qtype: r.type, qname: r.name, content: r.content, ttl: r.ttl, auth, domain_id: domainId };
}

function isBelowCut(name: string, apex: string, cuts: Set<string>): boolean {
  for (let p = parent(name); p !== undefined && p !== apex && p.length >= apex.length; p = parent(p)) {
    if (cuts.has(p)) return true;
  }
  return false;
}

function addEmptyNonTerminals(zone: ServedZone, cuts: Set<string>): void {
  for (const name of [...zone.nodes.keys()]) {
    for (let p = parent(name); p !== undefined && p.length > zone.name.length; p = parent(p)) {
      if (zone.nodes.has(p)) continue;
      const auth = isBelowCut(p, zone.name, cuts) ? 0 : 1;
      zone.node(p).records.push({ qtype: 'ENT', qname: p, content: '', ttl: 0, auth, domain_id: zone.id });
    }
  }
}

/** The name one label up; undefined for the root and for text with no label end (never loops). */
export function parent(name: string): string | undefined {
  if (name === '.') return undefined;
  const i = indexOfLabelEnd(name);
  return i < 0 ? undefined : name.slice(i + 1) || '.';
}

/** The first dot that ends a label (skipping escaped dots such as "a\.b.example."). */
function indexOfLabelEnd(name: string): number {
  for (let i = 0; i < name.length; i++) {
    if (name[i] === '\\') i++;
    else if (name[i] === '.') return i;
  }
  return -1;
}
