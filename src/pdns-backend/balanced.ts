import { isIPv4 } from 'node:net';
import type { BalancedConfig, Fallback } from '../config/index.js';
import { parseClient } from '../site-health/index.js';
import {
  applyPolicy,
  dependenceOf,
  type Dependence,
  type PolicyInputs,
  type PolicyName,
  type PolicyParams,
  type TopologyEntry,
} from './policies.js';

/** Documented defaults of the policy parameters (docs/policies.md). */
export const POLICY_DEFAULTS = {
  hysteresis: { ratio: 0.2, 'hold-ms': 10_000 },
  /** hysteresis.min: in load units for least-load, in ms for fastest. */
  hysteresisMin: { 'least-load': 0.1, fastest: 5 } as Record<string, number>,
  closest: { 'hop-ms': 1, 'max-age-ms': 300_000 },
  'decided-by-timeout-ms': 300,
} as const;

/** A balanced name, with its addresses per site split by record type once at load. */
export interface BalancedName extends PolicyParams {
  name: string;
  ttl: number;
  fallback: Fallback;
  /** Candidate sites in preference order before health is applied. */
  preference: string[];
  a: Map<string, string[]>;
  aaaa: Map<string, string[]>;
  dependence: Dependence;
  /** Ask this site's backend for the order (cached for the TTL); ours is the fallback. */
  decidedBy?: string;
  decidedByTimeoutMs: number;
}

export function compileBalanced(b: BalancedConfig, localSite: string, siteOrder: string[]): BalancedName {
  const a = new Map<string, string[]>();
  const aaaa = new Map<string, string[]>();
  for (const [site, addrs] of Object.entries(b.addresses)) {
    a.set(
      site,
      addrs.filter((x) => isIPv4(x)),
    );
    aaaa.set(
      site,
      addrs.filter((x) => !isIPv4(x)),
    );
  }
  const withAddresses = (sites: string[]) => sites.filter((s) => s in b.addresses);
  const policy: PolicyName = b.policy ?? 'local-first';
  const preference =
    policy === 'failover'
      ? withAddresses(b.order ?? siteOrder)
      : withAddresses(
          policy !== 'local-first' && b.order ? b.order : [localSite, ...siteOrder.filter((s) => s !== localSite)],
        );
  const h = b.hysteresis ?? {};
  const topology: TopologyEntry[] = Object.entries(b.topology ?? {})
    .map(([text, sites]) => ({ text, sites, net: parseClient(text)! }))
    .filter((e) => e.net !== undefined)
    .sort((x, y) => y.net.bits - x.net.bits);
  return {
    name: b.name,
    ttl: b.ttl,
    fallback: b.fallback,
    preference,
    a,
    aaaa,
    policy,
    dependence: dependenceOf(policy),
    weights: new Map(Object.entries(b.weights ?? {})),
    topology,
    hysteresis: {
      ratio: h.ratio ?? POLICY_DEFAULTS.hysteresis.ratio,
      min: h.min ?? POLICY_DEFAULTS.hysteresisMin[policy] ?? 0,
      holdMs: h['hold-ms'] ?? POLICY_DEFAULTS.hysteresis['hold-ms'],
    },
    closest: {
      hopMs: b.closest?.['hop-ms'] ?? POLICY_DEFAULTS.closest['hop-ms'],
      maxAgeMs: b.closest?.['max-age-ms'] ?? POLICY_DEFAULTS.closest['max-age-ms'],
    },
    ...(b['decided-by'] !== undefined && b['decided-by'] !== localSite ? { decidedBy: b['decided-by'] } : {}),
    decidedByTimeoutMs: b['decided-by-timeout-ms'] ?? POLICY_DEFAULTS['decided-by-timeout-ms'],
  };
}

export type Decision =
  | { kind: 'sites'; sites: string[]; scope?: number; unprobed?: boolean }
  | { kind: 'fallback'; fallback: Fallback; sites: string[]; scope?: number };

/**
 * The order is the product: dead sites left out first, then the policy orders the usable ones;
 * none usable → the name's fallback (`all` answers every site in preference order). `scope` is
 * there only when the order depends on the client (or the query).
 */
export function decide(name: BalancedName, usable: (site: string) => boolean, inputs: PolicyInputs = {}): Decision {
  const alive = name.preference.filter(usable);
  if (alive.length === 0) {
    inputs.trace?.push(`no usable site among ${name.preference.join(', ') || 'none'}: fallback ${name.fallback}`);
    return { kind: 'fallback', fallback: name.fallback, sites: name.fallback === 'all' ? name.preference : [] };
  }
  inputs.trace?.push(
    `usable: ${alive.join(', ')}${alive.length < name.preference.length ? `; left out: ${name.preference.filter((s) => !alive.includes(s)).join(', ')}` : ''}`,
  );
  const r = applyPolicy(name, alive, inputs);
  const d: Decision = { kind: 'sites', sites: demoteStale(r.sites, inputs) };
  if (r.scope) d.scope = r.scope;
  if (r.unprobed) d.unprobed = true;
  return d;
}

/** Sites whose replica is stale go after the others, each group keeping its order (DESIGN: stale data is demoted). */
export function demoteStale(sites: string[], inputs: Pick<PolicyInputs, 'stale' | 'trace'>): string[] {
  const stale = inputs.stale;
  if (!stale || !sites.some(stale) || sites.every(stale)) return sites;
  const out = [...sites.filter((s) => !stale(s)), ...sites.filter(stale)];
  inputs.trace?.push(
    `replica lag over max-lag-seconds: ${sites.filter(stale).join(', ')} demoted: [${out.join(', ')}]`,
  );
  return out;
}

/** The A then AAAA addresses of the decided sites, in order. */
export function addressesFor(name: BalancedName, sites: string[]): { a: string[]; aaaa: string[] } {
  return {
    a: sites.flatMap((s) => name.a.get(s) ?? []),
    aaaa: sites.flatMap((s) => name.aaaa.get(s) ?? []),
  };
}
