import type { SiteStateTable } from '../site-health/index.js';
import type { BalancedName } from './balanced.js';
import type { BackendMetrics } from './metrics.js';
import { Orderings } from './orderings.js';
import {
  BadRequest,
  nameParam,
  optionalBoolParam,
  optionalNameParam,
  optionalTextParam,
  paramsOf,
  qtypeParam,
  zoneIdParam,
  type Params,
} from './request.js';
import { NO_RESULT, parent, type OrderSource, type ServedZone } from './zone-index.js';
import { isPlain } from './zonefile/names.js';

/** Answers for methods PowerDNS calls that we do not implement (and say so in its log). */
const UNSUPPORTED = '{"result":false}';
const TRUE = '{"result":true}';
/** Client addresses (remote, local, real-remote): "2001:db8::1/128" and the like, with room. */
const MAX_ADDRESS = 64;

/**
 * The exact lookup line PowerDNS 4.x sends (json11 writes keys sorted, strings without escapes in
 * the common case). A full match is valid JSON by construction (no escapes, no control
 * characters, numbers as JSON writes them), so it can skip JSON.parse: the lookup is most of the
 * traffic and JSON.parse most of its cost. The values it lets through pass the same checks as the
 * slow path (qtype shape, zone-id range, address length); anything else takes the slow path.
 */
const FAST_LOOKUP =
  // eslint-disable-next-line no-control-regex -- JSON strings may not hold raw control characters: refuse them
  /^\{"method":"lookup","parameters":\{"local":"[^"\\\x00-\x1f]{0,64}","qname":"([^"\\\x00-\x1f]*)","qtype":"([A-Za-z][A-Za-z0-9]{0,15})","real-remote":"([^"\\\x00-\x1f]{0,64})","remote":"([^"\\\x00-\x1f]{0,64})","zone-id":(-1|0|[1-9]\d{0,9})\}\}$/;
const INT32_MAX = 2_147_483_647;

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
      const qname = fast[1]!;
      const zoneId = Number(fast[5]);
      // PowerDNS's names are absolute and mostly plain; anything else is checked on the slow path.
      if (zoneId <= INT32_MAX && qname.endsWith('.') && qname.length <= 254 && isPlain(qname)) {
        const started = this.metrics ? performance.now() : 0;
        // real-remote: the ECS subnet (edns-subnet-processing=yes) or the resolver; remote if absent.
        const out = this.answerLookup(qname.toLowerCase(), fast[2]!.toUpperCase(), zoneId, fast[3] || fast[4]!);
        if (this.metrics) this.metrics.observe('lookup', performance.now() - started);
        return out;
      }
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

  /** One parsed request in, one response out; never throws (a bad value is answered with why). */
  handle(req: unknown): string {
    if (typeof req !== 'object' || req === null || Array.isArray(req)) {
      this.metrics?.errors.inc({ kind: 'request' });
      return failure('request must be a JSON object with "method" and "parameters"');
    }
    const { method, parameters } = req as { method?: unknown; parameters?: unknown };
    if (typeof method !== 'string') {
      this.metrics?.errors.inc({ kind: 'request' });
      return failure('"method" must be a string');
    }
    const started = this.metrics ? performance.now() : 0;
    let out: string;
    try {
      out = this.dispatch(method, paramsOf(parameters));
    } catch (err) {
      this.metrics?.errors.inc({ kind: err instanceof BadRequest ? 'request' : 'internal' });
      out = failure(
        err instanceof BadRequest
          ? `${method}: ${err.message}`
          : `${method}: internal error: ${(err as Error).message}`,
      );
    }
    if (this.metrics) this.metrics.observe(method, performance.now() - started);
    return out;
  }

  private dispatch(method: string, p: Params): string {
    switch (method) {
      case 'lookup':
        return this.lookup(p);
      case 'initialize':
        return TRUE;
      case 'getAllDomains':
        optionalBoolParam(p, 'include_disabled');
        return this.allDomains;
      case 'getDomainInfo':
        return this.getDomainInfo(p);
      case 'list':
        return this.list(p);
      case 'getAllDomainMetadata':
        nameParam(p, 'name');
        return '{"result":{}}';
      case 'getDomainMetadata':
        nameParam(p, 'name');
        if (optionalTextParam(p, 'kind') === undefined) throw new BadRequest('"kind" must be a string, got nothing');
        return '{"result":[]}';
      default:
        return UNSUPPORTED;
    }
  }

  private lookup(p: Params): string {
    const qname = nameParam(p, 'qname');
    const qtype = qtypeParam(p);
    const zoneId = zoneIdParam(p, 'zone-id');
    optionalTextParam(p, 'local', MAX_ADDRESS);
    const remote = optionalTextParam(p, 'remote', MAX_ADDRESS) ?? '';
    const realRemote = optionalTextParam(p, 'real-remote', MAX_ADDRESS) || remote;
    return this.answerLookup(qname, qtype, zoneId, realRemote);
  }

  /** `name` canonical and lower-case, `qtype` upper-case: both paths check them first. */
  private answerLookup(name: string, qtype: string, zoneId: number, realRemote: string): string {
    const zone = zoneId > 0 ? this.byId[zoneId] : this.zoneFor(name);
    const node = zone?.nodes.get(name);
    if (!node) return NO_RESULT;
    return node.answer(qtype, this.orders, realRemote);
  }

  private list(p: Params): string {
    const zonename = optionalNameParam(p, 'zonename');
    const id = zoneIdParam(p, 'domain_id');
    if (zonename === undefined && p.domain_id === undefined) throw new BadRequest('give "zonename" or "domain_id"');
    const zone = id > 0 ? this.byId[id] : zonename === undefined ? undefined : this.byName.get(zonename);
    if (!zone) return NO_RESULT;
    const dynamic = [...zone.nodes.values()].flatMap((n) => (n.balanced ? n.dynamicRecords(this.orders) : []));
    return JSON.stringify({ result: [...zone.list, ...dynamic] });
  }

  private getDomainInfo(p: Params): string {
    const zone = this.byName.get(nameParam(p, 'name'));
    return zone ? JSON.stringify({ result: domainInfo(zone) }) : NO_RESULT;
  }

  /**
   * Zone of a name when PowerDNS sends no zone id: the longest matching suffix. `parent` steps one
   * label up (escaped dots are not label ends) and ends at the root, so this always terminates.
   */
  private zoneFor(name: string): ServedZone | undefined {
    for (let n: string | undefined = name; n !== undefined; n = parent(n)) {
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
  return {
    id: z.id,
    zone: z.name,
    kind: 'native',
    serial: z.serial,
    notified_serial: z.serial,
    last_check: 0,
    masters: [],
  };
}
