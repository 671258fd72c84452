/**
 * Which names to give PowerDNS's cache flush so that every changed name is purged with the fewest
 * API calls. `PUT /api/v1/servers/localhost/cache/flush?domain=NAME` purges NAME *and everything
 * below it* (PowerDNS auth 4.7 pdns/ws-auth.cc apiServerCacheFlush: purgeAuthCaches(NAME + "$"),
 * the `$` suffix meaning "this name and its descendants"), so several changed names of one zone
 * are covered by one call for their longest common suffix, never above their zone's apex (a flush
 * of the parent would purge other zones' answers too).
 */

/** `a.b.example.com.` → ['com', 'example', 'b', 'a'] (root last label first, lower case). */
function labels(name: string): string[] {
  return name.toLowerCase().replace(/\.$/, '').split('.').filter(Boolean).reverse();
}

function fromLabels(l: string[]): string {
  return l.length === 0 ? '.' : `${[...l].reverse().join('.')}.`;
}

/** The most specific zone holding `name`, or undefined. Zones are given as labels. */
function zoneOf(name: string[], zones: string[][]): string[] | undefined {
  let best: string[] | undefined;
  for (const z of zones) {
    if (z.length <= name.length && z.every((l, i) => name[i] === l) && (!best || z.length > best.length)) best = z;
  }
  return best;
}

/**
 * One flush target per zone holding changed names: the longest common suffix of that zone's
 * changed names (the name itself when it is the only one); names outside every zone as they are.
 * Linear in the number of names (one pass, a running common prefix of labels per zone).
 */
export function flushTargets(names: Iterable<string>, zones: readonly string[] = []): string[] {
  const zoneLabels = zones.map(labels);
  const common = new Map<string, string[]>();
  const loose = new Set<string>();
  for (const name of names) {
    const l = labels(name);
    const zone = zoneOf(l, zoneLabels);
    if (!zone) {
      loose.add(fromLabels(l));
      continue;
    }
    const key = fromLabels(zone);
    const seen = common.get(key);
    if (!seen) {
      common.set(key, l);
      continue;
    }
    let n = 0;
    while (n < seen.length && n < l.length && seen[n] === l[n]) n++;
    if (n < seen.length) common.set(key, seen.slice(0, Math.max(n, zone.length)));
  }
  return [...[...common.values()].map(fromLabels), ...loose];
}
