import type { SiteStateTable } from '../site-health/state-table.js';
import type { BalancedName } from './balanced.js';
import type { BackendMetrics } from './metrics.js';
import { Orderings } from './orderings.js';
import { NO_RESULT, type OrderSource, type ServedZone } from './zone-index.js';

/** Answers for methods PowerDNS calls that we do not implement (and say so in its log). */
const UNSUPPORTED = '{"result":false}';
const TRUE = '{"result":true}';

/**
 * The exact lookup line PowerDNS 4.x sends (json11 writes keys sorted, strings without escapes in
 * the common case). A full match is valid JSON by construction, so it can skip JSON.parse: the
 * lookup is most of the traffic and JSON.parse most of its cost. Anything else takes the slow path.
 */
const FAST_LOOKUP =
  /^\{"method":"lookup","parameters":\{"local":"[^"\\]*","qname":"([^"\\]*)","qtype":"([A-Za-z0-9]+)","real-remote":"([^"\\]*)","remote":"([^"\\]*)","zone-id":(-?\d+)\}\}$/;

/** A request whose JSON or parameters are wrong: answered with result false and the reason. */
export function failure(why: string): string {
  return JSON.stringify({ result: false, log: [why] });
}

/**
 * One method per remote-backend call (PowerDNS modules/remotebackend), answered from memory.
 * Transport-free: the unix and HTTP connectors both hand it parsed requests.
 */
export class Handler {
  private readonly byName = new Map<string, ServedZone>();
  private readonly byId: (ServedZone | undefined)[] = [];
  private readonly allDomains: string;

  private readonly orders: OrderSource;

  constructor(
    zones: ServedZone[],
    table: SiteStateTable,
    private readonly metrics?: BackendMetrics,
    orders?: OrderSource,
  ) {
    this.orders = orders ?? new Orderings(balancedNames(zones), table);
    for (const z of zones) {
      this.byName.set(z.name, z);
      this.byId[z.id] = z;
    }
    this.allDomains = JSON.stringify({ result: zones.map(domainInfo) });
  }

  /** One request line in, one response line out; never throws. */
  handleLine(line: string): string {
    const fast = FAST_LOOKUP.exec(line);
    if (fast) {
      const started = this.metrics ? performance.now() : 0;
      // real-remote: the ECS subnet (edns-subnet-processing=yes) or the resolver; remote if absent.
      const out = this.answerLookup(fast[1]!, fast[2]!, Number(fast[5]), fast[3] || fast[4]!);
      if (this.metrics) this.metrics.observe('lookup', performance.now() - started);
      return out;
    }
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch (err) {
      this.metrics?.errors.inc({ kind: 'json' });
      return failure(`malformed JSON: ${(err as Error).message}`);
    }
    return this.handle(req);
  }

  handle(req: unknown): string {
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
      this.metrics?.errors.inc({ kind: 'request' });
      return failure('request must be a JSON object with "method" and "parameters"');
    }
    const { method, parameters } = req as { method?: unknown; parameters?: unknown };
    const params = (typeof parameters === 'object' && parameters !== null ? parameters : {}) as Record<string, unknown>;
    const started = this.metrics ? performance.now() : 0;
    const out = this.dispatch(method, params);
    if (this.metrics) this.metrics.observe(typeof method === 'string' ? method : 'invalid', performance.now() - started);
    return out;
  }

  private dispatch(method: unknown, p: Record<string, unknown>): string {
    switch (method) {
      case 'lookup':
        return this.lookup(p);
      case 'initialize':
        return TRUE;
      case 'getAllDomains':
        return this.allDomains;
      case 'getDomainInfo':
        return this.getDomainInfo(p);
      case 'list':
        return this.list(p);
      case 'getAllDomainMetadata':
        return '{"result":{}}';
      case 'getDomainMetadata':
        return '{"result":[]}';
      default:
        if (typeof method !== 'string') {
          this.metrics?.errors.inc({ kind: 'request' });
          return failure('"method" must be a string');
        }
        return UNSUPPORTED;
    }
  }

  private lookup(p: Record<string, unknown>): string {
    const { qname, qtype } = p;
    if (typeof qname !== 'string' || typeof qtype !== 'string') {
      this.metrics?.errors.inc({ kind: 'request' });
      return failure('lookup needs string "qname" and "qtype"');
    }
    const zoneId = p['zone-id'];
    const realRemote = typeof p['real-remote'] === 'string' && p['real-remote'] ? p['real-remote'] : typeof p.remote === 'string' ? p.remote : '';
    return this.answerLookup(qname, qtype, typeof zoneId === 'number' ? zoneId : -1, realRemote);
  }

  private answerLookup(qname: string, qtype: string, zoneId: number, realRemote: string): string {
    const name = qname.toLowerCase();
    const zone = zoneId > 0 ? this.byId[zoneId] : this.zoneFor(name);
    const node = zone?.nodes.get(name);
    if (!node) return NO_RESULT;
    return node.answer(qtype.toUpperCase(), this.orders, realRemote);
  }

  private list(p: Record<string, unknown>): string {
    const { zonename, domain_id: id } = p;
    const zone = typeof id === 'number' && id > 0 ? this.byId[id] : typeof zonename === 'string' ? this.byName.get(withDot(zonename.toLowerCase())) : undefined;
    if (!zone) return NO_RESULT;
    const dynamic = [...zone.nodes.values()].flatMap((n) => (n.balanced ? n.dynamicRecords(this.orders) : []));
    return JSON.stringify({ result: [...zone.list, ...dynamic] });
  }

  private getDomainInfo(p: Record<string, unknown>): string {
    const name = typeof p.name === 'string' ? withDot(p.name.toLowerCase()) : undefined;
    const zone = name === undefined ? undefined : this.byName.get(name);
    return zone ? JSON.stringify({ result: domainInfo(zone) }) : NO_RESULT;
  }

  /** Zone of a name when PowerDNS sends no zone id: the longest matching suffix. */
  private zoneFor(name: string): ServedZone | undefined {
    for (let n: string | undefined = name; n !== undefined; n = n === '.' ? undefined : n.slice(n.indexOf('.') + 1) || '.') {
      const z = this.byName.get(n);
      if (z) return z;
    }
    return undefined;
  }
}

function balancedNames(zones: ServedZone[]): BalancedName[] {
  return zones.flatMap((z) => [...z.nodes.values()].flatMap((n) => (n.balanced ? [n.balanced] : [])));
}

function domainInfo(z: ServedZone) {
  return { id: z.id, zone: z.name, kind: 'native', serial: z.serial, notified_serial: z.serial, last_check: 0, masters: [] };
}

function withDot(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}
