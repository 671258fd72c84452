import { type SiteStateTable, parseClient, probeKey } from '../site-health/index.js';
import { addressesFor, type BalancedName } from './balanced.js';
import type { Orderings } from './orderings.js';

export interface Explanation {
  name: string;
  policy: string;
  dependence: string;
  client?: string;
  /** The answer's addresses in order, and the ECS scope it is served with. */
  answer: { sites: string[]; a: string[]; aaaa: string[]; scope: number; fallback?: string };
  sites: {
    site: string;
    usable: boolean;
    reason: string;
    load?: number;
    responseMs?: number;
    connections?: number;
    figuresAgeMs?: number;
    probe?: { network: string; rttMs: number; completion: number; hops?: number; method: string; ageMs: number };
  }[];
  steps: string[];
}

/** Why a name answers what it answers for a client: each site's figures and the policy's steps. */
export function explain(
  b: BalancedName,
  orders: Orderings,
  table: SiteStateTable,
  client?: string,
  now = Date.now(),
): Explanation {
  const realRemote =
    client === undefined ? undefined : client.includes('/') ? client : `${client}/${client.includes(':') ? 128 : 32}`;
  const net = realRemote ? parseClient(realRemote) : undefined;
  const key = net ? probeKey(net) : undefined;
  const { decision, scope, trace } = orders.explain(b, realRemote);
  const { a, aaaa } = addressesFor(b, decision.sites);
  const sites = b.preference.map((site) => {
    const st = table.get(site);
    const f = orders.metrics.figures(site);
    const row: Explanation['sites'][number] = { site, usable: table.isUsable(site), reason: st?.reason ?? 'unknown' };
    if (f?.load !== undefined) row.load = f.load;
    if (f?.responseMs !== undefined) row.responseMs = f.responseMs;
    if (f?.connections !== undefined) row.connections = f.connections;
    const age = orders.metrics.figuresAge(site);
    if (age !== undefined) row.figuresAgeMs = age;
    const p = key ? orders.metrics.probe(site, key) : undefined;
    if (p && key)
      row.probe = {
        network: key,
        rttMs: p.rttMs,
        completion: p.completion,
        ...(p.hops !== undefined ? { hops: p.hops } : {}),
        method: p.method,
        ageMs: now - p.at,
      };
    return row;
  });
  const answer: Explanation['answer'] = { sites: decision.sites, a, aaaa, scope };
  if (decision.kind === 'fallback') answer.fallback = decision.fallback;
  const out: Explanation = { name: b.name, policy: b.policy, dependence: b.dependence, answer, sites, steps: trace };
  if (realRemote) out.client = realRemote;
  return out;
}

export function formatExplanation(e: Explanation): string {
  const lines = [`${e.name}  policy ${e.policy} (${cacheNote(e.dependence)})${e.client ? `  client ${e.client}` : ''}`];
  lines.push(
    `answer: ${[...e.answer.a, ...e.answer.aaaa].join(' ') || '(none)'}  sites [${e.answer.sites.join(', ')}]${e.answer.fallback ? ` fallback ${e.answer.fallback}` : ''}  scope /${e.answer.scope}`,
  );
  lines.push(
    '',
    `${'SITE'.padEnd(12)} ${'STATE'.padEnd(6)} ${'LOAD'.padStart(7)} ${'RESP MS'.padStart(8)} ${'CONNS'.padStart(6)}  PROBE`,
  );
  for (const s of e.sites) {
    const probe = s.probe
      ? `${s.probe.network} rtt ${s.probe.rttMs.toFixed(2)} ms, ${Math.round(s.probe.completion * 100)}% replies, hops ${s.probe.hops ?? '?'} (${s.probe.method}, ${Math.round(s.probe.ageMs / 1000)} s old)`
      : '-';
    lines.push(
      `${s.site.padEnd(12)} ${(s.usable ? 'up' : 'down').padEnd(6)} ${(s.load?.toFixed(2) ?? '-').padStart(7)} ${(s.responseMs?.toFixed(1) ?? '-').padStart(8)} ${String(s.connections ?? '-').padStart(6)}  ${probe}${s.usable ? '' : `  (${s.reason})`}`,
    );
  }
  lines.push('', 'decision:', ...e.steps.map((s, i) => `  ${i + 1}. ${s}`));
  return `${lines.join('\n')}\n`;
}

function cacheNote(d: string): string {
  switch (d) {
    case 'none':
      return 'client-independent: cached by PowerDNS, flushed on change';
    case 'metrics':
      return 'client-independent, by site figures with hysteresis: cached, flushed on change';
    case 'per-query':
      return 'changes per query: not cached by PowerDNS';
    default:
      return 'client-dependent: served with an ECS scope, not packet-cached';
  }
}
